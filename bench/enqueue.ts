/**
 * Enqueue throughput: single enqueue (sequential and 16 concurrent) and
 * enqueueMany in batches of 1,000 and 10,000 (one producer, and 2 producers
 * so the client's JSON building overlaps the server's insert). Each figure
 * is the median of 3 runs; the spread is printed too.
 *
 *   npm run bench:enqueue                         # embedded PostgreSQL
 *   DATABASE_URL=postgres://… npm run bench:enqueue
 */
import os from 'node:os';
import { z } from 'zod';
import { createSpool, defineJob } from '../src/index.js';
import { benchDatabase } from './support/database.js';

const RUNS = 3;
const noop = defineJob({ kind: 'bench.noop', schema: z.object({ n: z.number() }) });

async function measure(label: string, jobs: number, run: () => Promise<void>): Promise<void> {
  const rates: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const started = process.hrtime.bigint();
    await run();
    rates.push(jobs / (Number(process.hrtime.bigint() - started) / 1e9));
  }
  rates.sort((a, b) => a - b);
  const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
  console.log(
    `| ${label.padEnd(36)} | ${fmt(rates[Math.floor(RUNS / 2)]!).padStart(9)} | ${fmt(rates[0]!).padStart(9)} – ${fmt(rates[RUNS - 1]!).padEnd(9)} |`,
  );
}

/** Runs `total / chunk` calls of `step`, `producers` at a time. */
async function produce(total: number, chunk: number, producers: number, step: () => Promise<unknown>): Promise<void> {
  let issued = 0;
  await Promise.all(
    Array.from({ length: producers }, async () => {
      while (issued < total) {
        issued += chunk;
        await step();
      }
    }),
  );
}

const db = await benchDatabase();
const spool = createSpool({ connectionString: db.url, poolSize: 16 });
try {
  await spool.migrate();
  // As after a worker for the kind started: enqueues look its defaults up (sql/0004).
  await spool.registerKinds([noop]);
  console.log(`node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model}, ${Math.round(os.totalmem() / 2 ** 30)} GiB`);
  console.log(`server: ${db.server}; ${JSON.stringify(db.settings)}\n`);
  // Warm every pooled connection (prepared statement, plpgsql plan cache).
  await Promise.all(Array.from({ length: 16 }, (_, n) => spool.enqueueMany([{ job: noop, payload: { n } }])));

  console.log(`| ${'case'.padEnd(36)} | ${'jobs/s'.padStart(9)} | ${'min – max'.padEnd(21)} |`);
  console.log(`|${'-'.repeat(38)}|${'-'.repeat(11)}|${'-'.repeat(23)}|`);
  let n = 0;
  await measure('enqueue, sequential', 2_000, () => produce(2_000, 1, 1, () => spool.enqueue(noop, { n: n++ })));
  await measure('enqueue, 16 concurrent', 10_000, () => produce(10_000, 1, 16, () => spool.enqueue(noop, { n: n++ })));
  for (const batch of [1_000, 10_000]) {
    const items = Array.from({ length: batch }, (_, i) => ({ job: noop, payload: { n: i } }));
    for (const producers of [1, 2]) {
      const label = `enqueueMany, batches of ${batch.toLocaleString('en-US')}${producers > 1 ? ` × ${producers}` : ''}`;
      await measure(label, 100_000, () => produce(100_000, batch, producers, () => spool.enqueueMany(items)));
    }
  }
  // The ceiling for comparison: the same rows made inside the server, no JSON, no client.
  await measure('raw INSERT … SELECT, 10,000/statement', 100_000, () =>
    produce(100_000, 10_000, 1, () =>
      spool.sql`INSERT INTO spool.jobs (kind, payload, max_attempts)
                SELECT 'bench.noop', jsonb_build_object('n', g), 25 FROM generate_series(1, 10000) AS g`,
    ),
  );
  const [{ jobs }] = (await spool.sql`SELECT count(*)::int AS jobs FROM spool.jobs`) as unknown as [{ jobs: number }];
  console.log(`\n${jobs.toLocaleString('en-US')} jobs in the table at the end`);
} finally {
  await spool.close();
  await db.close();
}
