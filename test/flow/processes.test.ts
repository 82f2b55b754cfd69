import { beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../support/database.js';
import { createExecutionsTable } from '../support/executions.js';
import { waitFor } from '../support/factories.js';
import { startWorkerProcess, type WorkerProcess } from '../support/processes.js';

// Limits and schedules across worker processes: every figure here is read
// from the database (started_at, the execution ledger, the jobs the ticks
// made), never from a process's own counters.
const db = useTestDatabase();

beforeAll(async () => {
  await createExecutionsTable(db.sql);
});

async function one<T = number>(text: string): Promise<T> {
  const [row] = await db.sql.unsafe(text);
  return row!.n as T;
}

async function stopAll(workers: WorkerProcess[]): Promise<void> {
  for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGTERM');
  await Promise.all(workers.map((w) => w.exited));
}

describe('flow limits across worker processes', () => {
  it('a rate limit of 20 per second across 3 processes: no 1-second window holds more than 20 starts', async () => {
    await db.spool.limits.set('queue', 'rated', { rate: { limit: 20, windowMs: 1000 } });
    const workers = await Promise.all(['r1', 'r2', 'r3'].map((name) =>
      startWorkerProcess({ DATABASE_URL: db.url, WORKER_NAME: name, QUEUE: 'rated', CONCURRENCY: '10' })));
    await db.spool.enqueueMany(Array.from({ length: 110 }, () => ({ job: 'proc.work', payload: {}, queue: 'rated' })));
    await waitFor(async () => (await one(`SELECT count(*)::int AS n FROM spool.all_jobs WHERE queue = 'rated' AND state = 'completed'`)) === 110, '110 completed', 60_000);
    await stopAll(workers);

    // Every window [s, s + 1 s) that starts at a start: the busiest window there is starts at one.
    const busiest = await one(`
      SELECT max((SELECT count(*) FROM spool.all_jobs b WHERE b.queue = 'rated'
                     AND b.started_at >= a.started_at AND b.started_at < a.started_at + interval '1 second'))::int AS n
        FROM spool.all_jobs a WHERE a.queue = 'rated'`);
    expect(busiest).toBeLessThanOrEqual(20);
    expect(busiest).toBeGreaterThanOrEqual(15); // the limit is what bound them, not something slower
    // 110 starts at 20 per second take more than 5 seconds of database time.
    const spanS = await one(`SELECT extract(epoch FROM max(started_at) - min(started_at))::float8 AS n FROM spool.all_jobs WHERE queue = 'rated'`);
    expect(spanS).toBeGreaterThan(5);
    // More than one process won refills (which one wins each is a race: all three ask at about the same moment).
    expect(await one(`SELECT count(DISTINCT worker)::int AS n FROM public.executions e JOIN spool.all_jobs j ON j.id = e.job_id WHERE j.queue = 'rated'`)).toBeGreaterThanOrEqual(2);
    // Exactly once each.
    expect(await one(`SELECT count(*)::int AS n FROM public.executions e JOIN spool.all_jobs j ON j.id = e.job_id WHERE j.queue = 'rated'`)).toBe(110);
  });

  it('a concurrency limit of 3 for one group across 3 processes: never more than 3 of its jobs run at once', async () => {
    await db.spool.limits.set('group', 'tenant-1', { concurrency: 3 });
    // 2 slots per process and no prefetch: 3 running at once takes two processes, and 6 could run.
    const workers = await Promise.all(['c1', 'c2', 'c3'].map((name) =>
      startWorkerProcess({ DATABASE_URL: db.url, WORKER_NAME: name, QUEUE: 'limited', CONCURRENCY: '2', PREFETCH: '0' })));
    await db.spool.enqueueMany([
      ...Array.from({ length: 30 }, () => ({ job: 'proc.work', payload: { sleepMs: 150 }, queue: 'limited', group: 'tenant-1' })),
      ...Array.from({ length: 30 }, () => ({ job: 'proc.work', payload: { sleepMs: 150 }, queue: 'limited' })),
    ]);
    await waitFor(async () => (await one(`SELECT count(*)::int AS n FROM spool.all_jobs WHERE queue = 'limited' AND state = 'completed'`)) === 60, '60 completed', 60_000);
    await stopAll(workers);

    // The ledger: at each execution's start, how many of the same group's executions were running.
    const overlap = (group: string) => `
      WITH runs AS (SELECT e.at, e.ended_at FROM public.executions e JOIN spool.all_jobs j ON j.id = e.job_id
                     WHERE j.queue = 'limited' AND j.group_key IS NOT DISTINCT FROM ${group})
      SELECT max((SELECT count(*) FROM runs b WHERE b.at <= a.at AND b.ended_at > a.at))::int AS n FROM runs a`;
    expect(await one(`SELECT count(*)::int AS n FROM public.executions e JOIN spool.all_jobs j ON j.id = e.job_id WHERE j.queue = 'limited' AND e.ended_at IS NULL`)).toBe(0);
    const grouped = await one(overlap(`'tenant-1'`));
    expect(grouped).toBeLessThanOrEqual(3);
    // Reached, so the limit is what held it (and at least two processes ran the group's jobs at once).
    expect(grouped).toBe(3);
    // The ungrouped jobs were not held to it.
    expect(await one(overlap('NULL'))).toBeGreaterThan(3);
    expect(await one(`SELECT count(DISTINCT e.worker)::int AS n FROM public.executions e JOIN spool.all_jobs j ON j.id = e.job_id WHERE j.group_key = 'tenant-1'`)).toBeGreaterThan(1);
  });

  it('limits survive a restart of every process', async () => {
    // The limits of the tests above are rows: new processes obey them without being told.
    const workers = await Promise.all(['n1', 'n2'].map((name) =>
      startWorkerProcess({ DATABASE_URL: db.url, WORKER_NAME: name, QUEUE: 'limited', CONCURRENCY: '10' })));
    await db.spool.enqueueMany(Array.from({ length: 12 }, () => ({ job: 'proc.work', payload: { sleepMs: 150 }, queue: 'limited', group: 'tenant-1', tags: ['restart'] })));
    await waitFor(async () => (await one(`SELECT count(*)::int AS n FROM spool.all_jobs WHERE 'restart' = ANY(tags) AND state = 'completed'`)) === 12, '12 completed', 30_000);
    await stopAll(workers);
    const overlap = await one(`
      WITH runs AS (SELECT e.at, e.ended_at FROM public.executions e JOIN spool.all_jobs j ON j.id = e.job_id WHERE 'restart' = ANY(j.tags))
      SELECT max((SELECT count(*) FROM runs b WHERE b.at <= a.at AND b.ended_at > a.at))::int AS n FROM runs a`);
    expect(overlap).toBeLessThanOrEqual(3);
  });
});

describe('a schedule across worker processes', () => {
  it('ticking every second: exactly one job per tick over 30+ ticks while the leader is killed and replaced twice', async () => {
    const env = { DATABASE_URL: db.url, LEASE_MS: '1500', QUEUE: 'ticks', SCHEDULE: JSON.stringify({ name: 'every-second', cron: '* * * * * *', options: { queue: 'ticks' } }) };
    let workers = await Promise.all(['s1', 's2', 's3'].map((name) => startWorkerProcess({ ...env, WORKER_NAME: name })));
    const leader = async () => {
      const id = await waitFor(async () => (await db.sql`SELECT worker_id FROM spool.leader WHERE name = 'maintenance' AND expires_at > now()`)[0]?.worker_id as string | undefined, 'a leader');
      return workers.find((w) => w.workerId === id)!;
    };
    for (const round of [1, 2]) {
      await new Promise((resolve) => setTimeout(resolve, 10_000));
      const doomed = await leader();
      expect(doomed).toBeDefined();
      doomed.child.kill('SIGKILL');
      await doomed.exited;
      workers = [...workers.filter((w) => w !== doomed), await startWorkerProcess({ ...env, WORKER_NAME: `s-new-${round}` })];
    }
    await new Promise((resolve) => setTimeout(resolve, 12_000));
    await stopAll(workers);

    const ticks = await db.sql<{ tick: string; jobs: number }[]>`
      SELECT metadata->>'scheduledFor' AS tick, count(*)::int AS jobs FROM spool.all_jobs
       WHERE metadata->>'schedule' = 'every-second' GROUP BY 1 ORDER BY 1`;
    expect(ticks.length).toBeGreaterThanOrEqual(30);
    expect(ticks.filter((t) => t.jobs !== 1)).toEqual([]);
    // No tick missing between the first and the last, failovers included.
    const first = Date.parse(ticks[0]!.tick);
    const last = Date.parse(ticks[ticks.length - 1]!.tick);
    expect(ticks.length).toBe((last - first) / 1000 + 1);
    expect(await one(`SELECT count(*)::int AS n FROM spool.all_jobs WHERE metadata->>'schedule' = 'every-second' AND unique_key <> 'schedule:every-second:' || (metadata->>'scheduledFor')`)).toBe(0);
  }, 90_000);
});
