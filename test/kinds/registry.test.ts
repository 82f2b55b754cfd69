import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createApp } from '../../src/api/app.js';
import { createLogger } from '../../src/observability/logger.js';
import { defineJob, type Worker } from '../../src/index.js';
import { api, type ApiCall } from '../support/api.js';
import { runCli } from '../support/cli.js';
import { useTestDatabase } from '../support/database.js';
import { waitFor } from '../support/factories.js';

const db = useTestDatabase();
const quiet = createLogger({ level: 'silent' });

// A kind whose definition sets every default the registry carries.
const invoice = defineJob({
  kind: 'invoice.send',
  schema: z.object({ customer: z.string().min(1), amount: z.number().positive(), note: z.string().default('') }),
  queue: 'billing',
  priority: 7,
  maxAttempts: 3,
  timeoutMs: 4_000,
  tags: ['money'],
  handler: async () => {
    throw new Error('the payment provider is down');
  },
});

let worker: Worker;
let call: ApiCall;

beforeAll(async () => {
  worker = await db.spool.work({ jobs: [invoice], logger: quiet, handleSignals: false, pollIntervalMs: 50 });
  await worker.stop();
  call = api(createApp({ auth: 'off', spool: db.spool, logger: quiet }));
});

afterAll(async () => {
  await worker?.stop();
});

const row = async (id: string) => {
  const [job] = await db.sql`SELECT queue::text, priority, max_attempts, timeout_ms, tags FROM spool.all_jobs WHERE id = ${id}`;
  return job;
};
const DEFAULTS = { queue: 'billing', priority: 7, max_attempts: 3, timeout_ms: 4_000, tags: ['money'] };
const PAYLOAD = { customer: 'acme', amount: 12.5 };

describe('the kind registry', () => {
  it('a starting worker registers each kind it handles: defaults, payload JSON Schema, who and when', async () => {
    const [kind] = await db.sql`SELECT * FROM spool.kinds WHERE kind = 'invoice.send'`;
    expect(kind).toMatchObject({ ...DEFAULTS, remove_on_complete: false, registered_by: worker.id });
    expect(kind!.payload_schema).toMatchObject({
      type: 'object',
      properties: { customer: { type: 'string', minLength: 1 }, amount: { type: 'number' } },
      required: ['customer', 'amount'],
    });
    expect(kind!.last_seen_at).toBeInstanceOf(Date);
  });

  it('a kind with no queue of its own is registered in the worker\'s first queue, where that worker claims it; one kind twice is refused', async () => {
    const plain = defineJob({ kind: 'plain.kind', schema: z.object({}), handler: async () => 'done' });
    const mailWorker = await db.spool.work({ jobs: [plain], queues: ['mail', 'other'], logger: quiet, handleSignals: false, pollIntervalMs: 50 });
    try {
      const { id, queue } = await db.spool.enqueue('plain.kind', {});
      expect(queue).toBe('mail');
      await waitFor(async () => (await db.spool.getJob(id))?.state === 'completed', 'the job to run in mail');
    } finally {
      await mailWorker.stop();
    }
    const error = await db.spool.registerKinds([plain, plain]).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'invalid_input', field: 'definitions.1.kind' });
  });

  it('applies the kind\'s defaults to a job enqueued by name from the client, and the caller\'s own values win', async () => {
    const byName = await db.spool.enqueue('invoice.send', PAYLOAD);
    expect(byName.queue).toBe('billing');
    expect(await row(byName.id)).toEqual(DEFAULTS);
    const own = await db.spool.enqueue('invoice.send', PAYLOAD, { queue: 'urgent', priority: -1, maxAttempts: 9, timeoutMs: 50, tags: [] });
    expect(await row(own.id)).toEqual({ queue: 'urgent', priority: -1, max_attempts: 9, timeout_ms: 50, tags: [] });
    const many = await db.spool.enqueueMany([{ job: 'invoice.send', payload: PAYLOAD }, { job: 'invoice.send', payload: PAYLOAD, maxAttempts: 1 }]);
    expect(await row(many[0]!.id)).toEqual(DEFAULTS);
    expect(await row(many[1]!.id)).toEqual({ ...DEFAULTS, max_attempts: 1 });
  });

  it('applies them over HTTP: POST /jobs and POST /jobs/batch', async () => {
    const one = await call('POST', '/jobs', { kind: 'invoice.send', payload: PAYLOAD });
    expect(one.status).toBe(201);
    expect(one.body.job).toMatchObject({ queue: 'billing', priority: 7, maxAttempts: 3, timeoutMs: 4_000, tags: ['money'] });
    const batch = await call('POST', '/jobs/batch', { jobs: [{ kind: 'invoice.send', payload: PAYLOAD }, { kind: 'invoice.send', payload: PAYLOAD, priority: 2 }] });
    expect(batch.status).toBe(201);
    expect(await row(batch.body.ids[0])).toEqual(DEFAULTS);
    expect(await row(batch.body.ids[1])).toEqual({ ...DEFAULTS, priority: 2 });
  });

  it('applies them from the CLI: spool enqueue', async () => {
    const run = runCli(['enqueue', 'invoice.send', JSON.stringify(PAYLOAD), '--json'], { DATABASE_URL: db.url });
    expect(await run.exited).toBe(0);
    const { id } = JSON.parse(run.output().stdout);
    expect(await row(id)).toEqual(DEFAULTS);
  });

  it('applies them from SQL: spool.enqueue() (and so from triggers), unknown kinds still accepted with the column defaults', async () => {
    const [{ id }] = (await db.sql`SELECT spool.enqueue('invoice.send', ${db.sql.json(PAYLOAD)}) AS id`) as unknown as [{ id: string }];
    expect(await row(String(id))).toEqual(DEFAULTS);
    const [{ own }] = (await db.sql`SELECT spool.enqueue('invoice.send', '{}', queue => 'q2', max_attempts => 4) AS own`) as unknown as [{ own: string }];
    expect(await row(String(own))).toEqual({ ...DEFAULTS, queue: 'q2', max_attempts: 4 });
    const [{ unknown }] = (await db.sql`SELECT spool.enqueue('no.worker.yet', '{"x":1}') AS unknown`) as unknown as [{ unknown: string }];
    expect(await row(String(unknown))).toEqual({ queue: 'default', priority: 0, max_attempts: 25, timeout_ms: null, tags: [] });
  });

  it('finds a unique key\'s holder in the kind\'s queue when the caller names none', async () => {
    const first = await db.spool.enqueue('invoice.send', PAYLOAD, { uniqueKey: 'inv-1' });
    const again = await db.spool.enqueue('invoice.send', PAYLOAD, { uniqueKey: 'inv-1' });
    expect(again).toEqual({ id: first.id, duplicate: true, queue: 'billing' });
    const [{ sqlAgain }] = (await db.sql`SELECT spool.enqueue('invoice.send', '{}', unique_key => 'inv-1') AS "sqlAgain"`) as unknown as [{ sqlAgain: string }];
    expect(String(sqlAgain)).toBe(first.id);
  });

  it('a job enqueued by name alone gets the kind\'s maxAttempts: 3 attempts, then dead (not 25)', async () => {
    // Emptied before the worker starts: its first claim would take the earlier tests' jobs.
    await db.sql`DELETE FROM spool.jobs`;
    const running = await db.spool.work({ jobs: [invoice], logger: quiet, handleSignals: false, pollIntervalMs: 50 });
    try {
      const { id } = await db.spool.enqueue('invoice.send', PAYLOAD);
      // Backoff kept short by moving the retry's run_at to now.
      const dead = await waitFor(async () => {
        await db.sql`UPDATE spool.jobs SET run_at = now() WHERE id = ${id} AND state = 'scheduled'`;
        const job = await db.spool.getJob(id);
        return job?.state === 'dead' ? job : null;
      }, 'the job to be dead', 30_000);
      expect(dead.attempt).toBe(3);
      expect(dead.errors).toHaveLength(3);
      expect(running.stats.dead).toBe(1);
      expect(running.stats.retried).toBe(2);
    } finally {
      await running.stop();
    }
  });
});

describe('enqueue validation against the registry', () => {
  it('POST /jobs refuses an unknown kind with 400 naming the known kinds', async () => {
    const res = await call('POST', '/jobs', { kind: 'invoice.sned', payload: PAYLOAD });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('invalid_input');
    expect(res.body.error.details).toEqual([{ path: 'kind', message: expect.stringMatching(/unknown kind "invoice.sned".*known kinds: invoice\.send.*SPOOL_UNKNOWN_KINDS=allow/) }]);
    expect((await db.sql`SELECT count(*)::int AS n FROM spool.all_jobs WHERE kind = 'invoice.sned'`)[0]!.n).toBe(0);
  });

  it('POST /jobs refuses a payload that breaks the registered schema, naming each field; nothing is stored', async () => {
    const before = (await db.sql`SELECT count(*)::int AS n FROM spool.all_jobs`)[0]!.n;
    const res = await call('POST', '/jobs', { kind: 'invoice.send', payload: { amount: -3, note: 5 } });
    expect(res.status).toBe(400);
    const byPath = (a: { path: string }, b: { path: string }) => a.path.localeCompare(b.path);
    expect([...res.body.error.details].sort(byPath)).toEqual([
      { path: 'payload.amount', message: 'must be > 0' },
      { path: 'payload.customer', message: 'is required' },
      { path: 'payload.note', message: 'must be string' },
    ]);
    const batch = await call('POST', '/jobs/batch', { jobs: [{ kind: 'invoice.send', payload: PAYLOAD }, { kind: 'invoice.send', payload: { customer: '' } }, { kind: 'nope' }] });
    expect(batch.status).toBe(400);
    expect(batch.body.error.details.map((d: { path: string }) => d.path).sort()).toEqual(['jobs.1.payload.amount', 'jobs.1.payload.customer', 'jobs.2.kind']);
    expect((await db.sql`SELECT count(*)::int AS n FROM spool.all_jobs`)[0]!.n).toBe(before);
  });

  it('names a failed format as the format, not as the pattern zod adds to it', async () => {
    await db.spool.registerKinds([defineJob({ kind: 'mail.check', schema: z.object({ to: z.email(), code: z.string().regex(/^[A-Z]{3}$/) }) })]);
    const res = await waitFor(async () => {
      const answer = await call('POST', '/jobs', { kind: 'mail.check', payload: { to: 'a@b.c', code: 'ab' } });
      return answer.body.error?.details?.[0]?.path?.startsWith('payload') ? answer : null;
    }, 'the kind to be seen');
    expect(res.status).toBe(400);
    expect(res.body.error.details).toEqual([
      { path: 'payload.to', message: 'must be a valid email' },
      { path: 'payload.code', message: 'must match pattern "^[A-Z]{3}$"' },
    ]);
  });

  it('with unknownKinds: allow, an unknown kind is accepted (registered kinds are still checked)', async () => {
    const open = api(createApp({ auth: 'off', spool: db.spool, logger: quiet, unknownKinds: 'allow' }));
    const res = await open('POST', '/jobs', { kind: 'deployed.later', payload: { a: 1 } });
    expect(res.status).toBe(201);
    expect(res.body.job).toMatchObject({ queue: 'default', maxAttempts: 25 });
    expect((await open('POST', '/jobs', { kind: 'invoice.send', payload: {} })).status).toBe(400);
  });

  it('sees a kind registered after the API started (within 250 ms), and a changed schema (within 2 s)', async () => {
    const later = defineJob({ kind: 'late.kind', schema: z.object({ n: z.number() }), maxAttempts: 2 });
    expect((await call('POST', '/jobs', { kind: 'late.kind', payload: { n: 1 } })).status).toBe(400);
    await db.spool.registerKinds([later]);
    const ok = await waitFor(async () => {
      const res = await call('POST', '/jobs', { kind: 'late.kind', payload: { n: 1 } });
      return res.status === 201 ? res : null;
    }, 'the new kind to be seen');
    expect(ok.body.job.maxAttempts).toBe(2);
    expect((await call('POST', '/jobs', { kind: 'late.kind', payload: { n: 'one' } })).status).toBe(400);
    await db.spool.registerKinds([defineJob({ kind: 'late.kind', schema: z.object({ n: z.string() }) })]);
    await waitFor(async () => (await call('POST', '/jobs', { kind: 'late.kind', payload: { n: 'one' } })).status === 201, 'the new schema to apply');
  });

  it('spool enqueue refuses an unknown kind and a bad payload naming the field (exit 1, spool: invalid_input: …); SPOOL_UNKNOWN_KINDS=allow lets the kind in', async () => {
    const unknown = runCli(['enqueue', 'nope.kind', '{}'], { DATABASE_URL: db.url });
    expect(await unknown.exited).toBe(1);
    expect(unknown.output().stderr).toMatch(/^spool: invalid_input: kind: unknown kind "nope.kind".*invoice\.send/);
    const bad = runCli(['enqueue', 'invoice.send', '{"customer":"x"}'], { DATABASE_URL: db.url });
    expect(await bad.exited).toBe(1);
    expect(bad.output().stderr).toMatch(/^spool: invalid_input: payload.amount: is required/);
    const allowed = runCli(['enqueue', 'nope.kind', '{}'], { DATABASE_URL: db.url, SPOOL_UNKNOWN_KINDS: 'allow' });
    expect(await allowed.exited).toBe(0);
  });
});

describe('listing kinds', () => {
  it('GET /kinds and spool kinds (--json and table): defaults, schema, waiting count, workers, last seen', async () => {
    await db.sql`DELETE FROM spool.jobs`;
    await db.spool.enqueueMany([{ job: 'invoice.send', payload: PAYLOAD }, { job: 'invoice.send', payload: PAYLOAD, delayMs: 60_000 }]);
    const res = await call('GET', '/kinds');
    expect(res.status).toBe(200);
    const listed = res.body.kinds.find((k: { kind: string }) => k.kind === 'invoice.send');
    expect(listed).toMatchObject({
      queue: 'billing', priority: 7, maxAttempts: 3, timeoutMs: 4_000, tags: ['money'], waiting: 2, workers: 0,
      payloadSchema: { type: 'object' }, registeredBy: expect.any(String), lastSeenAt: expect.any(String),
    });
    const json = runCli(['kinds', '--json'], { DATABASE_URL: db.url });
    expect(await json.exited).toBe(0);
    expect(JSON.parse(json.output().stdout).kinds.find((k: { kind: string }) => k.kind === 'invoice.send')).toMatchObject({ waiting: 2, maxAttempts: 3 });
    const text = runCli(['kinds'], { DATABASE_URL: db.url });
    expect(await text.exited).toBe(0);
    expect(text.output().stdout).toMatch(/^KIND\s+QUEUE\s+PRIORITY\s+ATTEMPTS/);
    expect(text.output().stdout).toMatch(/invoice\.send\s+billing\s+7\s+3\s+4000ms\s+yes\s+2/);
  });
});
