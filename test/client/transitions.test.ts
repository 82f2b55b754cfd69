import postgres from 'postgres';
import { describe, expect, it } from 'vitest';
import { IllegalTransitionError, JobNotFoundError, UniqueConflictError } from '../../src/index.js';
import { useTestDatabase } from '../support/database.js';

const db = useTestDatabase();

/** Puts a job in `running` the way a worker's claim would. */
async function markRunning(id: string) {
  await db.sql`
    UPDATE spool.jobs SET state = 'running', attempt = attempt + 1, worker_id = 'w1',
           lease_expires_at = now() + interval '30 seconds', started_at = now()
     WHERE id = ${id}`;
}

async function markFinished(id: string, state: 'completed' | 'dead' | 'cancelled') {
  await db.sql`UPDATE spool.jobs SET state = ${state}, finished_at = now(), worker_id = NULL, lease_expires_at = NULL WHERE id = ${id}`;
}

describe('cancelJob', () => {
  it('cancels a scheduled job and an available job at once', async () => {
    const scheduled = await db.spool.enqueue('c', {}, { delayMs: 60_000 });
    const available = await db.spool.enqueue('c', {});
    for (const { id } of [scheduled, available]) {
      const job = await db.spool.cancelJob(id);
      expect(job.state).toBe('cancelled');
      expect(job.finishedAt).toBeInstanceOf(Date);
      expect((await db.spool.getJob(id))?.state).toBe('cancelled');
    }
  });

  it('flags a running job and tells its worker over NOTIFY', async () => {
    const { id } = await db.spool.enqueue('c', {});
    await markRunning(id);
    const received: string[] = [];
    const listener = postgres(db.url, { max: 1 });
    try {
      await listener.listen('spool_jobs', (payload) => received.push(payload));
      const job = await db.spool.cancelJob(id);
      expect(job.state).toBe('running');
      expect(job.cancelRequestedAt).toBeInstanceOf(Date);
      const deadline = Date.now() + 10_000;
      while (!received.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(received.map((p) => JSON.parse(p))).toEqual([{ cancel: [id] }]);
    } finally {
      await listener.end();
    }
  });

  it('refuses a finished job (409-style) and an unknown id', async () => {
    const { id } = await db.spool.enqueue('c', {});
    await markFinished(id, 'completed');
    const finished = await db.spool.cancelJob(id).catch((e: unknown) => e);
    expect(finished).toBeInstanceOf(IllegalTransitionError);
    expect(finished).toMatchObject({ code: 'illegal_transition', state: 'completed' });
    const missing = await db.spool.cancelJob('999999999').catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(JobNotFoundError);
  });

  it('joins the caller\'s transaction', async () => {
    const { id } = await db.spool.enqueue('c', {});
    await db.sql
      .begin(async (tx) => {
        await db.spool.cancelJob(id, { tx });
        throw new Error('roll back');
      })
      .catch(() => {});
    expect((await db.spool.getJob(id))?.state).toBe('available');
  });
});

describe('retryJob', () => {
  it('makes a dead, cancelled or completed job available now with an attempt left', async () => {
    for (const state of ['dead', 'cancelled', 'completed'] as const) {
      const { id } = await db.spool.enqueue('r', {}, { maxAttempts: 2, delayMs: 60_000 });
      await markRunning(id);
      await db.sql`UPDATE spool.jobs SET attempt = 2 WHERE id = ${id}`;
      await markFinished(id, state);
      const job = await db.spool.retryJob(id);
      expect(job).toMatchObject({ state: 'available', attempt: 2, maxAttempts: 3, finishedAt: null, workerId: null });
      const [row] = await db.sql`SELECT run_at <= now() AS due FROM spool.all_jobs WHERE id = ${id}`;
      expect(row!.due).toBe(true);
    }
  });

  it('refuses a job that has not finished, and an unknown id', async () => {
    const { id } = await db.spool.enqueue('r', {});
    expect(await db.spool.retryJob(id).catch((e: unknown) => e)).toMatchObject({ code: 'illegal_transition', state: 'available' });
    expect(await db.spool.retryJob(424242424).catch((e: unknown) => e)).toBeInstanceOf(JobNotFoundError);
  });

  it('refuses when another unfinished job holds the unique key', async () => {
    const first = await db.spool.enqueue('r', {}, { uniqueKey: 'only-one' });
    await markFinished(first.id, 'dead');
    await db.spool.enqueue('r', {}, { uniqueKey: 'only-one' });
    const error = await db.spool.retryJob(first.id).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UniqueConflictError);
    expect((await db.spool.getJob(first.id))?.state).toBe('dead');
  });
});
