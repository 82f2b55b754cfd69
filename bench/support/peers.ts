/**
 * Peers for the benchmarks, each driven the way its own docs advise, loaded
 * from bench/node_modules (cd bench && npm install).
 *
 * drain(): jobs are enqueued in bulk (not timed), then one worker starts at
 * the given concurrency; the clock runs from just before the worker is
 * started until every job's handler has run AND its completion is in the
 * peer's store (rows gone or marked completed, BullMQ's `completed` event),
 * as Spool's own drain does. The store is then checked for leftovers.
 *
 * latency(): an idle worker at concurrency 10, ready (listening) before the
 * first enqueue; jobs are enqueued one call each on a steady schedule; each
 * job carries `performance.now()` taken just before its enqueue call and the
 * handler records the difference on entry.
 *
 * Every adapter stops its worker, closes its pools and connections and drops
 * the peer's schema (or obliterates its BullMQ queue) before returning, also
 * when it fails.
 */
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';

// Loaded by name at run time: the peers live in bench/node_modules, which CI
// (and the type check) does not install, so a literal import('graphile-worker')
// would not type-check there. Each peer is imported inside its own adapter
// methods, so a missing peer only fails that peer.
const load = (name: string): Promise<unknown> => import(name);

export interface Peer {
  /**
   * Enqueue `jobs` no-op jobs (bulk, as fast as the peer allows; not timed), then start ONE worker
   * in this process at `concurrency`, tuned as the peer's own performance docs advise for throughput,
   * and return jobs/s measured from worker start until every job is done. Stop the worker and clean up
   * (drop the peer's schema or flush its Redis keys) before returning.
   */
  drain(url: string, jobs: number, concurrency: number): Promise<number>;
  /**
   * Start an idle worker (concurrency 10, tuned for low latency as the peer's docs advise, e.g. LISTEN/NOTIFY where the peer has it),
   * wait until it is ready, then enqueue `count` jobs one at a time at `ratePerSec` (a steady schedule, not bursts),
   * and return, for every job, the milliseconds from just before its enqueue call to the start of its handler
   * (use performance.now() in this same process; pass the enqueue timestamp in the payload or a map keyed by job id).
   * Stop and clean up before returning.
   */
  latency(url: string, count: number, ratePerSec: number): Promise<number[]>;
  /** Versions and the settings used, printed by the benchmark next to the figures. */
  describe(): string;
}

// ---------------------------------------------------------------- helpers

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Idle period between "worker ready" and the first enqueue of a latency run (as Spool's run). */
const IDLE_MS = 500;
/** A run fails if no job completes for this long (a stuck peer must not hang the benchmark). */
const STALL_MS = 60_000;

interface Counter {
  hit(n?: number): void;
  readonly count: number;
  /** Resolves when `target` hits are in; rejects if none arrives for STALL_MS. */
  done(what: string): Promise<void>;
}

function counter(target: number): Counter {
  let count = 0;
  let last = performance.now();
  let resolve: () => void = () => {};
  const reached = new Promise<void>((r) => (resolve = r));
  if (target <= 0) resolve();
  return {
    hit(n = 1) {
      count += n;
      last = performance.now();
      if (count >= target) resolve();
    },
    get count() {
      return count;
    },
    async done(what) {
      let timer: NodeJS.Timeout | undefined;
      const stalled = new Promise<never>((_, reject) => {
        const check = () => {
          if (performance.now() - last > STALL_MS) reject(new Error(`${what}: stalled at ${count}/${target} jobs`));
          else timer = setTimeout(check, 1_000);
        };
        timer = setTimeout(check, 1_000);
      });
      try {
        await Promise.race([reached, stalled]);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** Polls `left()` until it returns 0 (used to see the last completions land in the store). */
async function until0(what: string, left: () => Promise<number>): Promise<void> {
  const deadline = performance.now() + STALL_MS;
  for (;;) {
    const n = await left();
    if (n === 0) return;
    if (performance.now() > deadline) throw new Error(`${what}: ${n} jobs still not completed`);
    await sleep(2);
  }
}

/**
 * Enqueues `count` jobs on a steady open-loop schedule (job i is due at i / ratePerSec), one call
 * each; `enqueue(t)` gets performance.now() taken just before the call. Calls are not awaited one
 * by one, so a slow enqueue does not push the schedule back (no coordinated omission).
 */
async function steady(count: number, ratePerSec: number, enqueue: (t: number) => Promise<unknown>): Promise<void> {
  const start = performance.now();
  const pending: Promise<unknown>[] = [];
  for (let i = 0; i < count; i++) {
    const wait = start + (i * 1000) / ratePerSec - performance.now();
    if (wait > 0) await sleep(wait);
    pending.push(enqueue(performance.now()));
  }
  await Promise.all(pending);
}

interface PgClient {
  connect(): Promise<unknown>;
  query(text: string, values?: unknown[]): Promise<{ rows: Array<Record<string, unknown>> }>;
  end(): Promise<void>;
}

/** A plain node-postgres client (bench/node_modules/pg, the driver both Postgres peers use). */
async function pgClient(url: string): Promise<PgClient> {
  const mod = (await load('pg')) as { default?: unknown; Client?: unknown };
  const pg = (mod.default ?? mod) as { Client: new (options: { connectionString: string }) => PgClient };
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  return client;
}

/** Cleanup step of a run: a failure here is reported, not thrown over the run's own outcome. */
async function dropSchema(url: string, schema: string): Promise<void> {
  try {
    const client = await pgClient(url);
    try {
      await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    } finally {
      await client.end();
    }
  } catch (error) {
    console.error(`dropping schema ${schema}: ${(error as Error).message}`);
  }
}

async function countOf(client: PgClient, text: string, values?: unknown[]): Promise<number> {
  const { rows } = await client.query(text, values);
  return Number(rows[0]?.n ?? NaN);
}

// ---------------------------------------------------------------- graphile-worker 0.18

interface GraphileRunner {
  stop(reason?: string): Promise<void>;
  promise: Promise<void>;
}
interface GraphileUtils {
  migrate(): Promise<void>;
  addJob(identifier: string, payload: unknown): Promise<unknown>;
  addJobs(specs: ReadonlyArray<{ identifier: string; payload: unknown }>): Promise<ReadonlyArray<unknown>>;
  release(): Promise<void>;
}
interface GraphileWorker {
  run(options: object): Promise<GraphileRunner>;
  makeWorkerUtils(options: object): Promise<GraphileUtils>;
  Logger: new (factory: (scope: unknown) => (level: string, message: string) => void) => unknown;
}

const GRAPHILE_SCHEMA = 'graphile_worker';

/** Its performance page's settings for throughput (https://worker.graphile.org/docs/performance), for the drain and bench/soak.ts. */
export function graphileThroughputPreset(url: string, concurrency: number): object {
  return {
    worker: {
      connectionString: url,
      concurrentJobs: concurrency,
      maxPoolSize: Math.max(10, concurrency + 2),
      localQueue: { size: 500 },
      completeJobBatchDelay: 0,
      failJobBatchDelay: 0,
    },
  };
}

/** Errors and warnings only; graphile-worker logs every start/stop at info level. */
function graphileLogger(gw: GraphileWorker): unknown {
  return new gw.Logger(() => (level, message) => {
    if (level === 'error' || level === 'warning') console.error(`graphile-worker ${level}: ${message}`);
  });
}

/**
 * graphile-worker 0.18: run() with a preset. Drain uses the configuration of its performance page
 * (https://worker.graphile.org/docs/performance): localQueue 500, completeJobBatchDelay 0,
 * failJobBatchDelay 0, maxPoolSize the larger of 10 and concurrentJobs + 2 (as its option docs
 * recommend). Latency keeps the defaults, which are its low-latency mode: no local queue, no
 * completion batching, LISTEN/NOTIFY on the jobs table.
 */
const graphile: Peer = {
  describe: () =>
    'graphile-worker 0.18.0: run() with preset.worker { concurrentJobs: concurrency, maxPoolSize: max(10, concurrency + 2) }, noHandleSignals; ' +
    'drain: jobs added with WorkerUtils.addJobs in batches of 10,000, then VACUUM ANALYZE of its jobs table before the clock starts; localQueue { size: 500 }, completeJobBatchDelay 0, failJobBatchDelay 0 (its performance page); ' +
    'latency: concurrentJobs 10, defaults otherwise (no local queue or batching, LISTEN/NOTIFY wake-up, pollInterval 2000 ms as backstop), jobs added one addJob call each; ' +
    'done = handler ran and the job row is deleted',
  async drain(url, jobs, concurrency) {
    const gw = (await load('graphile-worker')) as GraphileWorker;
    const logger = graphileLogger(gw);
    const client = await pgClient(url);
    let runner: GraphileRunner | undefined;
    try {
      const utils = await gw.makeWorkerUtils({ connectionString: url, logger });
      try {
        await utils.migrate();
        for (let done = 0; done < jobs; done += 10_000) {
          const n = Math.min(10_000, jobs - done);
          await utils.addJobs(Array.from({ length: n }, (_, i) => ({ identifier: 'noop', payload: { n: done + i } })));
        }
      } finally {
        await utils.release();
      }
      const queued = await countOf(client, `SELECT count(*)::int AS n FROM ${GRAPHILE_SCHEMA}._private_jobs`);
      if (queued !== jobs) throw new Error(`graphile drain: ${queued} jobs queued, expected ${jobs}`);
      // As Spool's and pg-boss's drains (untimed): fresh planner statistics on a server with autovacuum off.
      await client.query(`VACUUM ANALYZE ${GRAPHILE_SCHEMA}._private_jobs`);

      const handled = counter(jobs);
      const started = performance.now();
      runner = await gw.run({
        logger,
        noHandleSignals: true,
        taskList: { noop: async () => handled.hit() },
        preset: graphileThroughputPreset(url, concurrency),
      });
      await handled.done('graphile drain');
      // Completed jobs are deleted; the last completion batch lands just after the last handler.
      await until0('graphile drain', () => countOf(client, `SELECT count(*)::int AS n FROM ${GRAPHILE_SCHEMA}._private_jobs`));
      const seconds = (performance.now() - started) / 1000;
      if (handled.count !== jobs) throw new Error(`graphile drain: ${handled.count} handler runs for ${jobs} jobs`);
      return jobs / seconds;
    } finally {
      await runner?.stop().catch((error: Error) => console.error(`graphile-worker stop: ${error.message}`));
      await client.end();
      await dropSchema(url, GRAPHILE_SCHEMA);
    }
  },
  async latency(url, count, ratePerSec) {
    const gw = (await load('graphile-worker')) as GraphileWorker;
    const logger = graphileLogger(gw);
    const utils = await gw.makeWorkerUtils({ connectionString: url, logger });
    let runner: GraphileRunner | undefined;
    try {
      await utils.migrate();
      const latencies: number[] = [];
      const handled = counter(count);
      // Our own emitter, so the LISTEN success cannot fire before we subscribe.
      const events = new EventEmitter();
      let listenTimer: NodeJS.Timeout | undefined;
      const listening = new Promise<void>((resolve, reject) => {
        events.once('pool:listen:success', () => resolve());
        listenTimer = setTimeout(() => reject(new Error('graphile latency: worker pool did not LISTEN within 30 s')), 30_000);
      });
      listening.catch(() => {}); // awaited below; never an unhandled rejection if run() throws first
      runner = await gw.run({
        logger,
        noHandleSignals: true,
        taskList: {
          probe: async (payload: { t: number }) => {
            latencies.push(performance.now() - payload.t);
            handled.hit();
          },
        },
        preset: { worker: { connectionString: url, concurrentJobs: 10, maxPoolSize: 12, events } },
      });
      try {
        await listening;
      } finally {
        clearTimeout(listenTimer);
      }
      await sleep(IDLE_MS);
      await steady(count, ratePerSec, (t) => utils.addJob('probe', { t }));
      await handled.done('graphile latency');
      return latencies;
    } finally {
      await runner?.stop().catch((error: Error) => console.error(`graphile-worker stop: ${error.message}`));
      await utils.release();
      await dropSchema(url, GRAPHILE_SCHEMA);
    }
  },
};

// ---------------------------------------------------------------- pg-boss 12

interface PgBossInstance {
  on(event: 'error' | 'warning', listener: (value: unknown) => void): unknown;
  start(): Promise<unknown>;
  stop(options?: { graceful?: boolean; close?: boolean; timeout?: number }): Promise<void>;
  createQueue(name: string, options?: object): Promise<void>;
  insert(name: string, jobs: Array<{ data: object }>): Promise<unknown>;
  send(name: string, data: object): Promise<string | null>;
  work(name: string, options: object, handler: (jobs: Array<{ id: string; data: never }>) => Promise<unknown>): Promise<string>;
  getWipData(): Array<{ name: string; lastFetchedOn: number | null }>;
}
interface PgBossModule {
  PgBoss: new (options: object) => PgBossInstance;
}

const PGBOSS_SCHEMA = 'pgboss';
/**
 * Drain: ONE polling worker (localConcurrency 1) fetching `concurrency` jobs per query, so exactly
 * `concurrency` jobs are in flight at most (10 → 1 × 10, 50 → 1 × 50). Each fetch is one statement
 * and each batch is completed by one statement (manager.js #processJobs → complete(name, jobs) →
 * plans.completeJobs), so per-job cost falls with the batch; with burstWhenBatchFull the worker
 * re-fetches at once while batches come back full (worker.js run(), manager.js resolveInterval).
 * Splitting the same in-flight budget over more workers (2 × 5, 2 × 25, 5 × 10) drained slower here.
 */
function pgbossShape(concurrency: number): { batchSize: number; workers: number } {
  return { batchSize: Math.max(1, concurrency), workers: 1 };
}

/** work() options of the drain (see `pgboss` below), for it and bench/soak.ts. */
export function pgbossThroughputWork(concurrency: number): object {
  const { batchSize, workers } = pgbossShape(concurrency);
  return { batchSize, localConcurrency: workers, burstWhenBatchFull: true, pollingIntervalSeconds: 0.5 };
}

function watchBoss(boss: PgBossInstance, warnings: string[]): void {
  boss.on('error', (error) => console.error(`pg-boss error: ${(error as Error)?.message ?? String(error)}`));
  boss.on('warning', (warning) => {
    const message = (warning as { message?: string })?.message ?? JSON.stringify(warning);
    warnings.push(message);
    console.error(`pg-boss warning: ${message}`);
  });
}

/**
 * pg-boss 12.38: jobs in flight never exceed `concurrency`. Drain: one polling worker fetching
 * `concurrency` jobs per query (its batchSize, "The number of jobs to fetch") and completing the
 * batch in one statement, `burstWhenBatchFull` ("While each fetch returns a full batchSize batch
 * [...] the worker keeps fetching continuously with no delay", types.d.ts WorkOptions),
 * `pollingIntervalSeconds` 0.5 (the minimum it accepts). After the (untimed) insert the job table
 * gets VACUUM ANALYZE, as Spool's own drain does for spool.jobs (bench/throughput.ts): the server
 * runs with autovacuum off, and without statistics Postgres plans pg-boss's fetch as a scan + sort
 * of the whole backlog (~20 ms a fetch at 50,000 jobs) instead of a walk of its job_i11 index
 * (~0.3 ms). pg-boss itself expects autovacuum or "vacuum on a schedule that keeps up" (boss.js
 * #checkVacuum, its autovacuum_disabled warning). Latency: `useListenNotify` on the instance and
 * `notify: true` on the queue (its LISTEN/NOTIFY wake-up), 10 workers of one job each, base
 * polling at its 0.5 s minimum as fallback.
 */
const pgboss: Peer = {
  describe: () =>
    `pg-boss 12.38.0 (schema ${PGBOSS_SCHEMA}, supervision/cron left at defaults): ` +
    'drain: jobs added with insert() in batches of 10,000, then VACUUM ANALYZE of its job table before the clock starts (as Spool\'s drain; the server has autovacuum off, ' +
    'and pg-boss expects autovacuum or scheduled vacuums: boss.js #checkVacuum); work() with localConcurrency 1 × batchSize = concurrency ' +
    '(≤ concurrency jobs in flight; one fetch and one completion statement per batch), burstWhenBatchFull: true (re-fetch at once while batches come back full, ' +
    'types.d.ts WorkOptions), pollingIntervalSeconds 0.5 (minimum), includeMetadata false, standard queue policy, pool max 10; ' +
    'latency: new PgBoss({ useListenNotify: true }) + createQueue(name, { notify: true }) (LISTEN/NOTIFY wake-up), work() with localConcurrency 10 × batchSize 1, ' +
    'pollingIntervalSeconds 0.5 (fallback), notifyPollingIntervalSeconds 30 (default backstop), jobs added one send() call each; ' +
    'done = handler ran and the job is in state completed',
  async drain(url, jobs, concurrency) {
    const { PgBoss } = (await load('pg-boss')) as PgBossModule;
    const { workers } = pgbossShape(concurrency);
    const boss = new PgBoss({ connectionString: url, schema: PGBOSS_SCHEMA, max: Math.max(10, workers + 4) });
    watchBoss(boss, []);
    const client = await pgClient(url);
    try {
      await boss.start();
      const queue = 'noop';
      await boss.createQueue(queue);
      for (let done = 0; done < jobs; done += 10_000) {
        const n = Math.min(10_000, jobs - done);
        await boss.insert(queue, Array.from({ length: n }, (_, i) => ({ data: { n: done + i } })));
      }
      const left = () =>
        countOf(client, `SELECT count(*)::int AS n FROM ${PGBOSS_SCHEMA}.job WHERE name = $1 AND state <> 'completed'`, [queue]);
      const queued = await left();
      if (queued !== jobs) throw new Error(`pg-boss drain: ${queued} jobs queued, expected ${jobs}`);
      // As Spool's drain does for its own table (untimed): fresh planner statistics, so the fetch
      // walks job_i11 instead of sorting the whole backlog. job is partitioned; this covers its partitions.
      await client.query(`VACUUM ANALYZE ${PGBOSS_SCHEMA}.job`);

      const handled = counter(jobs);
      const t0 = performance.now();
      await boss.work(queue, pgbossThroughputWork(concurrency), async (batch) => handled.hit(batch.length));
      await handled.done('pg-boss drain');
      // The batch is completed by pg-boss right after the handler returns.
      await until0('pg-boss drain', left);
      const seconds = (performance.now() - t0) / 1000;
      if (handled.count !== jobs) throw new Error(`pg-boss drain: ${handled.count} handler runs for ${jobs} jobs`);
      return jobs / seconds;
    } finally {
      await boss.stop({ graceful: true, timeout: 10_000 }).catch((error: Error) => console.error(`pg-boss stop: ${error.message}`));
      await client.end();
      await dropSchema(url, PGBOSS_SCHEMA);
    }
  },
  async latency(url, count, ratePerSec) {
    const { PgBoss } = (await load('pg-boss')) as PgBossModule;
    const boss = new PgBoss({ connectionString: url, schema: PGBOSS_SCHEMA, useListenNotify: true, max: 14 });
    const warnings: string[] = [];
    watchBoss(boss, warnings);
    try {
      await boss.start();
      if (warnings.some((w) => /listen/i.test(w))) throw new Error(`pg-boss latency: LISTEN/NOTIFY unavailable (${warnings.join('; ')})`);
      const queue = 'probe';
      await boss.createQueue(queue, { notify: true });
      const latencies: number[] = [];
      const handled = counter(count);
      await boss.work(queue, { localConcurrency: 10, batchSize: 1, pollingIntervalSeconds: 0.5 }, async (batch) => {
        for (const job of batch as Array<{ data: { t: number } }>) latencies.push(performance.now() - job.data.t);
        handled.hit(batch.length);
      });
      // Ready: every one of the 10 workers has been through its first (empty) fetch.
      const deadline = performance.now() + 30_000;
      while (boss.getWipData().filter((w) => w.name === queue && w.lastFetchedOn !== null).length < 10) {
        if (performance.now() > deadline) throw new Error('pg-boss latency: workers did not start within 30 s');
        await sleep(10);
      }
      await sleep(IDLE_MS);
      await steady(count, ratePerSec, (t) => boss.send(queue, { t }));
      await handled.done('pg-boss latency');
      return latencies;
    } finally {
      await boss.stop({ graceful: true, timeout: 10_000 }).catch((error: Error) => console.error(`pg-boss stop: ${error.message}`));
      await dropSchema(url, PGBOSS_SCHEMA);
    }
  },
};

// ---------------------------------------------------------------- BullMQ 6

interface BullJob {
  data: { t?: number };
}
interface BullQueue {
  waitUntilReady(): Promise<void>;
  addBulk(jobs: Array<{ name: string; data: object; opts?: object }>): Promise<unknown>;
  add(name: string, data: object, opts?: object): Promise<unknown>;
  getJobCounts(...types: string[]): Promise<Record<string, number>>;
  obliterate(opts?: { force?: boolean }): Promise<void>;
  close(): Promise<void>;
}
interface BullWorker {
  on(event: 'completed', listener: () => void): unknown;
  on(event: 'failed' | 'error', listener: (...args: unknown[]) => void): unknown;
  waitUntilReady(): Promise<unknown>;
  close(force?: boolean): Promise<void>;
}
interface BullModule {
  Queue: new (name: string, options: object) => BullQueue;
  Worker: new (name: string, processor: (job: BullJob) => Promise<unknown>, options: object) => BullWorker;
}

/** Redis for BullMQ; BullMQ opens (and on close() closes) its own ioredis connections from these. */
const REDIS = { host: '127.0.0.1', port: 6379 };
/** Completed jobs are removed as they finish, as BullMQ's going-to-production guide advises. */
const BULL_JOB_OPTS = { removeOnComplete: true, removeOnFail: true };

const bullName = (kind: string) => `spool-bench-${kind}-${process.pid}-${randomBytes(4).toString('hex')}`;

function watchWorker(worker: BullWorker): void {
  worker.on('failed', (_job, error) => console.error(`bullmq job failed: ${(error as Error)?.message ?? String(error)}`));
  worker.on('error', (error) => console.error(`bullmq worker error: ${(error as Error)?.message ?? String(error)}`));
}

/** Obliterates the run's queue (all its keys) and closes every connection, whatever happened. */
async function bullCleanup(queue: BullQueue, worker: BullWorker | undefined): Promise<void> {
  await worker?.close().catch((error: Error) => console.error(`bullmq worker close: ${error.message}`));
  await queue.obliterate({ force: true }).catch((error: Error) => console.error(`bullmq obliterate: ${error.message}`));
  await queue.close();
}

/**
 * One BullMQ run on a fresh, uniquely named queue: `run` gets the queue and a
 * way to start the worker; afterwards the queue is obliterated and every
 * connection closed, whatever happened.
 */
async function withBullQueue<T>(
  kind: string,
  run: (queue: BullQueue, startWorker: (processor: (job: BullJob) => Promise<unknown>, concurrency: number) => BullWorker) => Promise<T>,
): Promise<T> {
  const { Queue, Worker } = (await load('bullmq')) as BullModule;
  const name = bullName(kind);
  const queue = new Queue(name, { connection: REDIS });
  let worker: BullWorker | undefined;
  try {
    await queue.waitUntilReady();
    return await run(queue, (processor, concurrency) => {
      worker = new Worker(name, processor, { connection: REDIS, concurrency });
      watchWorker(worker);
      return worker;
    });
  } finally {
    await bullCleanup(queue, worker);
  }
}

/**
 * BullMQ 6.7 on Redis 127.0.0.1:6379, one uniquely named queue per run, obliterated afterwards.
 * Drain: Queue.addBulk in chunks of 1,000, one Worker with `concurrency`. Latency: a plain Worker
 * (concurrency 10; it waits for jobs with a blocking BZPOPMIN, BullMQ's only wake-up mechanism).
 */
const bullmq: Peer = {
  describe: () =>
    'bullmq 6.7.0 on Redis 127.0.0.1:6379 (connection options, BullMQ-managed ioredis clients), one fresh queue per run, obliterated after; ' +
    'jobs with removeOnComplete/removeOnFail: true; drain: Queue.addBulk in chunks of 1,000, one Worker with concurrency = concurrency, other options default; ' +
    'latency: plain Worker, concurrency 10, defaults (blocking BZPOPMIN wake-up), jobs added one Queue.add call each; ' +
    'done = the worker emitted `completed` (moveToFinished done in Redis)',
  async drain(_url, jobs, concurrency) {
    return withBullQueue('drain', async (queue, startWorker) => {
      for (let done = 0; done < jobs; done += 1_000) {
        const n = Math.min(1_000, jobs - done);
        await queue.addBulk(Array.from({ length: n }, (_, i) => ({ name: 'noop', data: { n: done + i }, opts: BULL_JOB_OPTS })));
      }
      const { waiting = NaN } = await queue.getJobCounts('waiting');
      if (waiting !== jobs) throw new Error(`bullmq drain: ${waiting} jobs waiting, expected ${jobs}`);

      const handled = counter(jobs);
      const completed = counter(jobs);
      const started = performance.now();
      const worker = startWorker(async () => handled.hit(), concurrency);
      worker.on('completed', () => completed.hit());
      await handled.done('bullmq drain');
      await completed.done('bullmq drain (completed events)');
      const seconds = (performance.now() - started) / 1000;
      const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'failed');
      const left = Object.values(counts).reduce((a, b) => a + b, 0);
      if (left !== 0 || handled.count !== jobs) throw new Error(`bullmq drain: ${handled.count} handler runs, left ${JSON.stringify(counts)}`);
      return jobs / seconds;
    });
  },
  async latency(_url, count, ratePerSec) {
    return withBullQueue('latency', async (queue, startWorker) => {
      const latencies: number[] = [];
      const handled = counter(count);
      const worker = startWorker(async (job) => {
        latencies.push(performance.now() - job.data.t!);
        handled.hit();
      }, 10);
      await worker.waitUntilReady();
      await sleep(IDLE_MS);
      await steady(count, ratePerSec, (t) => queue.add('probe', { t }, BULL_JOB_OPTS));
      await handled.done('bullmq latency');
      return latencies;
    });
  },
};

export const peers: Record<string, Peer> = { graphile, pgboss, bullmq };

