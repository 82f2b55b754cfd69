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
export async function fill(spool: Spool, jobs: number): Promise<void> {
  for (let done = 0; done < jobs; done += 10_000) {
    await spool.enqueueMany(Array.from({ length: Math.min(10_000, jobs - done) }, (_, n) => ({ job: noop, payload: { n } })));
  }
}

/**
 * Starts one worker at `concurrency` over `bench.noop` jobs already in the
 * table and returns jobs/s from its start until `jobs` of them completed.
 */
export async function drain(
  spool: Spool,
  jobs: number,
  concurrency: number,
  removeOnComplete = false,
  workerOptions: Record<string, unknown> = {},
): Promise<number> {
  let completed = 0;
  let done: () => void = () => {};
  const finished = new Promise<void>((resolve) => (done = resolve));
  const counting = defineJob({
    kind: 'bench.noop',
    schema: z.object({ n: z.number() }),
    handler: () => {
      if (++completed === jobs) done();
    },
  });
  const started = performance.now();
  const worker = await spool.work({ jobs: [counting], concurrency, logger: createLogger({ level: 'warn' }), handleSignals: false, removeOnComplete, ...workerOptions });
  await finished;
  // Handlers are done; the outcomes must be in the table too.
  await worker.stop({ graceMs: 10_000 });
  const seconds = (performance.now() - started) / 1000;
  const [{ left }] = (await spool.sql`SELECT count(*)::int AS left FROM spool.jobs WHERE kind = 'bench.noop' AND state <> 'completed'`) as unknown as [
    { left: number },
  ];
  if (left !== 0) throw new Error(`${left} jobs not completed after the drain`);
  return jobs / seconds;
}

export async function openSpool(url: string, options: { metrics?: InstanceType<typeof spoolModule.SpoolMetrics> } = {}): Promise<Spool> {
  const spool = createSpool({ connectionString: url, poolSize: 8, metrics: options.metrics });
  await spool.migrate();
  return spool;
}
