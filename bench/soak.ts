/**
 * Sustained churn: one process feeds no-op jobs and one worker drains them
 * for --minutes, keeping about --backlog jobs waiting (each batch replaces
 * what was handled since the last), so the worker runs flat out the whole
 * time. Prints per minute: jobs handled, pickup latency (enqueue → handler,
 * p50 / p99), and the job table's size, live and dead rows. Target (storage
 * issue): the last minute ≥ 0.9× the first, the table's size bounded, with
 * autovacuum at its defaults (so run it on the embedded PostgreSQL, or a
 * server with autovacuum on). CI does not run it.
 *
 *   npx tsx bench/soak.ts --minutes 30 [--system spool|graphile|pgboss] [--concurrency 50] [--backlog 20000]
 *
 * graphile-worker and pg-boss come from bench/node_modules (cd bench && npm install).
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import postgres from 'postgres';
import { benchDatabase } from './support/database.js';
import { openSpool, spoolModule, spoolBuild } from './support/spool.js';
import { graphileThroughputPreset, pgbossThroughputWork } from './support/peers.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '30' },
    system: { type: 'string', default: 'spool' },
    concurrency: { type: 'string', default: '50' },
    backlog: { type: 'string', default: '20000' },
  },
});
const MINUTES = Number(values.minutes);
const CONCURRENCY = Number(values.concurrency);
const BACKLOG = Number(values.backlog);
const BATCH_MAX = 5_000;

/** What a system needs to be soaked: enqueue a batch, start a worker, name its job table, stop. */
interface Soakable {
  table: string;
  enqueue(payloads: Array<{ t: number }>): Promise<void>;
  start(onJob: (payload: { t: number }) => void): Promise<void>;
  stop(): Promise<void>;
}

async function spoolSoak(url: string): Promise<Soakable> {
  const spool = await openSpool(url);
  const noop = spoolModule.defineJob({ kind: 'soak.noop', schema: z.object({ t: z.number() }) });
  let worker: Awaited<ReturnType<typeof spool.work>> | undefined;
  return {
    table: 'spool.jobs',
    enqueue: async (payloads) => void (await spool.enqueueMany(payloads.map((payload) => ({ job: noop, payload })))),
    start: async (onJob) => {
      const counting = spoolModule.defineJob({ kind: 'soak.noop', schema: z.object({ t: z.number() }), handler: (payload) => onJob(payload) });
      worker = await spool.work({ jobs: [counting], concurrency: CONCURRENCY, logger: spoolModule.createLogger({ level: 'warn' }), handleSignals: false });
    },
    stop: async () => {
      await worker?.stop({ graceMs: 10_000 });
      await spool.close();
    },
  };
}

async function graphileSoak(url: string): Promise<Soakable> {
  const gw = (await import(new URL('./node_modules/graphile-worker/dist/index.js', import.meta.url).href)) as any;
  const logger = new gw.Logger(() => (level: string, message: string) => {
    if (level === 'error') console.error(`graphile-worker: ${message}`);
  });
  const utils = await gw.makeWorkerUtils({ connectionString: url, logger });
  await utils.migrate();
  let runner: { stop(): Promise<void> } | undefined;
  return {
    table: 'graphile_worker._private_jobs',
    enqueue: async (payloads) => void (await utils.addJobs(payloads.map((payload) => ({ identifier: 'noop', payload })))),
    start: async (onJob) => {
      runner = await gw.run({
        logger,
        noHandleSignals: true,
        taskList: { noop: async (payload: { t: number }) => onJob(payload) },
        preset: graphileThroughputPreset(url, CONCURRENCY),
      });
    },
    stop: async () => {
      await runner?.stop();
      await utils.release();
    },
  };
}

async function pgbossSoak(url: string): Promise<Soakable> {
  const { PgBoss } = (await import(new URL('./node_modules/pg-boss/dist/index.js', import.meta.url).href)) as any;
  // As bench/support/peers.ts drains it (pgbossThroughputWork); supervision (its maintenance) at its defaults.
  const boss = new PgBoss({ connectionString: url, schema: 'pgboss', max: 10 });
  boss.on('error', (error: Error) => console.error(`pg-boss error: ${error?.message ?? String(error)}`));
  await boss.start();
  await boss.createQueue('noop');
  return {
    // Partitioned by queue: the sizes below sum its partitions.
    table: 'pgboss.job',
    enqueue: async (payloads) => void (await boss.insert('noop', payloads.map((data) => ({ data })))),
    start: async (onJob) => {
      await boss.work('noop', pgbossThroughputWork(CONCURRENCY), async (jobs: Array<{ data: { t: number } }>) => {
        for (const job of jobs) onJob(job.data);
      });
    },
    stop: async () => {
      await boss.stop({ graceful: true, timeout: 10_000 });
    },
  };
}

const systems: Record<string, (url: string) => Promise<Soakable>> = { spool: spoolSoak, graphile: graphileSoak, pgboss: pgbossSoak };

const db = await benchDatabase();
const stats = postgres(db.url, { max: 1, onnotice: () => {} });
try {
  const make = systems[values.system!];
  if (!make) throw new Error(`--system: expected one of ${Object.keys(systems).join(', ')}`);
  const [{ autovacuum }] = (await stats`SELECT current_setting('autovacuum') AS autovacuum`) as unknown as [{ autovacuum: string }];
  console.log(`node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model}; Spool from ${spoolBuild}; ${db.server}; ${JSON.stringify(db.settings)}; autovacuum ${autovacuum}`);
  console.log(`${values.system}: ${MINUTES} min, concurrency ${CONCURRENCY}, backlog kept at ~${BACKLOG.toLocaleString('en-US')} no-op jobs\n`);
  const system = await make(db.url);
  let produced = 0;
  let handled = 0;
  let latencies: number[] = [];
  await system.start((payload) => {
    handled++;
    latencies.push(Date.now() - payload.t);
  });
  let feeding = true;
  const feeder = (async () => {
    while (feeding) {
      const room = Math.min(BATCH_MAX, BACKLOG - (produced - handled));
      if (room > 0) {
        const t = Date.now();
        await system.enqueue(Array.from({ length: room }, () => ({ t })));
        produced += room;
      } else {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  })();

  const pct = (sorted: number[], p: number) => (sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!);
  const rates: number[] = [];
  const sizes: number[] = [];
  console.log('| minute | jobs/s | p50 ms | p99 ms | table MiB | live rows | dead rows |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|');
  let before = handled;
  for (let minute = 1; minute <= MINUTES; minute++) {
    await new Promise((resolve) => setTimeout(resolve, 60_000));
    const now = handled;
    const sorted = latencies.sort((a, b) => a - b);
    latencies = [];
    // Summed over the table's partitions when it has any (pg-boss's job table has one per queue).
    const [row] = (await stats.unsafe(
      `WITH leaves AS (
         SELECT relid FROM pg_partition_tree($1::regclass) WHERE isleaf
         UNION ALL
         SELECT $1::regclass WHERE pg_partition_root($1::regclass) IS NULL -- not partitioned
       )
       SELECT sum(pg_total_relation_size(l.relid))::bigint AS bytes, sum(s.n_live_tup)::bigint AS live, sum(s.n_dead_tup)::bigint AS dead
         FROM leaves l JOIN pg_stat_user_tables s ON s.relid = l.relid`,
      [system.table],
    )) as unknown as [{ bytes: string; live: string; dead: string }];
    const rate = (now - before) / 60;
    before = now;
    rates.push(rate);
    sizes.push(Number(row.bytes));
    console.log(
      `| ${minute} | ${Math.round(rate).toLocaleString('en-US')} | ${pct(sorted, 50)} | ${pct(sorted, 99)} | ${(Number(row.bytes) / 2 ** 20).toFixed(1)} | ${row.live} | ${row.dead} |`,
    );
  }
  feeding = false;
  await feeder;
  await system.stop();
  console.log(`\nlast minute / first minute: ${(rates.at(-1)! / rates[0]!).toFixed(2)} (target ≥ 0.9); table size max ${(Math.max(...sizes) / 2 ** 20).toFixed(1)} MiB, last ${(sizes.at(-1)! / 2 ** 20).toFixed(1)} MiB`);
} finally {
  await stats.end();
  await db.close();
}
