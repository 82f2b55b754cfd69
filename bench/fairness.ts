/**
 * Flow control figures (docs/performance.md, "Flow control"):
 *
 * 1. drain: 50,000 no-op jobs spread over 100 groups, one process at c50:
 *    plain, and with a rate limit too high to bind (1,000,000 per second) and
 *    fairness on. Interleaved rounds; the ratio is flow / plain.
 * 2. prompt start: group A has 200,000 jobs queued, then groups B-K get 100
 *    each; c50; fairness off and on: B-K's start delay (started_at -
 *    created_at, database time) p50 / p99 / max.
 * 3. shares while all are backlogged: 10 groups of 30,000, equal weights
 *    (Jain's index of per-group starts), and 3 groups of 100,000 weighted
 *    1:2:4 (each share against its weight), over the first 2 seconds of a
 *    c50 drain (every group still has jobs waiting at the end).
 * 4. rate limit: 4 worker processes on one queue limited to N per second:
 *    the most starts in any 1-second window (from started_at).
 *
 *   npm run bench:fairness            (RUNS=3, RATE=500; PARTS=1,3 runs only those)
 */
import { spawn } from 'node:child_process';
import os from 'node:os';
import { z } from 'zod';
import type { Spool } from '../src/index.js';
import { benchDatabase } from './support/database.js';
import { drain, openSpool, spoolBuild, spoolModule } from './support/spool.js';

const { createLogger, defineJob } = spoolModule;
const RUNS = Number(process.env.RUNS ?? 3);
const RATE = Number(process.env.RATE ?? 500);
const PARTS = new Set((process.env.PARTS ?? '1,2,3,4').split(',').map((p) => Number(p.trim())));
if ([...PARTS].some((part) => ![1, 2, 3, 4].includes(part))) {
  throw new Error(`PARTS=${process.env.PARTS}: expected a comma-separated list of the parts 1 to 4, e.g. PARTS=1,3`);
}
const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function enqueueGroups(spool: Spool, kind: string, queue: string, count: number, group: (i: number) => string): Promise<void> {
  for (let done = 0; done < count; done += 10_000) {
    await spool.enqueueMany(Array.from({ length: Math.min(10_000, count - done) }, (_, i) => ({ job: kind, payload: { n: done + i }, queue, group: group(done + i) })));
  }
}

async function reset(spool: Spool): Promise<void> {
  await spool.sql`TRUNCATE spool.jobs`;
  await spool.sql`TRUNCATE spool.job_history`;
  await spool.sql`DELETE FROM spool.limits`;
}

async function drainRun(spool: Spool, flow: boolean): Promise<number> {
  await reset(spool);
  await enqueueGroups(spool, 'bench.noop', 'default', 50_000, (i) => `g${i % 100}`);
  if (flow) {
    await spool.limits.set('queue', 'default', { rate: { limit: 1_000_000, windowMs: 1000 }, fair: true });
  }
  await spool.sql`VACUUM ANALYZE spool.jobs`;
  return drain(spool, 50_000, 50);
}

const timed = defineJob({ kind: 'bench.fair', queue: 'fairq', schema: z.object({}).passthrough(), handler: () => undefined });

/** Runs a c50 worker on `fairq` until `until` holds; returns nothing (figures come from the table). */
async function work(spool: Spool, until: () => Promise<boolean>): Promise<void> {
  const worker = await spool.work({ jobs: [timed], concurrency: 50, logger: createLogger({ level: 'warn' }), handleSignals: false });
  try {
    while (!(await until())) await new Promise((resolve) => setTimeout(resolve, 20));
  } finally {
    await worker.stop({ graceMs: 5_000 });
  }
}

async function promptStart(spool: Spool, fair: boolean): Promise<{ p50: number; p99: number; max: number; aLeft: number }> {
  await reset(spool);
  if (fair) await spool.limits.set('queue', 'fairq', { fair: true });
  await enqueueGroups(spool, 'bench.fair', 'fairq', 200_000, () => 'A');
  await spool.sql`VACUUM ANALYZE spool.jobs`;
  let enqueuedSmall = false;
  await work(spool, async () => {
    if (!enqueuedSmall) {
      // Once the drain of A is under way.
      const [{ n }] = (await spool.sql`SELECT count(*)::int AS n FROM spool.job_history`) as unknown as [{ n: number }];
      if (n < 5_000) return false;
      for (const g of 'BCDEFGHIJK') await enqueueGroups(spool, 'bench.fair', 'fairq', 100, () => g);
      enqueuedSmall = true;
      return false;
    }
    const [{ n }] = (await spool.sql`SELECT count(*)::int AS n FROM spool.job_history WHERE group_key <> 'A'`) as unknown as [{ n: number }];
    return n === 1_000;
  });
  const [row] = (await spool.sql`
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY d) AS p50, percentile_cont(0.99) WITHIN GROUP (ORDER BY d) AS p99, max(d) AS max,
           (SELECT count(*)::int FROM spool.jobs WHERE group_key = 'A') AS a_left
      FROM (SELECT extract(epoch FROM started_at - created_at)::float8 AS d FROM spool.job_history WHERE group_key <> 'A') x`) as unknown as [
    { p50: number; p99: number; max: number; a_left: number },
  ];
  return { p50: row.p50, p99: row.p99, max: row.max, aLeft: row.a_left };
}

/** Starts per group in the first `seconds` of a drain of backlogged groups. */
async function shares(spool: Spool, groups: Record<string, number>, perGroup: number, seconds: number): Promise<Map<string, number>> {
  await reset(spool);
  await spool.limits.set('queue', 'fairq', { fair: true });
  for (const [group, weight] of Object.entries(groups)) {
    if (weight !== 1) await spool.limits.set('group', group, { weight });
    await enqueueGroups(spool, 'bench.fair', 'fairq', perGroup, () => group);
  }
  await spool.sql`VACUUM ANALYZE spool.jobs`;
  const startedAt = performance.now();
  await work(spool, async () => performance.now() - startedAt > seconds * 1000);
  // The window: from the first start to `seconds` later, so the worker's start-up is left out.
  const rows = (await spool.sql`
    WITH s AS (SELECT group_key, started_at FROM spool.all_jobs WHERE started_at IS NOT NULL),
         t0 AS (SELECT min(started_at) AS t FROM s)
    SELECT group_key AS g, count(*)::int AS n FROM s, t0 WHERE s.started_at < t0.t + make_interval(secs => ${seconds - 1}) GROUP BY group_key`) as unknown as Array<{ g: string; n: number }>;
  for (const group of Object.keys(groups)) {
    const left = (await spool.sql`SELECT count(*)::int AS n FROM spool.jobs WHERE group_key = ${group} AND state = 'available'`)[0]!.n as number;
    if (left === 0) throw new Error(`group ${group} ran dry: enqueue more per group for a backlogged share`);
  }
  return new Map(rows.map((r) => [r.g, r.n]));
}

async function rateRun(url: string, spool: Spool): Promise<{ busiest: number; starts: number; seconds: number }> {
  await reset(spool);
  await spool.limits.set('queue', 'rated', { rate: { limit: RATE, windowMs: 1000 } });
  const jobs = RATE * 12;
  for (let done = 0; done < jobs; done += 10_000) {
    await spool.enqueueMany(Array.from({ length: Math.min(10_000, jobs - done) }, () => ({ job: 'bench.rated', payload: {}, queue: 'rated' })));
  }
  const children = await Promise.all(Array.from({ length: 4 }, () => new Promise<ReturnType<typeof spawn>>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', new URL('./support/rate-worker.ts', import.meta.url).pathname], {
      env: { ...process.env, DATABASE_URL: url }, stdio: ['ignore', 'pipe', 'inherit'],
    });
    child.stdout!.on('data', (chunk: Buffer) => { if (chunk.toString().includes('ready')) resolve(child); });
    child.on('exit', (code) => reject(new Error(`rate worker exited with ${code}`)));
  })));
  for (;;) {
    const [{ n }] = (await spool.sql`SELECT count(*)::int AS n FROM spool.jobs WHERE queue = 'rated'`) as unknown as [{ n: number }];
    if (n === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  for (const child of children) child.kill('SIGTERM');
  await Promise.all(children.map((child) => new Promise((resolve) => child.on('exit', resolve))));
  const [row] = (await spool.sql`
    WITH s AS (SELECT started_at FROM spool.job_history WHERE queue = 'rated')
    SELECT (SELECT max((SELECT count(*) FROM s b WHERE b.started_at >= a.started_at AND b.started_at < a.started_at + interval '1 second')) FROM s a)::int AS busiest,
           (SELECT count(*) FROM s)::int AS starts,
           (SELECT extract(epoch FROM max(started_at) - min(started_at)) FROM s)::float8 AS seconds`) as unknown as [{ busiest: number; starts: number; seconds: number }];
  return row;
}

const db = await benchDatabase();
const spool = await openSpool(db.url);
try {
  console.log(`node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model}; Spool from ${spoolBuild}; ${db.server}; ${JSON.stringify(db.settings)}\n`);

  if (PARTS.has(1)) {
    const plain: number[] = [];
    const flow: number[] = [];
    for (let round = 0; round < RUNS; round++) {
      plain.push(await drainRun(spool, false));
      flow.push(await drainRun(spool, true));
    }
    console.log(`1. drain of 50,000 no-op jobs over 100 groups, c50, median of ${RUNS} interleaved runs`);
    console.log(`   plain: ${fmt(median(plain))} jobs/s (${plain.map((r) => fmt(r)).join(', ')})`);
    console.log(`   rate limit 1,000,000/s + fairness: ${fmt(median(flow))} jobs/s (${flow.map((r) => fmt(r)).join(', ')})`);
    console.log(`   ratio: ${fmt(median(flow) / median(plain), 2)}x\n`);
  }

  if (PARTS.has(2)) {
    console.log('2. A: 200,000 queued; B-K: 100 each enqueued once A is draining; c50: start delay of B-K (s)');
    for (const fair of [false, true]) {
      const r = await promptStart(spool, fair);
      console.log(`   fairness ${fair ? 'on ' : 'off'}: p50 ${fmt(r.p50, 3)}, p99 ${fmt(r.p99, 3)}, max ${fmt(r.max, 3)} (A still waiting when B-K were done: ${fmt(r.aLeft)})`);
    }
  }

  if (PARTS.has(3)) {
    const equal = await shares(spool, Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`e${i}`, 1])), 30_000, 3);
    const counts = [...equal.values()];
    const jain = counts.reduce((a, b) => a + b, 0) ** 2 / (counts.length * counts.reduce((a, b) => a + b * b, 0));
    console.log(`\n3. 10 backlogged groups, equal weights, the first 2 s of a c50 drain: starts per group ${counts.join(', ')}; Jain's index ${fmt(jain, 4)}`);
    const weighted = await shares(spool, { w1: 1, w2: 2, w4: 4 }, 100_000, 3);
    const total = [...weighted.values()].reduce((a, b) => a + b, 0);
    const line = [['w1', 1], ['w2', 2], ['w4', 4]].map(([g, w]) => {
      const share = (weighted.get(g as string) ?? 0) / total;
      return `${g} ${fmt(share * 100, 1)} % (weight share ${fmt(((w as number) / 7) * 100, 1)} %, off by ${fmt((Math.abs(share - (w as number) / 7) / ((w as number) / 7)) * 100, 1)} %)`;
    });
    console.log(`   weights 1:2:4: ${line.join('; ')}`);
  }

  if (PARTS.has(4)) {
    const rate = await rateRun(db.url, spool);
    console.log(`\n4. rate limit ${RATE}/s, 4 worker processes at c50: ${fmt(rate.starts)} starts over ${fmt(rate.seconds, 1)} s; busiest 1-second window ${rate.busiest} (limit ${RATE})`);
  }
} finally {
  await spool.close();
  await db.close();
}
