/**
 * Claim throughput against history: drain 50,000 no-op jobs at concurrency
 * 50 with an empty table, then with the table also holding 1,000,000 jobs
 * scheduled for tomorrow and 1,000,000 completed ones. Target: ≥ 0.8×.
 *
 *   npx tsx bench/scale.ts [jobs=50000] [history=1000000]
 */
import os from 'node:os';
import { benchDatabase } from './support/database.js';
import { drain, fill, openSpool, spoolBuild } from './support/spool.js';

const JOBS = Number(process.argv[2] ?? 50_000);
const HISTORY = Number(process.argv[3] ?? 1_000_000);
const RUNS = 3;

const db = await benchDatabase();
const spool = await openSpool(db.url);
try {
  console.log(`node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model}; Spool from ${spoolBuild}; ${db.server}; ${JSON.stringify(db.settings)}`);
  const measure = async (label: string) => {
    const rates: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      await spool.sql`DELETE FROM spool.jobs WHERE kind = 'bench.noop'`;
      await fill(spool, JOBS);
      await spool.sql`VACUUM ANALYZE spool.jobs`;
      rates.push(await drain(spool, JOBS, 50));
    }
    rates.sort((a, b) => a - b);
    const median = rates[Math.floor(RUNS / 2)]!;
    console.log(`${label}: median ${Math.round(median).toLocaleString('en-US')} jobs/s (runs: ${rates.map((r) => Math.round(r)).join(', ')})`);
    return median;
  };
  const empty = await measure('empty table');
  const started = performance.now();
  await spool.sql`
    INSERT INTO spool.jobs (kind, payload, state, run_at)
    SELECT 'history.future', jsonb_build_object('n', g), 'scheduled', now() + interval '1 day'
      FROM generate_series(1, ${HISTORY}::int) AS g`;
  await spool.sql`
    INSERT INTO spool.jobs (kind, payload, state, attempt, run_at, started_at, finished_at, result)
    SELECT 'history.done', jsonb_build_object('n', g), 'completed', 1, now() - interval '1 hour', now() - interval '1 hour', now() - interval '59 minutes', 'null'
      FROM generate_series(1, ${HISTORY}::int) AS g`;
  await spool.sql`VACUUM ANALYZE spool.jobs`;
  console.log(`added ${HISTORY.toLocaleString('en-US')} scheduled + ${HISTORY.toLocaleString('en-US')} completed jobs in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const full = await measure(`with ${(2 * HISTORY).toLocaleString('en-US')} rows of history`);
  console.log(`ratio: ${(full / empty).toFixed(2)} (target ≥ 0.8)`);
} finally {
  await spool.close();
  await db.close();
}
