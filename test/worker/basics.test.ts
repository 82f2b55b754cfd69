import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PermanentError, type Worker } from '../../src/index.js';
import { useTestDatabase } from '../support/database.js';
import { createExecutionsTable, recordingJob } from '../support/executions.js';
import { waitFor } from '../support/factories.js';
import { createLogger } from '../../src/observability/logger.js';

const db = useTestDatabase();
const quiet = createLogger({ level: 'silent' });
let worker: Worker | undefined;

beforeAll(async () => {
  await createExecutionsTable(db.sql);
});

afterEach(async () => {
  await worker?.stop({ graceMs: 1_000 });
  worker = undefined;
});

async function stateOf(id: string) {
  return (await db.spool.getJob(id))!;
}

describe('worker', () => {
  it('runs a job and stores its result', async () => {
    const job = recordingJob('basic.echo', (payload) => ({ echoed: payload }));
    worker = await db.spool.work({ jobs: [job], logger: quiet, handleSignals: false });
    const { id } = await db.spool.enqueue(job, { hello: 'world' });
    const done = await waitFor(async () => ((await stateOf(id)).state === 'completed' ? stateOf(id) : null), 'job completed');
    expect(done).toMatchObject({ attempt: 1, result: { echoed: { hello: 'world' } }, workerId: null, leaseExpiresAt: null });
    expect(done.finishedAt).toBeInstanceOf(Date);
  });

  it('removeOnComplete deletes completed rows (worker default or per kind); failed attempts are kept and retried', async () => {
    let failedOnce = false;
    const flaky = recordingJob('remove.flaky', () => {
      if (!failedOnce) {
        failedOnce = true;
        throw new Error('first try fails');
      }
    }, { backoff: { baseMs: 0 } });
    const kept = recordingJob('remove.kept', undefined, { removeOnComplete: false });
    worker = await db.spool.work({ jobs: [flaky, kept], logger: quiet, handleSignals: false, removeOnComplete: true, promoteIntervalMaxMs: 50 });
    const { id: flakyId } = await db.spool.enqueue(flaky, {});
    const { id: keptId } = await db.spool.enqueue(kept, {});
    await waitFor(async () => (await db.spool.getJob(flakyId)) === null, 'flaky job removed after its second attempt');
    const runs = await db.sql`SELECT attempt FROM public.executions WHERE job_id = ${flakyId} ORDER BY seq`;
    expect(runs.map((r) => r.attempt)).toEqual([1, 2]);
    await waitFor(async () => (await stateOf(keptId)).state === 'completed', 'kept job completed');
    expect(await stateOf(keptId)).toMatchObject({ state: 'completed', result: { ok: true } });
    expect(worker.stats).toMatchObject({ completed: 2, retried: 1 });
  });

  it('ctx can be destructured: progress is stored on the job, signal and log work without `this`', async () => {
    const job = recordingJob('ctx.destructured', async (_payload, { progress, signal, log, job: info }) => {
      await progress({ pct: 50, of: info.kind });
      log.info('half way');
      return { aborted: signal.aborted };
    });
    worker = await db.spool.work({ jobs: [job], logger: quiet, handleSignals: false });
    const { id } = await db.spool.enqueue(job, {});
    await waitFor(async () => (await stateOf(id)).state === 'completed', 'job completed');
    expect(await stateOf(id)).toMatchObject({ progress: { pct: 50, of: 'ctx.destructured' }, result: { aborted: false } });
  });

  it('runs by priority, then FIFO within a priority, at concurrency 1', async () => {
    const job = recordingJob('order.check');
    await db.spool.pauseQueue('ordered');
    const ids: Record<string, string> = {};
    for (const [name, priority] of [['p5-a', 5], ['p1-a', 1], ['p5-b', 5], ['p1-b', 1], ['p3', 3], ['p1-c', 1]] as const) {
      ids[name] = (await db.spool.enqueue(job, { name }, { priority, queue: 'ordered' })).id;
    }
    worker = await db.spool.work({ jobs: [job], queues: ['ordered'], concurrency: 1, logger: quiet, handleSignals: false });
    await db.spool.resumeQueue('ordered');
    await waitFor(async () => (await db.sql`SELECT count(*)::int AS n FROM public.executions WHERE job_id = ANY(${Object.values(ids)}::bigint[])`)[0]!.n === 6, 'all six ran');
    const order = await db.sql`SELECT e.job_id::text AS id FROM public.executions e WHERE e.job_id = ANY(${Object.values(ids)}::bigint[]) ORDER BY e.seq`;
    expect(order.map((r) => r.id)).toEqual(['p1-a', 'p1-b', 'p1-c', 'p3', 'p5-a', 'p5-b'].map((n) => ids[n]));
  });

  it('never starts a job before its run_at (database time)', async () => {
    const job = recordingJob('later.check');
    worker = await db.spool.work({ jobs: [job], logger: quiet, handleSignals: false, promoteIntervalMaxMs: 50 });
    const { id } = await db.spool.enqueue(job, {}, { delayMs: 1_500 });
    await waitFor(async () => (await stateOf(id)).state === 'completed', 'delayed job completed');
    const [row] = await db.sql`
      SELECT e.at >= j.run_at AS on_time, e.at - j.created_at AS waited
        FROM public.executions e JOIN spool.all_jobs j ON j.id = e.job_id WHERE j.id = ${id}`;
    expect(row!.on_time).toBe(true);
  });

  it('retries with backoff: fails twice then succeeds → completed, attempt 3, two errors, gaps as configured', async () => {
    const job = recordingJob(
      'flaky',
      (_payload, ctx) => {
        if (ctx.job.attempt < 3) throw new Error(`boom ${ctx.job.attempt}`);
        return 'finally';
      },
      { backoff: { baseMs: 300, jitter: 0 } },
    );
    worker = await db.spool.work({ jobs: [job], logger: quiet, handleSignals: false, promoteIntervalMaxMs: 20 });
    const { id } = await db.spool.enqueue(job, {});
    const done = await waitFor(async () => ((await stateOf(id)).state === 'completed' ? stateOf(id) : null), 'flaky job completed');
    expect(done.attempt).toBe(3);
    expect(done.result).toBe('finally');
    expect(done.errors).toHaveLength(2);
    expect(done.errors.map((e) => [e.attempt, e.message])).toEqual([
      [1, 'Error: boom 1'],
      [2, 'Error: boom 2'],
    ]);
    expect(done.errors[0]!.stack).toContain('boom 1');
    const runs = await db.sql`SELECT extract(epoch FROM at) * 1000 AS at FROM public.executions WHERE job_id = ${id} ORDER BY seq`;
    const gaps = runs.slice(1).map((r, i) => Number(r.at) - Number(runs[i]!.at));
    // baseMs 300, doubling, no jitter: ≥ 300 ms then ≥ 600 ms between attempts.
    expect(gaps[0]).toBeGreaterThanOrEqual(300);
    expect(gaps[1]).toBeGreaterThanOrEqual(600);
    expect(gaps[0]).toBeLessThan(5_000);
  });

  it('attempts exhausted → dead', async () => {
    const job = recordingJob('always.fails', () => { throw new Error('nope'); }, { maxAttempts: 2, backoff: { baseMs: 10, jitter: 0 } });
    worker = await db.spool.work({ jobs: [job], logger: quiet, handleSignals: false, promoteIntervalMaxMs: 20 });
    const { id } = await db.spool.enqueue(job, {});
    const dead = await waitFor(async () => ((await stateOf(id)).state === 'dead' ? stateOf(id) : null), 'job dead');
    expect(dead.attempt).toBe(2);
    expect(dead.errors).toHaveLength(2);
    expect(dead.finishedAt).toBeInstanceOf(Date);
    const [{ n }] = (await db.sql`SELECT count(*)::int AS n FROM public.executions WHERE job_id = ${id}`) as unknown as [{ n: number }];
    expect(n).toBe(2);
  });

  it('PermanentError → dead after one attempt', async () => {
    const job = recordingJob('permanent', () => { throw new PermanentError('bad input'); }, { maxAttempts: 5 });
    worker = await db.spool.work({ jobs: [job], logger: quiet, handleSignals: false });
    const { id } = await db.spool.enqueue(job, {});
    const dead = await waitFor(async () => ((await stateOf(id)).state === 'dead' ? stateOf(id) : null), 'job dead');
    expect(dead.attempt).toBe(1);
    expect(dead.errors.map((e) => e.message)).toEqual(['PermanentError: bad input']);
  });

  it('a payload that does not match the schema goes dead with the field named', async () => {
    const job = recordingJob('schema.strict');
    worker = await db.spool.work({ jobs: [job], logger: quiet, handleSignals: false });
    // Enqueued by kind from SQL, so nothing validated it on the way in.
    const [{ id }] = (await db.sql`SELECT spool.enqueue('schema.strict', '"not an object"') AS id`) as unknown as [{ id: string }];
    const dead = await waitFor(async () => ((await stateOf(id)).state === 'dead' ? stateOf(id) : null), 'job dead');
    expect(dead.errors[0]!.message).toMatch(/payload does not match the schema of schema\.strict/);
  });

  it('does not claim kinds it has no handler for, and warns once at start about those waiting', async () => {
    const job = recordingJob('known.kind');
    const { id: unknownId } = await db.spool.enqueue('unknown.kind', {});
    await db.spool.enqueue('unknown.kind', {});
    await db.spool.enqueue(job, {}); // waits too, but has a handler: no warning for it
    const lines: Array<Record<string, unknown>> = [];
    const logger = createLogger({ level: 'warn', destination: { write: (line: string) => void lines.push(JSON.parse(line)) } });
    worker = await db.spool.work({ jobs: [job], logger, handleSignals: false });
    const { id } = await db.spool.enqueue(job, {});
    await waitFor(async () => (await stateOf(id)).state === 'completed', 'known job completed');
    expect((await stateOf(unknownId)).state).toBe('available');
    await waitFor(async () => lines.some((line) => line.kind === 'unknown.kind'), 'the warning about unknown.kind');
    const warnings = lines.filter((line) => String(line.msg).includes('no handler here runs them'));
    expect(warnings).toEqual([expect.objectContaining({ kind: 'unknown.kind', waiting: 2, queues: ['default'] })]);
  });

  it('a paused queue is not claimed from; resuming wakes the worker', async () => {
    const paused = recordingJob('paused.kind', undefined, { queue: 'pausable' });
    const active = recordingJob('active.kind', undefined, { queue: 'active' });
    await db.spool.pauseQueue('pausable');
    worker = await db.spool.work({ jobs: [paused, active], logger: quiet, handleSignals: false });
    const { id } = await db.spool.enqueue(paused, {});
    // Each active job is claimed by a claim that also looked at the paused queue.
    for (let i = 0; i < 3; i++) {
      const other = await db.spool.enqueue(active, { i });
      await waitFor(async () => (await stateOf(other.id)).state === 'completed', 'active job completed');
      expect((await stateOf(id)).state).toBe('available');
    }
    await db.spool.resumeQueue('pausable');
    await waitFor(async () => (await stateOf(id)).state === 'completed', 'job completed after resume');
  });
});
