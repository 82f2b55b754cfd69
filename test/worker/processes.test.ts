import { beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../support/database.js';
import { createExecutionsTable } from '../support/executions.js';
import { waitFor } from '../support/factories.js';
import { startWorkerProcess } from '../support/processes.js';

const db = useTestDatabase();

beforeAll(async () => {
  await createExecutionsTable(db.sql);
});

async function count(sql: string): Promise<number> {
  const [row] = await db.sql.unsafe(sql);
  return Number(row!.n);
}

describe('worker processes', () => {
  it('3 processes × concurrency 20 finish 5,000 jobs, each executed exactly once', async () => {
    const { url } = db;
    const workers = await Promise.all(
      ['w1', 'w2', 'w3'].map((name) => startWorkerProcess({ DATABASE_URL: url, WORKER_NAME: name, CONCURRENCY: '20' })),
    );
    // Enqueued once all three are up: jobs waiting before the last one started could all go to the first two.
    await db.spool.enqueueMany(Array.from({ length: 5_000 }, () => ({ job: 'proc.work', payload: {} })));
    await waitFor(async () => (await count(`SELECT count(*) AS n FROM spool.all_jobs WHERE state = 'completed'`)) === 5_000, '5,000 completed', 120_000);
    for (const w of workers) w.child.kill('SIGTERM');
    expect(await Promise.all(workers.map((w) => w.exited))).toEqual([0, 0, 0]);

    expect(await count(`SELECT count(*) AS n FROM spool.all_jobs WHERE state <> 'completed'`)).toBe(0);
    expect(await count(`SELECT count(*) AS n FROM public.executions`)).toBe(5_000);
    expect(await count(`SELECT count(DISTINCT job_id) AS n FROM public.executions`)).toBe(5_000);
    expect(await count(`SELECT count(*) AS n FROM spool.all_jobs WHERE attempt <> 1`)).toBe(0);
    // All three took part.
    expect(await count(`SELECT count(DISTINCT worker) AS n FROM public.executions`)).toBe(3);
    // Stopped workers unregistered.
    expect(await count(`SELECT count(*) AS n FROM spool.workers`)).toBe(0);
  });

  it('a worker killed with SIGKILL mid-job: its jobs run again elsewhere after the lease expires; none lost', async () => {
    await db.sql`TRUNCATE public.executions`;
    const env = { DATABASE_URL: db.url, LEASE_MS: '1500', CONCURRENCY: '5' };
    const doomed = await startWorkerProcess({ ...env, WORKER_NAME: 'doomed' });
    const results = await db.spool.enqueueMany(Array.from({ length: 5 }, () => ({ job: 'proc.work', payload: { sleepMs: 60_000 } })));
    const ids = results.map((r) => r.id);
    await waitFor(async () => (await count(`SELECT count(*) AS n FROM public.executions WHERE worker = 'doomed'`)) === 5, 'doomed worker running all 5');
    doomed.child.kill('SIGKILL');
    await doomed.exited;
    // The survivor's handler still sleeps 60 s for sleepMs jobs, so make the rerun quick.
    await db.sql`UPDATE spool.jobs SET payload = '{}' WHERE id = ANY(${ids}::bigint[])`;
    const survivor = await startWorkerProcess({ ...env, WORKER_NAME: 'survivor' });
    await waitFor(
      async () => (await count(`SELECT count(*) AS n FROM spool.all_jobs WHERE state = 'completed' AND id IN (${ids.join(',')})`)) === 5,
      'all 5 completed by the survivor',
      30_000,
    );
    survivor.child.kill('SIGTERM');
    expect(await survivor.exited).toBe(0);
    const jobs = await db.sql`SELECT attempt, result, errors FROM spool.all_jobs WHERE id = ANY(${ids}::bigint[])`;
    for (const job of jobs) {
      expect(job.attempt).toBe(2);
      expect(job.result).toEqual({ by: 'survivor' });
      expect(job.errors[0].message).toMatch(/lease expired: worker .*doomed|lease expired/);
    }
    expect(await count(`SELECT count(*) AS n FROM public.executions WHERE worker = 'survivor'`)).toBe(5);
  });

  it('two processes elect one leader; SIGKILL the leader and the other takes over within one lease', async () => {
    const leaseMs = 2_000;
    const env = { DATABASE_URL: db.url, LEASE_MS: String(leaseMs) };
    const a = await startWorkerProcess({ ...env, WORKER_NAME: 'a' });
    const b = await startWorkerProcess({ ...env, WORKER_NAME: 'b' });
    const leaderId = await waitFor(async () => (await db.sql`SELECT worker_id FROM spool.leader WHERE name = 'maintenance'`)[0]?.worker_id as string | undefined, 'a leader');
    expect([a.workerId, b.workerId]).toContain(leaderId);
    const [leader, follower] = leaderId === a.workerId ? [a, b] : [b, a];
    // Only one leader: the row is unique, and it stays with the leader while it lives.
    await new Promise((resolve) => setTimeout(resolve, leaseMs));
    expect((await db.sql`SELECT worker_id FROM spool.leader`).map((r) => r.worker_id)).toEqual([leaderId]);

    const [{ killed_at }] = (await db.sql`SELECT now() AS killed_at`) as unknown as [{ killed_at: Date }];
    leader.child.kill('SIGKILL');
    await leader.exited;
    const [row] = await waitFor(
      async () => {
        const rows = await db.sql`SELECT worker_id, elected_at FROM spool.leader WHERE worker_id = ${follower.workerId}`;
        return rows.length ? rows : null;
      },
      'the follower to take over',
      leaseMs * 3,
    );
    // Within one lease (plus one election interval of lease/3) of the kill, in database time.
    expect(row!.elected_at.getTime() - killed_at.getTime()).toBeLessThanOrEqual(leaseMs + leaseMs / 3 + 500);
    follower.child.kill('SIGTERM');
    expect(await follower.exited).toBe(0);
    // A clean stop gives the lease up.
    expect(await count(`SELECT count(*) AS n FROM spool.leader`)).toBe(0);
  });
});
