import { beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/api/app.js';
import { createLogger } from '../../src/observability/logger.js';
import { useTestDatabase } from '../support/database.js';
import { api, type ApiCall } from '../support/api.js';

const db = useTestDatabase();
let call: ApiCall;
beforeAll(() => {
  call = api(createApp({ auth: 'off', spool: db.spool, logger: createLogger({ level: 'silent' }), batchMax: 5, bodyLimitBytes: 4096, unknownKinds: 'allow' }));
});

describe('POST /jobs', () => {
  it('201 with the stored job', async () => {
    const res = await call('POST', '/jobs', { kind: 'email.send', payload: { to: 'a@b.c' }, queue: 'mail', priority: 3, tags: ['x'] });
    expect(res.status).toBe(201);
    expect(res.body.duplicate).toBe(false);
    expect(res.body.job).toMatchObject({ kind: 'email.send', payload: { to: 'a@b.c' }, queue: 'mail', priority: 3, tags: ['x'], state: 'available', attempt: 0 });
    const [row] = await db.sql`SELECT kind, queue FROM spool.all_jobs WHERE id = ${res.body.job.id}`;
    expect(row).toEqual({ kind: 'email.send', queue: 'mail' });
  });

  it('a future runAt or a delayMs makes the job scheduled', async () => {
    const later = await call('POST', '/jobs', { kind: 'k', runAt: '2099-01-01T00:00:00Z' });
    expect(later.body.job.state).toBe('scheduled');
    const delayed = await call('POST', '/jobs', { kind: 'k', delayMs: 60_000 });
    expect(delayed.body.job.state).toBe('scheduled');
  });

  it('Idempotency-Key works as uniqueKey: the second call is 200 with the same job and duplicate: true', async () => {
    const first = await call('POST', '/jobs', { kind: 'charge', payload: { n: 1 } }, { 'Idempotency-Key': 'order-7' });
    const second = await call('POST', '/jobs', { kind: 'charge', payload: { n: 2 } }, { 'Idempotency-Key': 'order-7' });
    expect(first.status).toBe(201);
    expect(second.status).toBe(200);
    expect(second.body.duplicate).toBe(true);
    expect(second.body.job.id).toBe(first.body.job.id);
    expect(second.body.job.uniqueKey).toBe('order-7');
    const [{ n }] = (await db.sql`SELECT count(*)::int AS n FROM spool.all_jobs WHERE unique_key = 'order-7'`) as unknown as [{ n: number }];
    expect(n).toBe(1);
  });

  it('concurrent requests are written together and each gets its own job', async () => {
    const results = await Promise.all(Array.from({ length: 40 }, (_, n) => call('POST', '/jobs', { kind: 'burst', payload: { n } })));
    expect(results.map((r) => r.status)).toEqual(Array(40).fill(201));
    expect(results.map((r) => r.body.job.payload.n)).toEqual(Array.from({ length: 40 }, (_, n) => n));
    expect(new Set(results.map((r) => r.body.job.id)).size).toBe(40);
  });

  it('one bad job among concurrent ones fails alone', async () => {
    const results = await Promise.all([
      call('POST', '/jobs', { kind: 'mix', payload: { n: 1 } }),
      call('POST', '/jobs', { kind: 'mix', payload: { text: 'nul \u0000 here' } }),
      call('POST', '/jobs', { kind: 'mix', payload: { n: 3 } }),
    ]);
    expect(results.map((r) => r.status)).toEqual([201, 400, 201]);
    expect(results[1]!.body.error.details[0].path).toBe('payload.text');
    const [{ n }] = (await db.sql`SELECT count(*)::int AS n FROM spool.all_jobs WHERE kind = 'mix'`) as unknown as [{ n: number }];
    expect(n).toBe(2);
  });

  it('400 names every bad field, and nothing is stored', async () => {
    const before = await db.sql`SELECT count(*)::int AS n FROM spool.all_jobs`;
    const res = await call('POST', '/jobs', { kind: 'bad kind', priority: 1.5, maxAttempts: 0, colour: 'red' });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('invalid_input');
    expect(res.body.error.details.map((d: { path: string }) => d.path).sort()).toEqual(['colour', 'kind', 'maxAttempts', 'priority']);
    expect(res.body.error.requestId).toEqual(expect.any(String));
    const after = await db.sql`SELECT count(*)::int AS n FROM spool.all_jobs`;
    expect(after[0]!.n).toBe(before[0]!.n);
  });

  it('400 for runAt and delayMs together, malformed JSON, and an Idempotency-Key that differs from uniqueKey', async () => {
    const both = await call('POST', '/jobs', { kind: 'k', runAt: '2099-01-01T00:00:00Z', delayMs: 5 });
    expect(both.status).toBe(400);
    expect(both.body.error.details[0].path).toBe('delayMs');
    const malformed = await call('POST', '/jobs', '{"kind": ', {}, 'application/json');
    expect(malformed.status).toBe(400);
    expect(malformed.body.error.code).toBe('invalid_json');
    const differ = await call('POST', '/jobs', { kind: 'k', uniqueKey: 'a' }, { 'Idempotency-Key': 'b' });
    expect(differ.status).toBe(400);
    expect(differ.body.error.details[0].path).toBe('uniqueKey');
  });

  it('415 when the body is not JSON', async () => {
    const res = await call('POST', '/jobs', 'kind=k', {}, 'application/x-www-form-urlencoded');
    expect(res.status).toBe(415);
    expect(res.body.error.code).toBe('unsupported_media_type');
  });

  it('413 when the body is over the limit', async () => {
    const res = await call('POST', '/jobs', { kind: 'k', payload: { blob: 'x'.repeat(10_000) } });
    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe('payload_too_large');
    const [{ n }] = (await db.sql`SELECT count(*)::int AS n FROM spool.all_jobs WHERE kind = 'k' AND payload ? 'blob'`) as unknown as [{ n: number }];
    expect(n).toBe(0);
  });
});

describe('POST /jobs/batch', () => {
  it('201 with the ids in input order', async () => {
    const res = await call('POST', '/jobs/batch', { jobs: [{ kind: 'b', payload: { n: 1 } }, { kind: 'b', payload: { n: 2 }, queue: 'other' }] });
    expect(res.status).toBe(201);
    expect(res.body.ids).toHaveLength(2);
    expect(res.body.duplicate).toEqual([false, false]);
    const rows = await db.sql`SELECT payload->>'n' AS n, queue FROM spool.all_jobs WHERE id = ANY(${res.body.ids}::bigint[]) ORDER BY id`;
    expect(rows.map((r) => ({ ...r }))).toEqual([{ n: '1', queue: 'default' }, { n: '2', queue: 'other' }]);
  });

  it('400 over the configured maximum, naming jobs; 400 naming the bad element', async () => {
    const tooMany = await call('POST', '/jobs/batch', { jobs: Array.from({ length: 6 }, () => ({ kind: 'b' })) });
    expect(tooMany.status).toBe(400);
    expect(tooMany.body.error.details[0].path).toBe('jobs');
    const bad = await call('POST', '/jobs/batch', { jobs: [{ kind: 'b' }, { kind: '' }] });
    expect(bad.status).toBe(400);
    expect(bad.body.error.details[0].path).toBe('jobs.1.kind');
  });

  it('415 when not JSON', async () => {
    expect((await call('POST', '/jobs/batch', 'x', {}, 'text/plain')).status).toBe(415);
  });
});

describe('GET /jobs and /jobs/:id', () => {
  it('200 with one job; 404 for an unknown id; 400 for a malformed id', async () => {
    const { body } = await call('POST', '/jobs', { kind: 'get.me' });
    const found = await call('GET', `/jobs/${body.job.id}`);
    expect(found.status).toBe(200);
    expect(found.body.job.kind).toBe('get.me');
    const missing = await call('GET', '/jobs/999999999');
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('not_found');
    const malformed = await call('GET', '/jobs/abc');
    expect(malformed.status).toBe(400);
    expect(malformed.body.error.details[0].path).toBe('id');
  });

  it('filters and pages with a keyset cursor until the last page', async () => {
    await call('POST', '/jobs/batch', { jobs: Array.from({ length: 5 }, (_, n) => ({ kind: 'page.me', payload: { n }, tags: n % 2 ? ['odd'] : [] })) });
    const seen: number[] = [];
    let cursor: string | null = null;
    do {
      const res: Awaited<ReturnType<ApiCall>> = await call('GET', `/jobs?kind=page.me&state=available&limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(res.status).toBe(200);
      seen.push(...res.body.jobs.map((j: { payload: { n: number } }) => j.payload.n));
      cursor = res.body.nextCursor;
    } while (cursor);
    expect(seen).toEqual([4, 3, 2, 1, 0]);
    const odd = await call('GET', '/jobs?kind=page.me&tag=odd&order=asc');
    expect(odd.body.jobs.map((j: { payload: { n: number } }) => j.payload.n)).toEqual([1, 3]);
  });

  it('400 for a malformed cursor, an unknown state and a bad limit, each named', async () => {
    const cursor = await call('GET', '/jobs?cursor=not-a-cursor');
    expect(cursor.status).toBe(400);
    expect(cursor.body.error.details[0].path).toBe('cursor');
    const state = await call('GET', '/jobs?state=available,finished');
    expect(state.status).toBe(400);
    expect(state.body.error.details[0]).toMatchObject({ path: 'state', message: expect.stringMatching(/expected scheduled, available/) });
    const limit = await call('GET', '/jobs?limit=5000');
    expect(limit.status).toBe(400);
    expect(limit.body.error.details[0].path).toBe('limit');
    const unknown = await call('GET', '/jobs?colour=red');
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.details[0].path).toBe('colour');
  });
});

describe('DELETE /jobs/:id and POST /jobs/:id/retry', () => {
  it('cancels an available job; 409 once it is finished; 404 for an unknown id', async () => {
    const { body } = await call('POST', '/jobs', { kind: 'cancel.me' });
    const cancelled = await call('DELETE', `/jobs/${body.job.id}`);
    expect(cancelled.status).toBe(200);
    expect(cancelled.body.job.state).toBe('cancelled');
    const again = await call('DELETE', `/jobs/${body.job.id}`);
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('illegal_transition');
    expect((await call('DELETE', '/jobs/999999999')).status).toBe(404);
  });

  it('retries a cancelled or dead job; 409 for one that has not finished', async () => {
    const { body } = await call('POST', '/jobs', { kind: 'retry.me' });
    const early = await call('POST', `/jobs/${body.job.id}/retry`);
    expect(early.status).toBe(409);
    await call('DELETE', `/jobs/${body.job.id}`);
    const retried = await call('POST', `/jobs/${body.job.id}/retry`);
    expect(retried.status).toBe(200);
    expect(retried.body.job.state).toBe('available');
    expect((await call('POST', '/jobs/999999999/retry')).status).toBe(404);
  });
});

describe('errors', () => {
  it('404 for an unknown route, with the error shape', async () => {
    const res = await call('GET', '/nope');
    expect(res.status).toBe(404);
    expect(res.body.error).toMatchObject({ code: 'not_found', details: [] });
  });

  it('echoes X-Request-Id, or makes one', async () => {
    const given = await call('GET', '/nope', undefined, { 'X-Request-Id': 'req-123' });
    expect(given.headers.get('x-request-id')).toBe('req-123');
    expect(given.body.error.requestId).toBe('req-123');
    const made = await call('GET', '/healthz');
    expect(made.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });
});
