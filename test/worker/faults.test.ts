import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { SpoolMetrics, defineJob, type Worker } from '../../src/index.js';
import { parseMetrics, sampleValue } from '../support/metrics.js';
import { createLogger } from '../../src/observability/logger.js';
import { useTestDatabase } from '../support/database.js';
import { createExecutionsTable, recordExecution, recordingJob } from '../support/executions.js';
import { waitFor } from '../support/factories.js';

const db = useTestDatabase();
const quiet = createLogger({ level: 'silent' });
const workers: Worker[] = [];

beforeAll(async () => {
  await createExecutionsTable(db.sql);
});

afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop({ graceMs: 500 })));
});

async function work(options: Parameters<typeof db.spool.work>[0]): Promise<Worker> {
  const worker = await db.spool.work({ logger: quiet, handleSignals: false, ...options });
  workers.push(worker);
  return worker;
}

const job = async (id: string) => (await db.spool.getJob(id))!;
const executions = async (id: string) =>
  Number((await db.sql`SELECT count(*) AS n FROM public.executions WHERE job_id = ${id}`)[0]!.n);

/** A promise with its resolve function, to hold a handler until the test lets it go. */
function gate() {
  let open: () => void = () => {};
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, opened };
}

describe('stale workers', () => {
  it('a worker whose lease expired and whose job completed elsewhere cannot complete it: nothing changes, the stale write is counted', async () => {
    const hold = gate();
    const staleJob = defineJob({
      kind: 'stale.race',
      schema: z.object({}),
      handler: async (_p, ctx) => {
        await recordExecution(ctx, 'stale');
        await hold.opened;
        return 'from the stale worker';
      },
    });
    const freshJob = defineJob({ kind: 'stale.race', schema: z.object({}), handler: async () => 'from the fresh worker' });
    // The stale worker: one slot (held by this job), no heartbeat during the test (so it does not
    // learn that it lost the lease), no maintenance.
    const staleMetrics = new SpoolMetrics({ defaultMetrics: false });
    const freshMetrics = new SpoolMetrics({ defaultMetrics: false });
    const stale = await work({ jobs: [staleJob], concurrency: 1, leaseMs: 600_000, heartbeatMs: 300_000, maintenance: false, metrics: staleMetrics });
    const { id } = await db.spool.enqueue(staleJob, {});
    await waitFor(async () => (await executions(id)) === 1, 'the stale worker started the job');

    // Its lease expires (as if it had hung); a fresh worker reaps the job and completes it.
    await db.sql`UPDATE spool.jobs SET lease_expires_at = now() - interval '1 second' WHERE id = ${id}`;
    const fresh = await work({ jobs: [freshJob], leaseMs: 2_000, promoteIntervalMaxMs: 50, metrics: freshMetrics });
    await waitFor(async () => (await job(id)).state === 'completed', 'the fresh worker completed it', 20_000);
    expect(fresh.stats.completed).toBe(1);

    hold.open();
    await waitFor(() => stale.stats.staleWrites === 1, 'the stale write to be refused');
    expect(await job(id)).toMatchObject({ state: 'completed', attempt: 2, result: 'from the fresh worker' });
    expect((await job(id)).errors.map((e) => e.message)).toEqual([expect.stringMatching(/^lease expired/)]);
    // The metrics say the same: the stale worker's write refused and nothing completed; the
    // fresh worker (the maintenance leader) rescued the job and completed it.
    const series = { queue: 'default', kind: 'stale.race' };
    const staleSamples = parseMetrics(await staleMetrics.text());
    expect(sampleValue(staleSamples, 'spool_jobs_stale_writes_total', series)).toBe(1);
    expect(sampleValue(staleSamples, 'spool_jobs_started_total', series)).toBe(1);
    expect(sampleValue(staleSamples, 'spool_jobs_completed_total', series) ?? 0).toBe(0);
    const freshSamples = parseMetrics(await freshMetrics.text());
    expect(sampleValue(freshSamples, 'spool_jobs_rescued_total', series)).toBe(1);
    expect(sampleValue(freshSamples, 'spool_jobs_completed_total', series)).toBe(1);
  });
});

describe('cancellation', () => {
  it('cancels a running job: the handler sees signal.aborted, the job ends cancelled and is not retried', async () => {
    let sawAbort = false;
    const cancellable = defineJob({
      kind: 'cancel.polite',
      schema: z.object({}),
      maxAttempts: 5,
      handler: async (_p, ctx) => {
        await recordExecution(ctx);
        await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
        sawAbort = ctx.signal.aborted && (ctx.signal.reason as Error).name === 'CancelledError';
        throw ctx.signal.reason;
      },
    });
    await work({ jobs: [cancellable] });
    const { id } = await db.spool.enqueue(cancellable, {});
    await waitFor(async () => (await executions(id)) === 1, 'the job to start');
    await db.spool.cancelJob(id);
    const cancelled = await waitFor(async () => ((await job(id)).state === 'cancelled' ? job(id) : null), 'the job to end cancelled');
    expect(sawAbort).toBe(true);
    expect(cancelled).toMatchObject({ attempt: 1, errors: [] });
    expect(cancelled.finishedAt).toBeInstanceOf(Date);
    expect(await executions(id)).toBe(1);
  });

  it('cancels a running job whose handler ignores the signal: abandoned after the grace, cancelled, slot freed', async () => {
    const stubborn = defineJob({
      kind: 'cancel.stubborn',
      schema: z.object({}),
      handler: async (_p, ctx) => {
        await recordExecution(ctx);
        await new Promise((resolve) => setTimeout(resolve, 60_000).unref());
      },
    });
    const quick = recordingJob('cancel.next');
    const worker = await work({ jobs: [stubborn, quick], concurrency: 1, abandonAfterMs: 200 });
    const { id } = await db.spool.enqueue(stubborn, {});
    await waitFor(async () => (await executions(id)) === 1, 'the job to start');
    await db.spool.cancelJob(id);
    await waitFor(async () => (await job(id)).state === 'cancelled', 'the job to end cancelled');
    expect(worker.stats.abandoned).toBe(1);
    // The only slot is free again.
    const next = await db.spool.enqueue(quick, {});
    await waitFor(async () => (await job(next.id)).state === 'completed', 'the next job to run in the freed slot');
  });

  it('cancels scheduled and available jobs before any worker runs them', async () => {
    const never = recordingJob('cancel.before');
    const scheduled = await db.spool.enqueue(never, {}, { delayMs: 200 });
    const available = await db.spool.enqueue(never, {}, { queue: 'held' });
    await db.spool.cancelJob(scheduled.id);
    await db.spool.cancelJob(available.id);
    await work({ jobs: [never], queues: ['default', 'held'], promoteIntervalMaxMs: 20 });
    const marker = await db.spool.enqueue(never, {}, { delayMs: 300 });
    await waitFor(async () => (await job(marker.id)).state === 'completed', 'a later job to run');
    expect((await job(scheduled.id)).state).toBe('cancelled');
    expect((await job(available.id)).state).toBe('cancelled');
    expect(await executions(scheduled.id)).toBe(0);
    expect(await executions(available.id)).toBe(0);
  });
});

describe('timeouts', () => {
  it('aborts the handler at the deadline and retries the job', async () => {
    const slowOnce = defineJob({
      kind: 'timeout.polite',
      schema: z.object({}),
      timeoutMs: 200,
      backoff: { baseMs: 10, jitter: 0 },
      handler: async (_p, ctx) => {
        await recordExecution(ctx);
        if (ctx.job.attempt > 1) return 'second time lucky';
        await new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true }));
      },
    });
    const worker = await work({ jobs: [slowOnce], promoteIntervalMaxMs: 20 });
    const { id } = await db.spool.enqueue(slowOnce, {});
    const done = await waitFor(async () => ((await job(id)).state === 'completed' ? job(id) : null), 'the retry to complete');
    expect(done).toMatchObject({ attempt: 2, result: 'second time lucky' });
    expect(done.errors.map((e) => e.message)).toEqual(['timed out after 200 ms']);
    expect(worker.stats.timedOut).toBe(1);
    expect(worker.stats.abandoned).toBe(0);
  });

  it('a per-job timeoutMs overrides the kind; a handler that ignores it is abandoned: slot freed, job failed as timed out', async () => {
    const stubborn = defineJob({
      kind: 'timeout.stubborn',
      schema: z.object({}),
      timeoutMs: 60_000,
      maxAttempts: 1,
      handler: async (_p, ctx) => {
        await recordExecution(ctx);
        await new Promise((resolve) => setTimeout(resolve, 60_000).unref());
      },
    });
    const quick = recordingJob('timeout.next');
    const worker = await work({ jobs: [stubborn, quick], concurrency: 1, abandonAfterMs: 100 });
    const { id } = await db.spool.enqueue(stubborn, {}, { timeoutMs: 150 });
    const dead = await waitFor(async () => ((await job(id)).state === 'dead' ? job(id) : null), 'the timed-out job to fail');
    expect(dead.errors[0]!.message).toMatch(/^timed out after 150 ms; the handler ignored the abort signal for 100 ms and was abandoned/);
    expect(worker.stats).toMatchObject({ abandoned: 1, timedOut: 1 });
    const next = await db.spool.enqueue(quick, {});
    await waitFor(async () => (await job(next.id)).state === 'completed', 'the next job to run in the freed slot');
  });
});

describe('graceful stop', () => {
  it('lets in-flight jobs finish within the grace', async () => {
    const slow = recordingJob('stop.finish', async () => {
      await new Promise((resolve) => setTimeout(resolve, 300));
      return 'finished';
    });
    const worker = await work({ jobs: [slow], concurrency: 5 });
    const results = await db.spool.enqueueMany(Array.from({ length: 5 }, () => ({ job: slow, payload: {} })));
    await waitFor(async () => Number((await db.sql`SELECT count(*) AS n FROM public.executions e JOIN spool.all_jobs j ON j.id = e.job_id WHERE j.kind = 'stop.finish'`)[0]!.n) === 5, 'all five started');
    await worker.stop({ graceMs: 10_000 });
    for (const { id } of results) expect(await job(id)).toMatchObject({ state: 'completed', result: 'finished', attempt: 1 });
  });

  it('returns jobs still running after the grace to available without using up an attempt', async () => {
    let aborted = 0;
    const endless = recordingJob('stop.endless', async (_p, ctx) => {
      await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
      aborted++;
      throw ctx.signal.reason;
    });
    const stubborn = recordingJob('stop.stubborn', async () => {
      await new Promise((resolve) => setTimeout(resolve, 60_000).unref());
    });
    const worker = await work({ jobs: [endless, stubborn], concurrency: 4, abandonAfterMs: 200 });
    const results = await db.spool.enqueueMany([
      { job: endless, payload: {} },
      { job: endless, payload: {} },
      { job: stubborn, payload: {} },
    ]);
    await waitFor(async () => worker.inFlight === 3, 'all three running');
    await worker.stop({ graceMs: 200 });
    expect(aborted).toBe(2);
    for (const { id } of results) {
      expect(await job(id)).toMatchObject({ state: 'available', attempt: 0, workerId: null, leaseExpiresAt: null, errors: [] });
    }
    expect(worker.stats.released).toBe(3);
  });
});

describe('wake-ups', () => {
  it('after the LISTEN backend is killed, a job enqueued later still starts within 5 s with a 60 s fallback poll', async () => {
    const quick = recordingJob('listen.kill');
    const worker = await work({ jobs: [quick], pollIntervalMs: 60_000, pollIntervalIdleMaxMs: 60_000, listenerCheckMs: 60_000 });
    await waitFor(() => worker.listening, 'the listener to subscribe');
    const before = worker.services.listener.resubscriptions;
    const pid = worker.services.listener.backendPid!;
    const backend = async () =>
      Number((await db.sql`SELECT count(*) AS n FROM pg_stat_activity WHERE pid = ${pid} AND application_name = 'spool-listener'`)[0]!.n);
    expect(await backend()).toBe(1);
    await db.sql`SELECT pg_terminate_backend(${pid})`;
    await waitFor(async () => (await backend()) === 0, 'the LISTEN backend to be gone');
    const { id } = await db.spool.enqueue(quick, {});
    await waitFor(async () => (await job(id)).state === 'completed', 'the job to run', 5_000);
    await waitFor(() => worker.services.listener.resubscriptions > before, 'the listener to subscribe again');
    expect(worker.services.listener.backendPid).not.toBe(pid);
  });

  it('a notification wakes an idle worker at once (not the poll)', async () => {
    const quick = recordingJob('listen.wake');
    await work({ jobs: [quick], pollIntervalMs: 60_000, pollIntervalIdleMaxMs: 60_000 });
    for (let i = 0; i < 3; i++) {
      const { id } = await db.spool.enqueue(quick, { i });
      await waitFor(async () => (await job(id)).state === 'completed', 'the job to run', 5_000);
    }
  });
});
