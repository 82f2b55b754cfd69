/**
 * Drain throughput: 50,000 pre-enqueued no-op jobs drained by one worker
 * process at concurrency 10 and 50. Spool always; graphile-worker and pg-boss
 * when bench/node_modules has them (cd bench && npm install).
 *
 *   npx tsx bench/throughput.ts [jobs=50000] [systems=spool,graphile,pgboss]
 */
import os from 'node:os';
import { benchDatabase, type BenchDatabase } from './support/database.js';
import { drain, fill, openSpool, spoolBuild } from './support/spool.js';
import { peers } from './support/peers.js';

const JOBS = Number(process.argv[2] ?? 50_000);
const SYSTEMS = (process.argv[3] ?? 'spool,graphile,pgboss').split(',');
const CONCURRENCIES = [10, 50];

async function spoolDrain(db: BenchDatabase, concurrency: number): Promise<number> {
  const spool = await openSpool(db.url);
  try {
    await spool.sql`TRUNCATE spool.jobs`;
    await fill(spool, JOBS);
    await spool.sql`VACUUM ANALYZE spool.jobs`;
    return await drain(spool, JOBS, concurrency);
  } finally {
    await spool.close();
  }
}

const db = await benchDatabase();
try {
  console.log(`node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model}; Spool from ${spoolBuild}; ${db.server}; ${JSON.stringify(db.settings)}`);
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
