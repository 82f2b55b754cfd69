import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/api/app.js';
import { createSpool, type Spool } from '../../src/index.js';
import { freePort } from '../../src/db/embedded.js';
import { createLogger } from '../../src/observability/logger.js';
import { useTestDatabase } from '../support/database.js';
import { api, type ApiCall } from '../support/api.js';

const db = useTestDatabase();
const empty = useTestDatabase({ empty: true });
const quiet = createLogger({ level: 'silent' });
let call: ApiCall;
const others: Spool[] = [];
beforeAll(() => {
  call = api(createApp({ auth: 'off', spool: db.spool, logger: quiet, unknownKinds: 'allow' }));
});
afterAll(async () => {
  for (const spool of others) await spool.close();
});

/** Makes a dead job of `kind` in `queue` with one recorded error. */
async function deadJob(kind: string, queue = 'default'): Promise<string> {
  const [{ id }] = (await db.sql`
    INSERT INTO spool.jobs (kind, queue, state, attempt, max_attempts, finished_at, errors)
    VALUES (${kind}, ${queue}, 'dead', 1, 1, now(), '[{"attempt":1,"at":"2026-01-01T00:00:00Z","message":"boom"}]')
    RETURNING id::text`) as unknown as [{ id: string }];
  return id as string;
}

describe('queues', () => {
  it('GET /queues: counts by state, oldest available age, paused', async () => {
    await call('POST', '/jobs/batch', { jobs: [{ kind: 'q', queue: 'stats' }, { kind: 'q', queue: 'stats' }, { kind: 'q', queue: 'stats', delayMs: 60_000 }] });
    await db.sql`UPDATE spool.jobs SET run_at = now() - interval '90 seconds' WHERE queue = 'stats' AND state = 'available'`;
    await deadJob('q', 'stats');
    const res = await call('GET', '/queues');
    expect(res.status).toBe(200);
    const stats = res.body.queues.find((q: { queue: string }) => q.queue === 'stats');
    expect(stats.counts).toEqual({ scheduled: 1, available: 2, running: 0, completed: 0, dead: 1, cancelled: 0 });
    expect(stats.oldestAvailableAgeSeconds).toBeGreaterThanOrEqual(90);
    expect(stats.paused).toBe(false);
  });

  it('pause and resume: the flag shows in GET /queues, also for a queue with no jobs; 400 for a bad name', async () => {
    const paused = await call('POST', '/queues/idle/pause');
    expect(paused).toMatchObject({ status: 200, body: { queue: 'idle', paused: true } });
    let listed = (await call('GET', '/queues')).body.queues.find((q: { queue: string }) => q.queue === 'idle');
    expect(listed).toMatchObject({ paused: true, counts: { available: 0 } });
    expect((await call('POST', '/queues/idle/resume')).body).toEqual({ queue: 'idle', paused: false });
    listed = (await call('GET', '/queues')).body.queues.find((q: { queue: string }) => q.queue === 'idle');
    expect(listed.paused).toBe(false);
    const bad = await call('POST', `/queues/${encodeURIComponent('no spaces')}/pause`);
    expect(bad.status).toBe(400);
    expect(bad.body.error.details[0].path).toBe('queue');
  });
});

describe('dead-letter queue', () => {
  it('GET /dead lists only dead jobs, filtered', async () => {
    const id = await deadJob('dlq.list', 'dlq');
    await call('POST', '/jobs', { kind: 'dlq.list', queue: 'dlq' });
    const res = await call('GET', '/dead?queue=dlq&kind=dlq.list');
    expect(res.status).toBe(200);
    expect(res.body.jobs.map((j: { id: string }) => j.id)).toEqual([id]);
    expect(res.body.jobs[0].errors[0].message).toBe('boom');
    expect((await call('GET', '/dead?state=dead')).status).toBe(400);
  });

  it('POST /dead/replay by ids and by filter: the jobs become available; others stay dead', async () => {
    const a = await deadJob('dlq.replay', 'replay');
    const b = await deadJob('dlq.replay', 'replay');
    const c = await deadJob('dlq.other', 'replay');
    const byIds = await call('POST', '/dead/replay', { ids: [a] });
    expect(byIds).toMatchObject({ status: 200, body: { replayed: 1, ids: [a] } });
    const byFilter = await call('POST', '/dead/replay', { queue: 'replay', kind: 'dlq.replay' });
    expect(byFilter.body).toEqual({ replayed: 1, ids: [b] });
    const states = await db.sql`SELECT id::text, state, max_attempts FROM spool.all_jobs WHERE id IN (${a}, ${b}, ${c}) ORDER BY id`;
    expect(states.map((r) => [r.id, r.state])).toEqual([[a, 'available'], [b, 'available'], [c, 'dead']]);
    expect(states[0]!.max_attempts).toBe(2);
  });

  it('POST /dead/replay needs a selector (all: true for every job); 415 for a non-JSON body', async () => {
    const none = await call('POST', '/dead/replay', {});
    expect(none.status).toBe(400);
    expect(none.body.error.message).toMatch(/all: true/);
    expect((await call('POST', '/dead/replay', 'ids=1', {}, 'text/plain')).status).toBe(415);
  });

  it('DELETE /dead purges by filter and returns the count; refuses no selector', async () => {
    await deadJob('dlq.purge', 'purge');
    await deadJob('dlq.purge', 'purge');
    const keep = await deadJob('dlq.keep', 'purge');
    expect((await call('DELETE', '/dead')).status).toBe(400);
    const res = await call('DELETE', '/dead?queue=purge&kind=dlq.purge');
    expect(res).toMatchObject({ status: 200, body: { deleted: 2 } });
    const left = await db.sql`SELECT id::text FROM spool.all_jobs WHERE queue = 'purge'`;
    expect(left.map((r) => r.id)).toEqual([keep]);
    const future = await call('DELETE', `/dead?queue=purge&finishedBefore=${encodeURIComponent('2000-01-01T00:00:00Z')}`);
    expect(future.body).toEqual({ deleted: 0 });
  });
});

describe('health', () => {
  it('GET /healthz is 200', async () => {
    expect(await call('GET', '/healthz')).toMatchObject({ status: 200, body: { status: 'ok' } });
  });

  it('GET /readyz is 200 with every check passing', async () => {
    const withListener = api(createApp({ auth: 'off', spool: db.spool, logger: quiet, listenerConnected: () => true }));
    const res = await withListener('GET', '/readyz');
    expect(res.status).toBe(200);
    expect(Object.keys(res.body.checks).sort()).toEqual(['database', 'listener', 'migrations']);
  });

  it('GET /readyz is 503 naming the failing check: migrations pending, listener down', async () => {
    const unmigrated = createSpool({ connectionString: empty.url, poolSize: 1 });
    others.push(unmigrated);
    const res = await api(createApp({ auth: 'off', spool: unmigrated, logger: quiet, listenerConnected: () => false }))('GET', '/readyz');
    expect(res.status).toBe(503);
    expect(res.body.checks.database.ok).toBe(true);
    expect(res.body.checks.migrations).toMatchObject({ ok: false, message: expect.stringMatching(/pending: 0001_jobs\.sql/) });
    expect(res.body.checks.listener.ok).toBe(false);
  });

  it('database down: /readyz 503 names the database; a write is 503 database_unavailable', async () => {
    const down = createSpool({ connectionString: `postgres://postgres@127.0.0.1:${await freePort()}/nowhere`, poolSize: 1 });
    others.push(down);
    const call503 = api(createApp({ auth: 'off', spool: down, logger: quiet }));
    const ready = await call503('GET', '/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body.checks.database.ok).toBe(false);
    const write = await call503('POST', '/jobs', { kind: 'k' });
    expect(write.status).toBe(503);
    expect(write.body.error.code).toBe('database_unavailable');
  });

  it('an unexpected error is a 500 with the request id and no SQL or stack', async () => {
    const wrongSchema = createSpool({ connectionString: db.url, schema: 'nothing_here', poolSize: 1 });
    others.push(wrongSchema);
    const res = await api(createApp({ auth: 'off', spool: wrongSchema, logger: quiet }))('GET', '/jobs/1', undefined, { 'X-Request-Id': 'trace-me' });
    expect(res.status).toBe(500);
    expect(res.body.error).toMatchObject({ code: 'internal', requestId: 'trace-me' });
    expect(JSON.stringify(res.body)).not.toMatch(/SELECT|nothing_here|relation|at .*\.ts/);
  });
});

describe('OpenAPI', () => {
  it('GET /openapi.json documents every route, with request schemas from zod', async () => {
    const res = await call('GET', '/openapi.json');
    expect(res.status).toBe(200);
    expect(res.body.openapi).toBe('3.0.3');
    expect(Object.keys(res.body.paths).sort()).toEqual(
      ['/audit', '/dead', '/dead/replay', '/healthz', '/jobs', '/jobs/batch', '/jobs/{id}', '/jobs/{id}/retry', '/keys', '/keys/{id}', '/keys/{id}/rotate', '/kinds', '/maintenance/prune', '/queues', '/queues/{queue}/pause', '/queues/{queue}/resume', '/readyz', '/groups', '/groups/{name}', '/limits', '/limits/{scope}/{name}', '/schedules', '/schedules/{name}', '/schedules/{name}/pause', '/schedules/{name}/resume', '/schedules/{name}/trigger', '/events', '/webhooks', '/webhooks/{id}', '/webhooks/{id}/rotate', '/webhooks/{id}/pause', '/webhooks/{id}/resume', '/webhooks/{id}/deliveries', '/webhooks/{id}/replay'].sort(),
    );
    const post = res.body.paths['/jobs'].post;
    expect(post.requestBody.content['application/json'].schema.required).toEqual(['kind']);
    expect(Object.keys(post.responses).sort()).toEqual(['200', '201', '400', '401', '403', '413', '415', '429', '503']);
    expect(res.body.paths['/jobs'].get.parameters.map((p: { name: string }) => p.name)).toEqual(['state', 'queue', 'kind', 'tag', 'limit', 'cursor', 'order']);
  });

  it('GET /docs is a page that loads Swagger UI from this server', async () => {
    const page = await call('GET', '/docs');
    expect(page.status).toBe(200);
    expect(page.body).toMatch(/swagger-ui-bundle\.js/);
    const bundle = await call('GET', '/docs/swagger-ui-bundle.js');
    expect(bundle.status).toBe(200);
    expect(bundle.headers.get('content-type')).toMatch(/javascript/);
  });
});

describe('over a real socket (@hono/node-server)', () => {
  it('413 by Content-Length before reading, 413 for a chunked body past the limit, 201 under it', async () => {
    const { startApiServer } = await import('../../src/api/server.js');
    const server = await startApiServer(createApp({ auth: 'off', spool: db.spool, logger: quiet, bodyLimitBytes: 2048, unknownKinds: 'allow' }), { host: '127.0.0.1', port: 0 });
    try {
      const url = `http://127.0.0.1:${server.port}/jobs`;
      const headers = { 'content-type': 'application/json' };
      const big = JSON.stringify({ kind: 'socket.big', payload: { blob: 'x'.repeat(5000) } });
      const sized = await fetch(url, { method: 'POST', headers, body: big });
      expect(sized.status).toBe(413);
      expect(((await sized.json()) as { error: { code: string } }).error.code).toBe('payload_too_large');
      const chunks = (text: string) =>
        new ReadableStream({
          start(controller) {
            for (let i = 0; i < text.length; i += 500) controller.enqueue(new TextEncoder().encode(text.slice(i, i + 500)));
            controller.close();
          },
        });
      const chunked = await fetch(url, { method: 'POST', headers, body: chunks(big), duplex: 'half' } as RequestInit);
      expect(chunked.status).toBe(413);
      const small = await fetch(url, { method: 'POST', headers, body: chunks(JSON.stringify({ kind: 'socket.small' })), duplex: 'half' } as RequestInit);
      expect(small.status).toBe(201);
      const [{ n }] = (await db.sql`SELECT count(*)::int AS n FROM spool.all_jobs WHERE kind LIKE 'socket.%'`) as unknown as [{ n: number }];
      expect(n).toBe(1);
    } finally {
      await server.close();
    }
  });
});
