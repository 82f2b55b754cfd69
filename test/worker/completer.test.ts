import postgres from 'postgres';
import { describe, expect, it } from 'vitest';
import { postgresExecutor } from '../../src/db/executor.js';
import { createLogger } from '../../src/observability/logger.js';
import { appliedState, Completer, type FinishExceptions } from '../../src/worker/completer.js';
import type { Outcome } from '../../src/queries/finish.js';
import { byId } from '../../src/worker/heartbeat.js';
import { useTestDatabase } from '../support/database.js';

const db = useTestDatabase();

/** A completer for `workerId` on `pool` that writes only when drained. */
function completerOn(pool: postgres.Sql, workerId: string): Completer {
  return new Completer({
    executor: postgresExecutor(pool),
    quotedSchema: '"spool"',
    workerId,
    channel: 'spool_jobs',
    flushMs: 60_000,
    log: createLogger({ level: 'silent' }),
    onWritten: () => {},
  });
}

describe('completer', () => {
  it('at shutdown, gives up writing outcomes when the database is gone instead of retrying forever', async () => {
    const pool = postgres(db.url, { max: 1, onnotice: () => {} });
    const written: unknown[] = [];
    const completer = new Completer({
      executor: postgresExecutor(pool),
      quotedSchema: '"spool"',
      workerId: 'w-gone',
      channel: 'spool_jobs',
      flushMs: 60_000,
      log: createLogger({ level: 'silent' }),
      onWritten: (outcomes) => written.push(...outcomes),
    });
    await pool.end();
    completer.push({ id: '1', attempt: 1, outcome: 'completed', result: null });
    await completer.drain(3);
    expect(completer.counters.errors).toBe(3);
    expect(completer.pending).toBe(0);
    expect(written).toEqual([]);
  });

  it('writes buffered outcomes in one statement and counts the ones the database refuses as stale', async () => {
    const { id } = await db.spool.enqueue('completer.kind', {});
    await db.sql`UPDATE spool.jobs SET state = 'running', attempt = 1, worker_id = 'w1', lease_expires_at = now() + interval '1 minute' WHERE id = ${id}`;
    const statements: string[] = [];
    const pool = postgres(db.url, { max: 1, onnotice: () => {}, debug: (_c, query) => statements.push(query) });
    const completer = completerOn(pool, 'w1');
    await pool`SELECT 1`; // connect first: postgres.js fetches array types on connect
    statements.length = 0;
    completer.push({ id, attempt: 1, outcome: 'completed', result: { ok: 1 } });
    completer.push({ id, attempt: 2, outcome: 'completed', result: { stale: true } }); // wrong attempt: refused
    await completer.drain();
    await pool.end();
    expect(statements).toHaveLength(1);
    expect(completer.counters).toMatchObject({ completed: 1, stale: 1 });
    expect(await db.spool.getJob(id)).toMatchObject({ state: 'completed', result: { ok: 1 } });
  });

  it('deletes a completed job when asked to, under the same fence: a stale removal deletes nothing', async () => {
    const running = async (workerId: string) => {
      const { id } = await db.spool.enqueue('completer.remove', {});
      await db.sql`UPDATE spool.jobs SET state = 'running', attempt = 1, worker_id = ${workerId}, lease_expires_at = now() + interval '1 minute' WHERE id = ${id}`;
      return id;
    };
    const mine = await running('w-remove');
    const othersJob = await running('w-other'); // reaped and re-claimed by another worker
    const pool = postgres(db.url, { max: 1, onnotice: () => {} });
    const completer = completerOn(pool, 'w-remove');
    completer.push({ id: mine, attempt: 1, outcome: 'completed', remove: true });
    completer.push({ id: othersJob, attempt: 1, outcome: 'completed', remove: true });
    completer.push({ id: mine, attempt: 2, outcome: 'completed', remove: true }); // an attempt it never had
    await completer.drain();
    await pool.end();
    expect(completer.counters).toMatchObject({ completed: 1, stale: 2 });
    expect(await db.spool.getJob(mine)).toBeNull();
    expect(await db.spool.getJob(othersJob)).toMatchObject({ state: 'running', workerId: 'w-other', attempt: 1 });
  });

  it('learns every outcome\'s resulting state from a batch that mixes completions, retries, releases and stale writes', async () => {
    const running = async (attempt: number, maxAttempts = 5) => {
      const { id } = await db.spool.enqueue('completer.mixed', {}, { maxAttempts });
      await db.sql`UPDATE spool.jobs SET state = 'running', attempt = ${attempt}, worker_id = 'w-mixed', lease_expires_at = now() + interval '1 minute' WHERE id = ${id}`;
      return id;
    };
    const [done, retried, exhausted, released, removed] = [await running(1), await running(1), await running(3, 3), await running(2), await running(1)];
    const outcomes: Outcome[] = [
      { id: done, attempt: 1, outcome: 'completed', result: 1 },
      { id: retried, attempt: 1, outcome: 'failed', error: { message: 'boom' }, delay_ms: 60_000 },
      { id: exhausted, attempt: 3, outcome: 'failed', error: { message: 'last' } },
      { id: released, attempt: 2, outcome: 'released' },
      { id: removed, attempt: 1, outcome: 'completed', remove: true },
      { id: retried, attempt: 0, outcome: 'completed' }, // an old attempt of a job whose current one failed: stale
      { id: done, attempt: 7, outcome: 'failed', error: { message: 'never held' } }, // stale
    ];
    const pool = postgres(db.url, { max: 1, onnotice: () => {} });
    const listener = postgres(db.url, { max: 1, onnotice: () => {} });
    const notified: string[] = [];
    await listener.listen('spool_jobs', (payload) => notified.push(payload));
    let applied: FinishExceptions | undefined;
    const completer = new Completer({
      executor: postgresExecutor(pool),
      quotedSchema: '"spool"',
      workerId: 'w-mixed',
      channel: 'spool_jobs',
      flushMs: 60_000,
      log: createLogger({ level: 'silent' }),
      onWritten: (_outcomes, rows) => (applied = rows),
    });
    for (const outcome of outcomes) completer.push(outcome);
    await completer.drain();
    await pool.end();
    expect(outcomes.map((outcome) => appliedState(applied!, outcome))).toEqual(['completed', 'scheduled', 'dead', 'available', 'completed', undefined, undefined]);
    expect(completer.counters).toMatchObject({ completed: 2, scheduled: 1, dead: 1, available: 1, stale: 2, flushes: 1 });
    const states = await db.sql`SELECT id::text, state::text FROM spool.all_jobs WHERE kind = 'completer.mixed' ORDER BY id`;
    expect(Object.fromEntries(states.map((row) => [row.id, row.state]))).toEqual({ [done]: 'completed', [retried]: 'scheduled', [exhausted]: 'dead', [released]: 'available' });
    // The release and the retry wake the workers and the promoter, in one NOTIFY.
    await expect.poll(() => notified.length).toBe(1);
    expect(JSON.parse(notified[0]!)).toEqual({ queues: ['default'], scheduled: true });
    await listener.end();
  });

  it('starts a second write for a full batch while one is in flight, never a third, and writes every outcome once', async () => {
    const ids: string[] = [];
    for (let n = 0; n < 30; n++) ids.push((await db.spool.enqueue('completer.parallel', { n })).id);
    await db.sql`UPDATE spool.jobs SET state = 'running', attempt = 1, worker_id = 'w-parallel', lease_expires_at = now() + interval '1 minute' WHERE kind = 'completer.parallel'`;
    const pool = postgres(db.url, { max: 3, onnotice: () => {} });
    const inner = postgresExecutor(pool);
    let inFlight = 0;
    let mostInFlight = 0;
    const completer = new Completer({
      // Each write is held back a little, so the next pushes find it still in flight.
      executor: {
        async query<Row>(text: string, params: readonly unknown[]) {
          mostInFlight = Math.max(mostInFlight, ++inFlight);
          try {
            await new Promise((resolve) => setTimeout(resolve, 100));
            return await inner.query<Row>(text, params);
          } finally {
            inFlight--;
          }
        },
      },
      quotedSchema: '"spool"',
      workerId: 'w-parallel',
      channel: 'spool_jobs',
      flushMs: 60_000,
      batch: 10,
      log: createLogger({ level: 'silent' }),
      onWritten: () => {},
    });
    const tick = () => new Promise((resolve) => setTimeout(resolve, 10));
    // Three full batches, each pushed while the writes before it are in flight.
    for (const batch of [ids.slice(0, 10), ids.slice(10, 20), ids.slice(20, 30)]) {
      for (const id of batch) completer.push({ id, attempt: 1, outcome: 'completed' });
      await tick();
    }
    expect(inFlight).toBe(2);
    await completer.drain();
    await pool.end();
    expect(mostInFlight).toBe(2);
    expect(completer.counters).toMatchObject({ completed: 30, stale: 0, flushes: 3 });
    const [{ kept, archived }] = (await db.sql`
      SELECT (SELECT count(*)::int FROM spool.jobs WHERE kind = 'completer.parallel') AS kept,
             (SELECT count(*)::int FROM spool.job_history WHERE kind = 'completer.parallel' AND state = 'completed') AS archived`) as unknown as [{ kept: number; archived: number }];
    expect({ kept, archived }).toEqual({ kept: 0, archived: 30 });
  });
});

describe('lock order', () => {
  it('orders job ids as numbers, not as text, so the heartbeat and the completer lock rows in one order', () => {
    expect(['10', '9', '100', '11', '2'].sort(byId)).toEqual(['2', '9', '10', '11', '100']);
  });
});
