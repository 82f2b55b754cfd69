/**
 * Drain throughput: 50,000 pre-enqueued no-op jobs drained by one worker
 * process at concurrency 10 and 50. Spool always; graphile-worker and pg-boss
 * when bench/node_modules has them (cd bench && npm install).
 *
 *   npx tsx bench/throughput.ts [jobs=50000] [systems=spool,graphile,pgboss]
 */
import os from 'node:os';
import { z } from 'zod';
import { createLogger, createSpool, defineJob } from '../src/index.js';
import { benchDatabase, type BenchDatabase } from './support/database.js';
import { peers } from './support/peers.js';

const JOBS = Number(process.argv[2] ?? 50_000);
const SYSTEMS = (process.argv[3] ?? 'spool,graphile,pgboss').split(',');
const CONCURRENCIES = [10, 50];

async function spoolDrain(db: BenchDatabase, concurrency: number): Promise<number> {
  const spool = createSpool({ connectionString: db.url, poolSize: 8 });
  try {
    await spool.migrate();
    await spool.sql`TRUNCATE spool.jobs`;
    const noop = defineJob({ kind: 'bench.noop', schema: z.object({ n: z.number() }), handler: () => undefined });
    for (let done = 0; done < JOBS; done += 10_000) {
      await spool.enqueueMany(Array.from({ length: Math.min(10_000, JOBS - done) }, (_, n) => ({ job: noop, payload: { n } })));
    }
    await spool.sql`VACUUM ANALYZE spool.jobs`;
    const started = performance.now();
    const worker = await spool.work({ jobs: [noop], concurrency, logger: createLogger({ level: 'warn' }), handleSignals: false });
    for (;;) {
      const [{ left }] = (await spool.sql`SELECT count(*)::int AS left FROM spool.jobs WHERE state <> 'completed'`) as unknown as [{ left: number }];
      if (left === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const seconds = (performance.now() - started) / 1000;
    await worker.stop({ graceMs: 1_000 });
    return JOBS / seconds;
  } finally {
    await spool.close();
  }
}

const db = await benchDatabase();
try {
  console.log(`node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model}; ${db.server}; ${JSON.stringify(db.settings)}`);
  console.log(`${JOBS.toLocaleString('en-US')} no-op jobs, pre-enqueued, drained by one process\n`);
  console.log('| system | concurrency | jobs/s |');
  console.log('|---|---:|---:|');
  for (const system of SYSTEMS) {
    for (const concurrency of CONCURRENCIES) {
      let rate: number | undefined;
      if (system === 'spool') rate = await spoolDrain(db, concurrency);
      else {
        const peer = peers[system];
        if (!peer) throw new Error(`unknown system ${system}`);
        rate = await peer.drain(db.url, JOBS, concurrency).catch((error: Error) => {
          console.log(`| ${system} | ${concurrency} | skipped: ${error.message.split('\n')[0]} |`);
          return undefined;
        });
      }
      if (rate !== undefined) console.log(`| ${system} | ${concurrency} | ${Math.round(rate).toLocaleString('en-US')} |`);
    }
  }
} finally {
  await db.close();
}
