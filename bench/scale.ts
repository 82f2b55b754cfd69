/**
 * Claim throughput against history: drain 50,000 no-op jobs at concurrency
 * 50 with empty tables, then with the hot table also holding 1,000,000 jobs
 * scheduled for tomorrow and the history holding [history] completed ones
 * (10,000,000 by default; the storage issue's target: ≥ 0.9×).
 *
 *   npx tsx bench/scale.ts [jobs=50000] [history=10000000] [scheduled=1000000]
 */
import os from 'node:os';
import { benchDatabase } from './support/database.js';
import { drain, fill, openSpool, spoolBuild } from './support/spool.js';

const JOBS = Number(process.argv[2] ?? 50_000);
const HISTORY = Number(process.argv[3] ?? 10_000_000);
const SCHEDULED = Number(process.argv[4] ?? 1_000_000);
const RUNS = 3;

const db = await benchDatabase();
const spool = await openSpool(db.url);
try {
  console.log(`node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model}; Spool from ${spoolBuild}; ${db.server}; ${JSON.stringify(db.settings)}`);
  const measure = async (label: string) => {
    const rates: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      await spool.sql`DELETE FROM spool.jobs WHERE kind = 'bench.noop'`;
      await spool.sql`DELETE FROM spool.job_history WHERE kind = 'bench.noop'`;
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
      FROM generate_series(1, ${SCHEDULED}::int) AS g`;
  // Completed jobs of the last hour, in history as the finish statement leaves them, 1,000,000 per statement.
  for (let done = 0; done < HISTORY; done += 1_000_000) {
    await spool.sql`
      INSERT INTO spool.job_history (id, queue, kind, payload, state, priority, run_at, attempt, max_attempts, tags, result, errors, metadata, created_at, started_at, finished_at)
      SELECT nextval('spool.jobs_id_seq'), 'default', 'history.done', jsonb_build_object('n', g), 'completed', 0, now() - interval '1 hour', 1, 25, '{}', 'null', '[]', '{}',
             now() - interval '1 hour', now() - interval '1 hour', now() - interval '59 minutes'
        FROM generate_series(1, ${Math.min(1_000_000, HISTORY - done)}::int) AS g`;
  }
  await spool.sql`VACUUM ANALYZE spool.jobs`;
  await spool.sql`ANALYZE spool.job_history`;
  console.log(`added ${SCHEDULED.toLocaleString('en-US')} scheduled jobs + ${HISTORY.toLocaleString('en-US')} completed ones in history in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const full = await measure(`with ${SCHEDULED.toLocaleString('en-US')} scheduled and ${HISTORY.toLocaleString('en-US')} in history`);
  console.log(`ratio: ${(full / empty).toFixed(2)} (target ≥ 0.9)`);
} finally {
  await spool.close();
  await db.close();
}
