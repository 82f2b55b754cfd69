/**
 * Drain throughput: 50,000 pre-enqueued no-op jobs drained by one worker
 * process at concurrency 10 and 50. Spool twice: as installed (completed jobs
 * kept as rows) and with removeOnComplete (a completed job's row deleted, as
 * graphile-worker always does). graphile-worker and pg-boss
 * when bench/node_modules has them (cd bench && npm install).
 *
 *   npx tsx bench/throughput.ts [jobs=50000] [systems=spool,spool-remove,graphile,pgboss]
 */
import os from 'node:os';
import { benchDatabase, type BenchDatabase } from './support/database.js';
import { drain, fill, openSpool, spoolBuild } from './support/spool.js';
import { peers } from './support/peers.js';

const JOBS = Number(process.argv[2] ?? 50_000);
const SYSTEMS = (process.argv[3] ?? 'spool,spool-remove,graphile,pgboss').split(',');
const CONCURRENCIES = [10, 50];
const RUNS = Number(process.env.RUNS ?? 3);

async function spoolDrain(db: BenchDatabase, concurrency: number, removeOnComplete: boolean): Promise<number> {
  const spool = await openSpool(db.url);
  try {
    await spool.sql`TRUNCATE spool.jobs`;
    await fill(spool, JOBS);
    await spool.sql`VACUUM ANALYZE spool.jobs`;
    return await drain(spool, JOBS, concurrency, removeOnComplete);
  } finally {
    await spool.close();
  }
}

const db = await benchDatabase();
try {
  console.log(`node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model}; Spool from ${spoolBuild}; ${db.server}; ${JSON.stringify(db.settings)}`);
  console.log(`${JOBS.toLocaleString('en-US')} no-op jobs, pre-enqueued, drained by one process\n`);
  // Rounds interleave the systems, so a noisy minute on this shared machine hits all of them.
  const rates = new Map<string, number[]>();
  for (let round = 0; round < RUNS; round++) {
    for (const system of SYSTEMS) {
      for (const concurrency of CONCURRENCIES) {
        const key = `${system}|${concurrency}`;
        const rate = system.startsWith('spool')
          ? await spoolDrain(db, concurrency, system === 'spool-remove')
          : await peers[system]!.drain(db.url, JOBS, concurrency).catch((error: Error) => {
              console.log(`${system} at ${concurrency} failed: ${error.message.split('\n')[0]}`);
              return undefined;
            });
        if (rate !== undefined) rates.set(key, [...(rates.get(key) ?? []), rate]);
      }
    }
  }
  const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
  console.log(`median of ${RUNS} interleaved runs\n`);
  console.log('| system | concurrency | jobs/s | min – max |');
  console.log('|---|---:|---:|---|');
  for (const [key, values] of rates) {
    const [system, concurrency] = key.split('|');
    const sorted = [...values].sort((a, b) => a - b);
    console.log(`| ${system} | ${concurrency} | ${fmt(sorted[Math.floor(sorted.length / 2)]!)} | ${fmt(sorted[0]!)} – ${fmt(sorted[sorted.length - 1]!)} |`);
  }
  for (const system of SYSTEMS.filter((s) => !s.startsWith('spool') && peers[s])) console.log(`\n${system}: ${peers[system]!.describe()}`);
} finally {
  await db.close();
}
