/**
 * Pickup latency: an idle worker (concurrency 10), then 2,000 jobs enqueued
 * one at a time at 200/s; for each job, the time from just before its
 * enqueue call to the start of its handler, in this same process.
 * Reports p50/p95/p99/max. Peers run too when bench/node_modules has them.
 *
 *   npx tsx bench/latency.ts [count=2000] [rate=200] [systems=spool,graphile,pgboss,bullmq]
 */
import os from 'node:os';
import { z } from 'zod';
import { benchDatabase } from './support/database.js';
import { spoolBuild, spoolModule } from './support/spool.js';

const { createLogger, createSpool, defineJob } = spoolModule;
import { peers } from './support/peers.js';

const COUNT = Number(process.argv[2] ?? 2_000);
const RATE = Number(process.argv[3] ?? 200);
const SYSTEMS = (process.argv[4] ?? 'spool,graphile,pgboss,bullmq').split(',');

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function spoolLatency(url: string): Promise<number[]> {
  const spool = createSpool({ connectionString: url, poolSize: 4 });
  await spool.migrate();
  const latencies: number[] = [];
  let done: () => void = () => {};
  const finished = new Promise<void>((resolve) => (done = resolve));
  const probe = defineJob({
    kind: 'bench.latency',
    schema: z.object({ t: z.number() }),
    handler: ({ t }) => {
      latencies.push(performance.now() - t);
      if (latencies.length === COUNT) done();
    },
  });
  const worker = await spool.work({ jobs: [probe], concurrency: 10, logger: createLogger({ level: 'warn' }), handleSignals: false });
  await new Promise((resolve) => setTimeout(resolve, 500)); // idle
  const interval = 1000 / RATE;
  const start = performance.now();
  for (let i = 0; i < COUNT; i++) {
    const due = start + i * interval;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    void spool.enqueue(probe, { t: performance.now() });
  }
  await finished;
  await worker.stop({ graceMs: 1_000 });
  await spool.close();
  return latencies;
}

const db = await benchDatabase();
try {
  console.log(`node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model}; Spool from ${spoolBuild}; ${db.server}; ${JSON.stringify(db.settings)}`);
  console.log(`${COUNT} jobs at ${RATE}/s, enqueue → handler start, ms\n`);
  console.log('| system | p50 | p95 | p99 | max |');
  console.log('|---|---:|---:|---:|---:|');
  for (const system of SYSTEMS) {
    let latencies: number[] | undefined;
    if (system === 'spool') latencies = await spoolLatency(db.url);
    else {
      const peer = peers[system];
      if (!peer) continue;
      latencies = await peer.latency(db.url, COUNT, RATE).catch((error: Error) => {
        console.log(`| ${system} | skipped: ${error.message.split('\n')[0]} | | | |`);
        return undefined;
      });
    }
    if (!latencies) continue;
    const sorted = [...latencies].sort((a, b) => a - b);
    const f = (n: number) => n.toFixed(1);
    console.log(`| ${system} | ${f(percentile(sorted, 50))} | ${f(percentile(sorted, 95))} | ${f(percentile(sorted, 99))} | ${f(sorted[sorted.length - 1]!)} |`);
  }
} finally {
  await db.close();
}
