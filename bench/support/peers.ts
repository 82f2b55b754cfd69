/**
 * Peers for the benchmarks, each driven the way its own docs advise, loaded
 * from bench/node_modules (cd bench && npm install). Every adapter counts
 * completions in its handler and resolves when all are in.
 */

// Loaded by name at run time: the peers live in bench/node_modules, which CI
// (and the type check) does not install.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const load = (name: string): Promise<any> => import(name);

export interface Peer {
  /** Enqueue `jobs` no-ops (not timed), start one worker at `concurrency`, return jobs/s until all are done. */
  drain(url: string, jobs: number, concurrency: number): Promise<number>;
  /** Idle worker (concurrency 10), `count` jobs enqueued one at a time at `ratePerSec`: enqueue → handler start, ms. */
  latency(url: string, count: number, ratePerSec: number): Promise<number[]>;
  describe(): string;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function counter(target: number): { hit: (n?: number) => void; done: Promise<void> } {
  let count = 0;
  let resolve: () => void = () => {};
  const done = new Promise<void>((r) => (resolve = r));
  return {
    hit: (n = 1) => {
      count += n;
      if (count >= target) resolve();
    },
    done,
  };
}

/** Enqueues at a steady rate; `enqueue(t)` gets the timestamp taken just before the call. */
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

async function withClient<T>(url: string, fn: (client: { query: (text: string, values?: unknown[]) => Promise<unknown> }) => Promise<T>): Promise<T> {
  const pg = (await load('pg')).default;
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** graphile-worker 0.18 with the batching its performance docs advise for throughput. */
const graphile: Peer = {
  describe: () => 'graphile-worker 0.18.0: concurrentJobs = concurrency, maxPoolSize = concurrency + 2; drain: localQueue.size 500, completeJobBatchDelay 0, failJobBatchDelay 0; latency: defaults (LISTEN/NOTIFY)',
  async drain(url, jobs, concurrency) {
    const { run, makeWorkerUtils } = await load('graphile-worker');
    const utils = await makeWorkerUtils({ connectionString: url });
    await utils.migrate();
    await utils.release();
    await withClient(url, async (client) => {
      await client.query('DELETE FROM graphile_worker._private_jobs');
      for (let done = 0; done < jobs; done += 10_000) {
        await client.query(
          `SELECT graphile_worker.add_jobs(array(SELECT ('noop', json_build_object('n', g), null, null, null, null, null, null)::graphile_worker.job_spec
             FROM generate_series(1, $1::int) g))`,
          [Math.min(10_000, jobs - done)],
        );
      }
      await client.query('VACUUM ANALYZE graphile_worker._private_jobs');
    });
    const finished = counter(jobs);
    const started = performance.now();
    const runner = await run({
      noHandleSignals: true,
      taskList: { noop: async () => finished.hit() },
      preset: {
        worker: {
          connectionString: url,
          concurrentJobs: concurrency,
          maxPoolSize: concurrency + 2,
          localQueue: { size: 500 },
          completeJobBatchDelay: 0,
          failJobBatchDelay: 0,
        },
      },
    } as never);
    await finished.done;
    await runner.stop();
    return jobs / ((performance.now() - started) / 1000);
  },
  async latency(url, count, ratePerSec) {
    const { run, makeWorkerUtils } = await load('graphile-worker');
    const utils = await makeWorkerUtils({ connectionString: url });
    await utils.migrate();
    const latencies: number[] = [];
    const finished = counter(count);
    const runner = await run({
      noHandleSignals: true,
      taskList: {
        probe: async (payload: { t: number }) => {
          latencies.push(performance.now() - payload.t);
          finished.hit();
        },
      },
      preset: { worker: { connectionString: url, concurrentJobs: 10 } },
    } as never);
    await sleep(500);
    await steady(count, ratePerSec, (t) => utils.addJob('probe', { t }));
    await finished.done;
    await runner.stop();
    await utils.release();
    return latencies;
  },
};

/** pg-boss 12: batch fetch, workers per queue, burst fetching while batches come back full. */
const pgboss: Peer = {
  describe: () =>
    'pg-boss 12.38.0: drain: localConcurrency = concurrency / 10 workers × batchSize 10, burstWhenBatchFull, pollingIntervalSeconds 0.5; latency: useListenNotify + queue notify, localConcurrency 10',
  async drain(url, jobs, concurrency) {
    const { PgBoss } = await load('pg-boss');
    const boss = new PgBoss({ connectionString: url, max: concurrency + 4 });
    boss.on('error', () => {});
    await boss.start();
    await boss.createQueue('noop');
    for (let done = 0; done < jobs; done += 5_000) {
      await boss.insert('noop', Array.from({ length: Math.min(5_000, jobs - done) }, (_, n) => ({ data: { n } })));
    }
    const finished = counter(jobs);
    const started = performance.now();
    const batchSize = 10;
    await boss.work(
      'noop',
      { batchSize, localConcurrency: Math.max(1, Math.round(concurrency / batchSize)), pollingIntervalSeconds: 0.5, burstWhenBatchFull: true },
      async (batch: unknown[]) => finished.hit(batch.length),
    );
    await finished.done;
    const seconds = (performance.now() - started) / 1000;
    await boss.stop({ graceful: true, wait: true, timeout: 10_000 });
    return jobs / seconds;
  },
  async latency(url, count, ratePerSec) {
    const { PgBoss } = await load('pg-boss');
    const boss = new PgBoss({ connectionString: url, useListenNotify: true });
    boss.on('error', () => {});
    await boss.start();
    await boss.createQueue('probe', { notify: true });
    const latencies: number[] = [];
    const finished = counter(count);
    await boss.work('probe', { localConcurrency: 10, pollingIntervalSeconds: 0.5 }, async ([job]: Array<{ data: { t: number } }>) => {
      latencies.push(performance.now() - job!.data.t);
      finished.hit();
    });
    await sleep(500);
    await steady(count, ratePerSec, (t) => boss.send('probe', { t }));
    await finished.done;
    await boss.stop({ graceful: true, wait: true, timeout: 10_000 });
    return latencies;
  },
};

/** BullMQ 6 needs an ioredis client (maxRetriesPerRequest: null, as its docs require for workers). */
async function redis(): Promise<unknown> {
  const { Redis } = await load('ioredis');
  return new Redis({ host: '127.0.0.1', port: 6379, maxRetriesPerRequest: null });
}

/** BullMQ 6 on the machine's Redis (127.0.0.1:6379). */
const bullmq: Peer = {
  describe: () => 'bullmq 6.7.0 on Redis 7 (127.0.0.1:6379): Worker concurrency = concurrency; addBulk in chunks of 1,000',
  async drain(_url, jobs, concurrency) {
    const { Queue, Worker } = await load('bullmq');
    const connection = await redis();
    const name = `spool-bench-${process.pid}-${Date.now()}`;
    const queue = new Queue(name, { connection });
    for (let done = 0; done < jobs; done += 1_000) {
      await queue.addBulk(Array.from({ length: Math.min(1_000, jobs - done) }, (_, n) => ({ name: 'noop', data: { n }, opts: { removeOnComplete: true } })));
    }
    const finished = counter(jobs);
    const started = performance.now();
    const worker = new Worker(name, async () => finished.hit(), { connection, concurrency });
    await finished.done;
    const seconds = (performance.now() - started) / 1000;
    await worker.close();
    await queue.obliterate({ force: true });
    await queue.close();
    (connection as { disconnect(): void }).disconnect();
    return jobs / seconds;
  },
  async latency(_url, count, ratePerSec) {
    const { Queue, Worker } = await load('bullmq');
    const connection = await redis();
    const name = `spool-latency-${process.pid}-${Date.now()}`;
    const queue = new Queue(name, { connection });
    const latencies: number[] = [];
    const finished = counter(count);
    const worker = new Worker(
      name,
      async (job: { data: { t: number } }) => {
        latencies.push(performance.now() - job.data.t);
        finished.hit();
      },
      { connection, concurrency: 10 },
    );
    await worker.waitUntilReady();
    await sleep(500);
    await steady(count, ratePerSec, (t) => queue.add('probe', { t }, { removeOnComplete: true }));
    await finished.done;
    await worker.close();
    await queue.obliterate({ force: true });
    await queue.close();
    (connection as { disconnect(): void }).disconnect();
    return latencies;
  },
};

export const peers: Record<string, Peer> = { graphile, pgboss, bullmq };
