import { existsSync } from 'node:fs';
import { z } from 'zod';
import type { Spool } from '../../src/index.js';

// Spool as users run it: the compiled dist/ when built (tsx's transform adds
// per-closure overhead that shows at tens of thousands of jobs/s), else src/.
const distEntry = new URL('../../dist/src/index.js', import.meta.url);
export const spoolModule: typeof import('../../src/index.js') = existsSync(distEntry)
  ? await import(distEntry.href)
  : await import('../../src/index.js');
const { createLogger, createSpool, defineJob } = spoolModule;
/** Which build the figures come from. */
export const spoolBuild = existsSync(distEntry) ? 'dist (compiled)' : 'src (tsx)';

export const noop = defineJob({ kind: 'bench.noop', schema: z.object({ n: z.number() }), handler: () => undefined });

/** Enqueues `jobs` no-op jobs in batches of 10,000 (not timed). */
export async function fill(spool: Spool, jobs: number, job: unknown = noop): Promise<void> {
  for (let done = 0; done < jobs; done += 10_000) {
    await spool.enqueueMany(Array.from({ length: Math.min(10_000, jobs - done) }, (_, n) => ({ job: job as typeof noop, payload: { n } })));
  }
}

/**
 * Starts one worker at `concurrency` over `bench.noop` jobs already in the
 * table and returns jobs/s from its start until every handler ran and every
 * outcome is in the table (no job left available or running), the clock the
 * peers' drains stop too. The worker's shutdown (leadership, listener, pool)
 * is not timed, as theirs is not; the table is checked for leftovers after it.
 */
export async function drain(
  spool: Spool,
  jobs: number,
  concurrency: number,
  removeOnComplete = false,
  module: typeof spoolModule = spoolModule,
): Promise<number> {
  const { createLogger, defineJob } = module;
  let handled = 0;
  let allHandled: () => void = () => {};
  const handlersDone = new Promise<void>((resolve) => (allHandled = resolve));
  const counting = defineJob({
    kind: 'bench.noop',
    schema: z.object({ n: z.number() }),
    handler: () => {
      if (++handled === jobs) allHandled();
    },
  });
  const started = performance.now();
  const worker = await spool.work({ jobs: [counting], concurrency, logger: createLogger({ level: 'warn' }), handleSignals: false, removeOnComplete });
  let seconds: number;
  try {
    await handlersDone;
    // The last outcomes land a flush after the last handler (as graphile-worker's last completion batch).
    // Each state's first row in its partial index's order (jobs_claim, jobs_lease), so the answer comes
    // from the index: a count over state IN (...) was planned as a sequential scan, which grows with the
    // history in the table (bench/scale.ts).
    for (;;) {
      const [{ open }] = (await spool.sql`
        SELECT (SELECT id FROM spool.jobs WHERE state = 'available' ORDER BY queue, priority, run_at, id LIMIT 1) IS NOT NULL
            OR (SELECT id FROM spool.jobs WHERE state = 'running' ORDER BY lease_expires_at LIMIT 1) IS NOT NULL AS open`) as unknown as [{ open: boolean }];
      if (!open) break;
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    seconds = (performance.now() - started) / 1000;
  } finally {
    await worker.stop({ graceMs: 10_000 });
  }
  const [{ left }] = (await spool.sql`SELECT count(*)::int AS left FROM spool.jobs WHERE kind = 'bench.noop' AND state <> 'completed'`) as unknown as [
    { left: number },
  ];
  if (left !== 0) throw new Error(`${left} jobs not completed after the drain`);
  if (handled !== jobs) throw new Error(`${handled} handler runs for ${jobs} jobs`);
  return jobs / seconds;
}

export async function openSpool(
  url: string,
  options: { metrics?: InstanceType<typeof spoolModule.SpoolMetrics>; module?: typeof spoolModule } = {},
): Promise<Spool> {
  const spool = (options.module?.createSpool ?? createSpool)({ connectionString: url, poolSize: 8, metrics: options.metrics });
  await spool.migrate();
  return spool;
}
