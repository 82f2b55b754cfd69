/**
 * CPU per job of a drain: 100,000 pre-enqueued no-op jobs drained by one
 * worker at concurrency 50, with the defaults (completed jobs moved to
 * history) and with removeOnComplete, in interleaved rounds. Prints jobs/s
 * and, per job, the worker process's CPU and the server's: the whole
 * machine's busy time from /proc/stat minus this process's, so run it on an
 * otherwise idle machine with PostgreSQL on the same host (Linux only).
 *
 *   npx tsx bench/cpu.ts [jobs=100000] [modes=defaults,remove]      (RUNS=3)
 *
 * To compare with older code, run the same file from a git worktree of
 * that commit (copy bench/cpu.ts there if it is older than this file).
 */
import os from 'node:os';
import { readFileSync } from 'node:fs';
import { benchDatabase } from './support/database.js';
import { drain, fill, openSpool, spoolBuild } from './support/spool.js';

const JOBS = Number(process.argv[2] ?? 100_000);
const MODES = (process.argv[3] ?? 'defaults,remove').split(',');
const RUNS = Number(process.env.RUNS ?? 3);
const CONCURRENCY = 50;
const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** CPU-seconds the whole machine has been busy (user, nice, system, irq, softirq). */
function machineBusySeconds(): number {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq] = fields as [number, number, number, number, number, number, number];
  return (user + nice + system + irq + softirq) / TICKS_PER_SECOND;
}

const db = await benchDatabase();
const spool = await openSpool(db.url);
try {
  console.log(`node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model}; Spool from ${spoolBuild}; ${db.server}; ${JSON.stringify(db.settings)}`);
  console.log(`${JOBS.toLocaleString('en-US')} no-op jobs, pre-enqueued, drained at c${CONCURRENCY}; ${RUNS} interleaved rounds\n`);
  const results = new Map<string, Array<{ rate: number; server: number; worker: number }>>();
  for (let round = 0; round < RUNS; round++) {
    for (const mode of MODES) {
      await spool.sql`TRUNCATE spool.jobs`;
      await spool.sql.unsafe('TRUNCATE spool.job_history').catch(() => {}); // absent before sql/0005
      await fill(spool, JOBS);
      await spool.sql`VACUUM ANALYZE spool.jobs`;
      const machine0 = machineBusySeconds();
      const worker0 = process.cpuUsage();
      const rate = await drain(spool, JOBS, CONCURRENCY, mode === 'remove');
      const worker = process.cpuUsage(worker0);
      const machine = machineBusySeconds() - machine0;
      const workerSeconds = (worker.user + worker.system) / 1e6;
      results.set(mode, [...(results.get(mode) ?? []), { rate, server: ((machine - workerSeconds) / JOBS) * 1e6, worker: (workerSeconds / JOBS) * 1e6 }]);
    }
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  console.log('| mode | jobs/s | server CPU µs/job | worker CPU µs/job |');
  console.log('|---|---:|---:|---:|');
  for (const [mode, runs] of results) {
    console.log(
      `| ${mode} | ${Math.round(median(runs.map((r) => r.rate))).toLocaleString('en-US')} | ${median(runs.map((r) => r.server)).toFixed(1)} | ${median(runs.map((r) => r.worker)).toFixed(1)} |`,
    );
  }
} finally {
  await spool.close();
  await db.close();
}
