import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createLogger, defineJob, ValidationError, type Worker } from '../../src/index.js';
import { useTestDatabase } from '../support/database.js';
import { waitFor } from '../support/factories.js';

const db = useTestDatabase();
const quiet = createLogger({ level: 'silent' });
let worker: Worker | undefined;

afterEach(async () => {
  await worker?.stop({ graceMs: 1_000 });
  worker = undefined;
});

const started = (queue: string) => defineJob({
  kind: `flow.${queue}`,
  queue,
  schema: z.object({}).passthrough(),
  handler: async (_payload, ctx) => {
    await ctx.spool.sql`INSERT INTO public.starts (job_id, queue) VALUES (${ctx.job.id}, ${queue})`;
    await new Promise((resolve) => setTimeout(resolve, 2));
  },
});

beforeAll(async () => {
  await db.sql`CREATE TABLE public.starts (seq bigint GENERATED ALWAYS AS IDENTITY, job_id bigint, queue text, at timestamptz DEFAULT clock_timestamp())`;
});

async function groupOrder(queue: string): Promise<Array<{ group: string; seq: number }>> {
  return db.sql.unsafe(`SELECT coalesce(j.group_key, '-') AS group, s.seq::int AS seq FROM public.starts s JOIN spool.all_jobs j ON j.id = s.job_id
                         WHERE s.queue = $1 ORDER BY s.seq`, [queue]) as never;
}

describe('groups and fair share', () => {
  it('a job carries its group; a bad group is refused naming the field', async () => {
    const { id } = await db.spool.enqueue('flow.misc', {}, { group: 'tenant-9' });
    expect((await db.spool.getJob(id))!.group).toBe('tenant-9');
    await expect(db.spool.enqueue('flow.misc', {}, { group: '' })).rejects.toThrow(/group: must not be empty/);
    await expect(db.spool.enqueue('flow.misc', {}, { group: 'a\nb' })).rejects.toThrow(/group: must not contain control characters/);
    await expect(db.sql`SELECT spool.enqueue('flow.misc', group_key => ${'x'.repeat(129)})`).rejects.toThrow(/group must be a string of 1-128/);
    const [fromSql] = await db.sql`SELECT spool.enqueue('flow.misc', group_key => 'sql-group') AS id`;
    expect((await db.spool.getJob(fromSql!.id as string))!.group).toBe('sql-group');
  });

  it('fairness on: a group enqueued behind a large backlog starts its jobs long before the backlog is through', async () => {
    await db.spool.limits.set('queue', 'fair', { fair: true });
    await db.spool.enqueueMany(Array.from({ length: 3000 }, () => ({ job: 'flow.fair', payload: {}, queue: 'fair', group: 'big' })));
    await db.spool.enqueueMany(Array.from({ length: 30 }, () => ({ job: 'flow.fair', payload: {}, queue: 'fair', group: 'small' })));
    worker = await db.spool.work({ jobs: [started('fair')], concurrency: 10, logger: quiet, handleSignals: false });
    await waitFor(async () => (await groupOrder('fair')).filter((s) => s.group === 'small').length === 30, 'all of small started', 60_000);
    const order = await groupOrder('fair');
    const lastSmall = order.findLastIndex((s) => s.group === 'small');
    // Equal weights: small's 30 jobs go at about one in two; FIFO would start all 3,000 of big first.
    expect(lastSmall).toBeLessThan(300);
  });

  it('fairness off (the same backlog in a plain queue) runs in FIFO order', async () => {
    await db.spool.enqueueMany(Array.from({ length: 300 }, () => ({ job: 'flow.fifo', payload: {}, queue: 'fifo', group: 'big' })));
    await db.spool.enqueueMany(Array.from({ length: 10 }, () => ({ job: 'flow.fifo', payload: {}, queue: 'fifo', group: 'small' })));
    worker = await db.spool.work({ jobs: [started('fifo')], concurrency: 10, logger: quiet, handleSignals: false });
    await waitFor(async () => (await groupOrder('fifo')).length === 310, 'all started', 60_000);
    const order = await groupOrder('fifo');
    expect(order.findIndex((s) => s.group === 'small')).toBeGreaterThanOrEqual(290);
  });

  it('weights 1:2:4 while all are backlogged: shares within 10 % of the weights', async () => {
    await db.spool.limits.set('queue', 'weighted', { fair: true });
    await db.spool.limits.set('group', 'w1', { weight: 1 });
    await db.spool.limits.set('group', 'w2', { weight: 2 });
    await db.spool.limits.set('group', 'w4', { weight: 4 });
    for (const group of ['w1', 'w2', 'w4']) {
      await db.spool.enqueueMany(Array.from({ length: 4000 }, () => ({ job: 'flow.weighted', payload: {}, queue: 'weighted', group })));
    }
    worker = await db.spool.work({ jobs: [started('weighted')], concurrency: 20, logger: quiet, handleSignals: false });
    // w4 alone would take 4/7 of 3,500 = 2,000 of its 4,000: all three stay backlogged.
    await waitFor(async () => (await groupOrder('weighted')).length >= 3500, '3,500 started', 120_000);
    await worker.stop({ graceMs: 1_000 });
    worker = undefined;
    const order = (await groupOrder('weighted')).slice(0, 3500);
    const share = (g: string) => order.filter((s) => s.group === g).length / order.length;
    for (const [group, weight] of [['w1', 1], ['w2', 2], ['w4', 4]] as const) {
      expect(Math.abs(share(group) - weight / 7) / (weight / 7)).toBeLessThan(0.1);
    }
  });
});

describe('limits', () => {
  it('a kind concurrency limit holds in one worker with room for more', async () => {
    await db.spool.limits.set('kind', 'flow.kindcap', { concurrency: 2 });
    let running = 0;
    let most = 0;
    const capped = defineJob({
      kind: 'flow.kindcap',
      queue: 'kindcap',
      schema: z.object({}).passthrough(),
      handler: async () => {
        running++;
        most = Math.max(most, running);
        await new Promise((resolve) => setTimeout(resolve, 30));
        running--;
      },
    });
    await db.spool.enqueueMany(Array.from({ length: 20 }, () => ({ job: capped, payload: {} })));
    worker = await db.spool.work({ jobs: [capped], concurrency: 10, logger: quiet, handleSignals: false });
    await waitFor(async () => (await db.sql`SELECT count(*)::int AS n FROM spool.all_jobs WHERE kind = 'flow.kindcap' AND state = 'completed'`)[0]!.n === 20, '20 completed', 30_000);
    expect(most).toBe(2);
  });

  it('a limit set while a worker runs applies at once (NOTIFY), and removing it lifts it', async () => {
    let running = 0;
    let most = 0;
    const live = defineJob({
      kind: 'flow.live',
      queue: 'live',
      schema: z.object({}).passthrough(),
      handler: async () => {
        running++;
        most = Math.max(most, running);
        await new Promise((resolve) => setTimeout(resolve, 40));
        running--;
      },
    });
    const done = (n: number) => waitFor(async () => (await db.sql`SELECT count(*)::int AS n FROM spool.all_jobs WHERE queue = 'live' AND state = 'completed'`)[0]!.n === n, `${n} completed`, 10_000);
    // No fallback poll to speak of: only the NOTIFY can tell the worker.
    worker = await db.spool.work({ jobs: [live], concurrency: 10, logger: quiet, handleSignals: false, pollIntervalMs: 60_000 });
    await db.spool.limits.set('queue', 'live', { concurrency: 1 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    await db.spool.enqueueMany(Array.from({ length: 6 }, () => ({ job: live, payload: {} })));
    await done(6);
    expect(most).toBe(1);
    expect(await db.spool.limits.remove('queue', 'live')).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 300));
    most = 0;
    await db.spool.enqueueMany(Array.from({ length: 6 }, () => ({ job: live, payload: {} })));
    await done(12);
    expect(most).toBeGreaterThan(1);
  });

  it('an idle queue under a concurrency limit is not polled faster than the idle poll', async () => {
    await db.spool.limits.set('queue', 'idle-capped', { concurrency: 2 });
    const idle = defineJob({ kind: 'flow.idle', queue: 'idle-capped', schema: z.object({}).passthrough(), handler: () => undefined });
    worker = await db.spool.work({ jobs: [idle], concurrency: 10, logger: quiet, handleSignals: false, pollIntervalMs: 1_000 });
    const before = worker.stats.claims;
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    // The idle poll: 1 s, then 2 s. A claim cut by the limit would recheck every 250 ms (10 claims).
    expect(worker.stats.claims - before).toBeLessThanOrEqual(3);
  });

  it('a rate limit claimed past its exact count by concurrent claims, far from the limit and then at it: exactly the limit starts, each job once', async () => {
    // Far from the limit (room for a full claim from every allowed connection) claims share the
    // limiter's lock; nearer, they take turns. Start with room just past that margin, so the
    // claims cross from one to the other and then run the limiter dry.
    const [setting] = await db.sql`SELECT current_setting('max_connections')::int AS connections`;
    const margin = (setting!.connections as number) * 1000;
    const limit = margin + 3000;
    await db.spool.limits.set('queue', 'bulk', { rate: { limit, windowMs: 3_600_000 }, fair: true });
    await db.sql`INSERT INTO spool.jobs (queue, kind, group_key)
                 SELECT 'bulk', 'flow.bulk', 'g' || (i % 3) FROM generate_series(1, ${limit + 5000}) AS i`;
    const claimer = async (n: number) => {
      let claimed = 0;
      for (;;) {
        const rows = await db.sql`SELECT id, retry_in_ms FROM spool.claim_flow('bulk', '{flow.bulk}', 1000, ${`w${n}`}, 3600000)`;
        const got = rows.filter((row) => row.id !== null).length;
        claimed += got;
        // Empty with a refill time: the limiter is dry (a hint of 0 means look again at once).
        if (got === 0 && Number(rows[0]?.retry_in_ms) > 0) return claimed;
      }
    };
    const counts = await Promise.all([1, 2, 3, 4, 5].map(claimer));
    const [row] = await db.sql`SELECT count(*)::int AS running, count(DISTINCT id)::int AS distinct_ids,
                                      count(*) FILTER (WHERE attempt <> 1)::int AS reclaimed
                                 FROM spool.jobs WHERE queue = 'bulk' AND state = 'running'`;
    expect(row).toEqual({ running: limit, distinct_ids: limit, reclaimed: 0 });
    expect(counts.reduce((a, b) => a + b, 0)).toBe(limit);
  }, 120_000);

  it('refuses bad settings, naming the field and the fix', async () => {
    const refused = async (p: Promise<unknown>) => {
      const error = await p.then(() => undefined, (e: unknown) => e);
      expect(error).toBeInstanceOf(ValidationError);
      return (error as ValidationError).message;
    };
    expect(await refused(db.spool.limits.set('queue', 'q', { concurrency: 0 }))).toMatch(/concurrency: must be at least 1/);
    expect(await refused(db.spool.limits.set('queue', 'q', { rate: '20 per second' }))).toMatch(/rate: expected "<starts>\/<window>"/);
    expect(await refused(db.spool.limits.set('queue', 'q', { weight: 2 }))).toMatch(/weight: only groups have a weight/);
    expect(await refused(db.spool.limits.set('group', 'g', { fair: true }))).toMatch(/fair: fairness is a queue setting/);
    expect(await refused(db.spool.limits.set('tenant' as never, 'g', {}))).toMatch(/scope: expected queue, kind, group/);
    expect(await refused(db.spool.limits.set('queue', 'bad queue', {}))).toMatch(/name:/);
    expect(await refused(db.spool.limits.set('queue', 'q', { concurency: 1 } as never))).toMatch(/concurency/);
    // Rates as text.
    const limit = await db.spool.limits.set('group', 'text-rate', { rate: '100/1m' });
    expect(limit.rate).toEqual({ limit: 100, windowMs: 60_000 });
  });

  it('config limits: applied as written, and removed when the config no longer names them', async () => {
    await db.spool.limits.applyConfig({ queues: { reports: { concurrency: 2, fair: true } }, groups: { vip: { weight: 5 } } });
    expect((await db.spool.limits.get('queue', 'reports'))).toMatchObject({ concurrency: 2, fair: true, source: 'config' });
    await db.spool.limits.applyConfig({ groups: { vip: { weight: 3 } } });
    expect(await db.spool.limits.get('queue', 'reports')).toBeNull();
    expect((await db.spool.limits.get('group', 'vip'))!.weight).toBe(3);
    // Set by the API: not the config's to remove.
    await db.spool.limits.set('queue', 'by-api', { concurrency: 4 });
    await db.spool.limits.applyConfig({});
    expect(await db.spool.limits.get('queue', 'by-api')).not.toBeNull();
  });
});
