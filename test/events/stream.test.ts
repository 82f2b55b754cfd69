import { z } from 'zod';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { compareEventIds, createApp, createSpool, defineJob, startApiServer, type ApiServer, type Spool, type SpoolEvent, type Worker } from '../../src/index.js';
import { SpoolHttpClient } from '../../src/http.js';
import { createLogger } from '../../src/observability/logger.js';
import { useTestDatabase } from '../support/database.js';
import { waitFor } from '../support/factories.js';

const db = useTestDatabase();
const quiet = createLogger({ level: 'silent' });

/** Fails its first attempt when the payload asks for it, so some jobs go through `retrying`. */
const step = defineJob({
  kind: 'events.step',
  schema: z.object({ n: z.number(), fail: z.boolean().optional() }),
  maxAttempts: 3,
  backoff: { baseMs: 10, maxMs: 20 },
  handler: async ({ n, fail }, ctx) => {
    if (fail && ctx.job.attempt === 1) throw new Error(`first try of ${n} fails`);
    return { n, doubled: n * 2 };
  },
});

let worker: Worker | undefined;
let server: ApiServer | undefined;
let other: Spool | undefined;

afterEach(async () => {
  await worker?.stop({ graceMs: 2_000 });
  worker = undefined;
});
afterAll(async () => {
  await server?.close();
  await other?.close();
});

const startWorker = async (spool: Spool) => {
  worker = await spool.work({ jobs: [step], concurrency: 20, logger: quiet, handleSignals: false, pollIntervalMs: 50, webhooks: false });
};

/** Reads a subscription until `until` holds, or fails after 30 s. */
async function collect(iterable: AsyncIterable<SpoolEvent>, until: (events: SpoolEvent[]) => boolean, close: () => void): Promise<SpoolEvent[]> {
  const events: SpoolEvent[] = [];
  const timer = setTimeout(close, 30_000);
  for await (const event of iterable) {
    events.push(event);
    if (until(events)) break;
  }
  clearTimeout(timer);
  return events;
}

/** Each job's events in the order they came, and a check that every job went enqueued → started → … → completed. */
function byJob(events: SpoolEvent[]): Map<string, string[]> {
  const jobs = new Map<string, string[]>();
  for (const event of events) jobs.set(event.job.id, [...(jobs.get(event.job.id) ?? []), event.type]);
  return jobs;
}

const LEGAL = [['enqueued', 'started', 'completed'], ['enqueued', 'started', 'retrying', 'started', 'completed']];

describe('the event stream', () => {
  it('a subscriber sees every state change of 1,000 jobs, each job in order, ids strictly increasing', async () => {
    const controller = new AbortController();
    const subscription = db.spool.events({ queue: ['default'], signal: controller.signal });
    await db.spool.eventHub.ready();
    const jobs = Array.from({ length: 1_000 }, (_, n) => ({ job: step, payload: { n, fail: n % 10 === 0 } }));
    const ids = new Set<string>();
    for (let i = 0; i < jobs.length; i += 250) for (const r of await db.spool.enqueueMany(jobs.slice(i, i + 250))) ids.add(r.id);
    await startWorker(db.spool);
    const expected = 1_000 * 3 + 100 * 2;
    const events = await collect(subscription, (seen) => seen.length >= expected, () => controller.abort());
    controller.abort();

    expect(events).toHaveLength(expected);
    for (let i = 1; i < events.length; i++) expect(compareEventIds(events[i - 1]!.id, events[i]!.id), `${events[i - 1]!.id} before ${events[i]!.id}`).toBeLessThan(0);
    const perJob = byJob(events);
    expect(new Set(perJob.keys())).toEqual(ids);
    for (const [id, types] of perJob) expect(LEGAL, `job ${id}: ${types.join(' → ')}`).toContainEqual(types);
    const completed = events.filter((e) => e.type === 'completed');
    for (const e of completed) expect(e.result, `the result of job ${e.job.id}`).toEqual({ n: (e.result as { n: number }).n, doubled: 2 * (e.result as { n: number }).n });
    const retrying = events.filter((e) => e.type === 'retrying');
    expect(retrying).toHaveLength(100);
    for (const e of retrying) expect(e.error, `the error of job ${e.job.id}`).toMatchObject({ attempt: 1, message: expect.stringContaining('first try of') });
  }, 60_000);

  it('a client that disconnects mid-run and reconnects with Last-Event-ID misses none and repeats none (over HTTP)', async () => {
    server = await startApiServer(createApp({ spool: db.spool, logger: quiet, auth: 'off' }), { host: '127.0.0.1', port: 0 });
    const base = `http://127.0.0.1:${server.port}`;
    // The reference: one uninterrupted subscriber of the library.
    const controller = new AbortController();
    const reference = db.spool.events({ kind: ['events.step'], signal: controller.signal });
    await db.spool.eventHub.ready();
    const after = (await db.sql`SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS x`)[0]!.x as string;
    await startWorker(db.spool);
    const expectedTotal = 300 * 3;
    const referenceDone = collect(reference, (seen) => seen.length >= expectedTotal, () => controller.abort());

    // The HTTP client: first connection, cut after 150 events while jobs still run.
    const firstConnection = new AbortController();
    const firstRun = (async () => {
      const seen: SpoolEvent[] = [];
      const response = await fetch(`${base}/events?kind=events.step&after=${after}-0-0`, { signal: firstConnection.signal });
      expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
      const reader = response.body!.getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
        if (done) break;
        buffer += new TextDecoder().decode(value);
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = block.split('\n').find((l) => l.startsWith('data: '));
          // What arrived after the cut is not read: the client is gone.
          if (data && seen.length < 150) seen.push(JSON.parse(data.slice(6)));
          if (seen.length === 150) firstConnection.abort();
        }
      }
      return seen;
    })();
    for (let i = 0; i < 300; i += 50) {
      await db.spool.enqueueMany(Array.from({ length: 50 }, (_, n) => ({ job: step, payload: { n: i + n } })));
      await new Promise((resolve) => setTimeout(resolve, 30));
    }
    const first = await firstRun;
    expect(first).toHaveLength(150);

    // Reconnect with Last-Event-ID through the typed client's iterator, which sends it.
    const client = new SpoolHttpClient({ baseUrl: base });
    const rest: SpoolEvent[] = [];
    const secondConnection = new AbortController();
    for await (const event of client.events({ kind: ['events.step'], after: first.at(-1)!.id, signal: secondConnection.signal })) {
      rest.push(event as SpoolEvent);
      if (first.length + rest.length >= expectedTotal) break;
    }
    const all = [...first, ...rest];
    const ref = await referenceDone;
    controller.abort();
    expect(all.map((e) => e.id)).toEqual(ref.map((e) => e.id));
    expect(new Set(all.map((e) => e.id)).size).toBe(all.length);
  }, 60_000);

  it('an event waits behind an older transaction still open, then comes in id order; a rolled-back enqueue has none', async () => {
    const controller = new AbortController();
    const subscription = db.spool.events({ kind: ['events.late', 'events.early', 'events.rolledback'], signal: controller.signal });
    await db.spool.eventHub.ready();
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let heldOpen!: () => void;
    const opened = new Promise<void>((resolve) => (heldOpen = resolve));
    // Transaction A takes its xid first (its enqueue) and commits last.
    const a = db.sql.begin(async (tx) => {
      await db.spool.enqueue('events.early', {}, { tx });
      heldOpen();
      await held;
    });
    await opened;
    await db.spool.enqueue('events.late', {});
    await db.sql.begin(async (tx) => {
      await db.spool.enqueue('events.rolledback', {}, { tx });
      throw new Error('roll back');
    }).catch(() => {});
    const seen: SpoolEvent[] = [];
    const reading = (async () => {
      for await (const event of subscription) seen.push(event);
    })();
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(seen, 'B committed, but A (older) is open: nothing yet').toEqual([]);
    release();
    await a;
    await waitFor(() => seen.length >= 2, 'both events');
    await new Promise((resolve) => setTimeout(resolve, 200));
    controller.abort();
    await reading;
    expect(seen.map((e) => e.job.kind)).toEqual(['events.early', 'events.late']);
  });

  it('a tenant-bound key streams only its tenant\'s jobs; a bad Last-Event-ID is a 400 naming it', async () => {
    const app = createApp({ spool: db.spool, logger: quiet });
    const tenantKey = await db.spool.keys.create({ role: 'reader', tenant: 'acme' });
    const local = await startApiServer(app, { host: '127.0.0.1', port: 0 });
    try {
      const client = new SpoolHttpClient({ baseUrl: `http://127.0.0.1:${local.port}`, apiKey: tenantKey.key });
      const controller = new AbortController();
      const got: string[] = [];
      const reading = (async () => {
        for await (const event of client.events({ kind: ['events.tenant'], signal: controller.signal })) got.push(`${event.job.tenant}`);
      })();
      await new Promise((resolve) => setTimeout(resolve, 300));
      await db.spool.enqueue('events.tenant', {}, { tenant: 'acme' });
      await db.spool.enqueue('events.tenant', {}, { tenant: 'globex' });
      await db.spool.enqueue('events.tenant', {});
      await db.spool.enqueue('events.tenant', {}, { tenant: 'acme' });
      await waitFor(() => got.length >= 2, 'the tenant\'s two events');
      await new Promise((resolve) => setTimeout(resolve, 300));
      controller.abort();
      await reading;
      expect(got).toEqual(['acme', 'acme']);
      const bad = await fetch(`http://127.0.0.1:${local.port}/events`, { headers: { authorization: `Bearer ${tenantKey.key}`, 'last-event-id': 'nope' } });
      expect(bad.status).toBe(400);
      expect(((await bad.json()) as any).error.details[0].path).toBe('Last-Event-ID');
    } finally {
      await local.close();
    }
  });

  it('a subscriber that stops reading is dropped and told why, after the reader waited for it', async () => {
    const subscription = db.spool.events({ kind: ['events.flood'], maxBuffer: 2_000 });
    await db.spool.eventHub.ready();
    for (let i = 0; i < 3; i++) await db.spool.enqueueMany(Array.from({ length: 1_500 }, () => ({ job: 'events.flood', payload: {} })));
    await waitFor(() => subscription.dropped, 'the drop', 15_000);
    let received = 0;
    for await (const _event of subscription) received++;
    expect(received).toBeLessThanOrEqual(3_000);
    expect(received).toBeGreaterThan(0);
    expect(subscription.dropped).toMatch(/reads too slowly/);
  });
});

describe('waiting for a result', () => {
  it('POST /jobs?wait= answers with the result once the job completes; GET /jobs/:id?wait= too', async () => {
    await startWorker(db.spool);
    const app = createApp({ spool: db.spool, logger: quiet, auth: 'off' });
    const started = Date.now();
    const res = await app.request('/jobs?wait=10s', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'events.step', payload: { n: 21 } }) });
    expect(res.status).toBe(201);
    const body = (await res.json()) as any;
    expect(body.timedOut).toBe(false);
    expect(body.job.state).toBe('completed');
    expect(body.job.result).toEqual({ n: 21, doubled: 42 });
    expect(Date.now() - started).toBeLessThan(10_000);
    const again = await (await app.request(`/jobs/${body.job.id}?wait=5s`)).json();
    expect(again).toMatchObject({ job: { id: body.job.id, state: 'completed' }, timedOut: false });
  });

  it('a wait that ends first answers with the current state and timedOut: true', async () => {
    const app = createApp({ spool: db.spool, logger: quiet, auth: 'off', unknownKinds: 'allow' });
    const res = await app.request('/jobs?wait=300ms', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'events.nobody', payload: {} }) });
    const body = (await res.json()) as any;
    expect(body).toMatchObject({ timedOut: true, job: { state: 'available' } });
    const bad = await app.request('/jobs?wait=10h', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"kind":"events.nobody"}' });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as any).error.details[0].path).toBe('wait');
    expect((await db.sql`SELECT count(*)::int AS n FROM spool.jobs WHERE kind = 'events.nobody'`)[0]!.n, 'the refused one stored nothing').toBe(1);
  });

  it('enqueueAndWait from the library and from the typed HTTP client; waitFor times out on a job nobody runs', async () => {
    other = createSpool({ connectionString: db.url, poolSize: 2 });
    await startWorker(db.spool);
    const { job, timedOut } = await other.enqueueAndWait(step, { n: 5 }, { timeoutMs: 10_000 });
    expect({ state: job.state, result: job.result, timedOut }).toEqual({ state: 'completed', result: { n: 5, doubled: 10 }, timedOut: false });

    server ??= await startApiServer(createApp({ spool: db.spool, logger: quiet, auth: 'off' }), { host: '127.0.0.1', port: 0 });
    const client = new SpoolHttpClient({ baseUrl: `http://127.0.0.1:${server.port}` });
    const viaHttp = await client.enqueueAndWait('events.step', { n: 8 }, { timeoutMs: 10_000, idempotencyKey: 'wait-8' });
    expect(viaHttp).toMatchObject({ timedOut: false, duplicate: false, job: { state: 'completed', result: { n: 8, doubled: 16 } } });
    expect(await client.get('999999999')).toBeNull();

    const idle = await other.enqueue('events.nobody', {});
    const waited = await other.waitFor(idle.id, { timeoutMs: 200 });
    expect(waited).toMatchObject({ timedOut: true, job: { state: 'available' } });
    await expect(other.waitFor(idle.id, { timeoutMs: -1 })).rejects.toThrow(/timeoutMs/);
  });

  it('a waiter is answered once its job ends, even while an older open transaction holds the stream back; a later subscriber starts from now', async () => {
    await db.spool.eventHub.ready();
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let heldOpen!: () => void;
    const opened = new Promise<void>((resolve) => (heldOpen = resolve));
    let released = false;
    // A takes an xid and stays open: the stream reads nothing after it until it ends.
    const a = db.sql.begin(async (tx) => {
      await db.spool.enqueue('events.held', {}, { tx });
      heldOpen();
      await held;
    });
    await opened;
    // The job ends after its waiter is in place (nobody runs it: it is cancelled), so only a wake-up can answer it.
    const { id } = await db.spool.enqueue('events.unrun', {});
    const waiting = db.spool.waitFor(id, { timeoutMs: 8_000 });
    await new Promise((resolve) => setTimeout(resolve, 200));
    await db.spool.cancelJob(id);
    // A ends on its own 3 s later; a waiter fed only by the stream would be answered only then.
    const ending = setTimeout(() => {
      released = true;
      release();
    }, 3_000);
    const waited = await waiting;
    expect({ state: waited.job.state, timedOut: waited.timedOut, released }).toEqual({ state: 'cancelled', timedOut: false, released: false });
    clearTimeout(ending);
    released = true;
    release();
    await a;

    // Only waiters have used the hub so far: a subscriber from now on gets the next job's events, not that backlog.
    const controller = new AbortController();
    const subscription = db.spool.events({ signal: controller.signal });
    const reading = collect(subscription, (seen) => seen.length >= 1, () => controller.abort());
    await new Promise((resolve) => setTimeout(resolve, 300));
    await db.spool.enqueue('events.fresh', {});
    const [first] = await reading;
    controller.abort();
    expect(first).toMatchObject({ type: 'enqueued', job: { kind: 'events.fresh' } });
  });

  it('thousands of waiters share the one LISTEN connection of the process', async () => {
    const listening = async () =>
      ((await db.sql`SELECT count(*)::int AS listeners FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'spool-listener'`) as unknown as [{ listeners: number }])[0].listeners;
    await db.spool.eventHub.ready();
    const before = await listening();
    const ids = (await db.spool.enqueueMany(Array.from({ length: 2_000 }, () => ({ job: 'events.parked', payload: {} })))).map((r) => r.id);
    const waits = ids.map((id) => db.spool.waitFor(id, { timeoutMs: 3_000 }));
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await listening(), 'no connection per waiter').toBe(before);
    expect(db.spool.eventHub.listeners).toBeGreaterThanOrEqual(2_000);
    await db.sql`UPDATE spool.jobs SET state = 'scheduled', run_at = now() + interval '1 hour' WHERE kind = 'events.parked'`;
    await db.spool.cancelJob(ids[0]!);
    const first = await waits[0];
    expect(first).toMatchObject({ timedOut: false, job: { state: 'cancelled' } });
    await Promise.all(waits);
  });
});

describe('progress', () => {
  it('appears in the stream and on the job, at most once per interval per job', async () => {
    const reporter = defineJob({
      kind: 'events.progress',
      schema: z.object({}),
      handler: async (_payload, ctx) => {
        for (let i = 1; i <= 50; i++) void ctx.progress({ done: i });
        await ctx.progress({ done: 50 });
        await new Promise((resolve) => setTimeout(resolve, 400));
        await ctx.progress({ done: 'last' });
        return 'ok';
      },
    });
    const controller = new AbortController();
    const subscription = db.spool.events({ kind: ['events.progress'], type: ['progress'], signal: controller.signal });
    await db.spool.eventHub.ready();
    worker = await db.spool.work({ jobs: [reporter], logger: quiet, handleSignals: false, pollIntervalMs: 50, progressIntervalMs: 300, webhooks: false });
    const { id } = await db.spool.enqueue(reporter, {});
    const events = await collect(subscription, (seen) => seen.some((e) => (e.progress as { done: unknown }).done === 'last'), () => controller.abort());
    controller.abort();
    // 52 calls: the first is written at once, the 51 within the interval become one write, the last comes after it.
    expect(events.map((e) => e.progress)).toEqual([{ done: 1 }, { done: 50 }, { done: 'last' }]);
    const job = await waitFor(async () => {
      const j = await db.spool.getJob(id);
      return j?.state === 'completed' ? j : undefined;
    }, 'completion');
    expect(job.progress).toEqual({ done: 'last' });
  });
});
