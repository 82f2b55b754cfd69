import { beforeAll, describe, expect, it } from 'vitest';
import { createApp, createLogger, ROLES, type Role } from '../../src/index.js';
import { ROUTE_ACCESS } from '../../src/api/access.js';
import { ROLE_GRANTS } from '../../src/auth/keys.js';
import { api, secretOf, type ApiCall } from '../support/api.js';
import { useTestDatabase } from '../support/database.js';

const db = useTestDatabase();
const quiet = createLogger({ level: 'silent' });
let call: ApiCall;
const keys = {} as Record<Role, string>;

/** A path for a route template, with placeholder parameters. */
const samplePath = (template: string) =>
  template.replace(':id', '1').replace(':queue', 'q').replace(':scope', 'queue').replace(':name', 'n').replace(':asset', 'x.css');

beforeAll(async () => {
  call = api(createApp({ spool: db.spool, logger: quiet, unknownKinds: 'allow' }));
  for (const role of ROLES) keys[role] = (await db.spool.keys.create({ role, name: `${role} test key` })).key;
});

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

describe('API keys and roles', () => {
  it('every route the app registers declares its access', () => {
    const app = createApp({ spool: db.spool, logger: quiet });
    const registered = new Set(app.routes.filter((r) => r.method !== 'ALL').map((r) => `${r.method} ${r.path}`));
    for (const route of registered) expect(ROUTE_ACCESS, route).toHaveProperty([route]);
    for (const route of Object.keys(ROUTE_ACCESS)) if (route !== 'GET /metrics') expect(registered, route).toContain(route);
  });

  it('no key: 401 on every route but /healthz and /readyz, with WWW-Authenticate-style guidance', async () => {
    for (const [route, access] of Object.entries(ROUTE_ACCESS)) {
      const [method, template] = route.split(' ') as [string, string];
      if (template === '/metrics') continue; // this Spool has no metrics
      const res = await call(method, samplePath(template), method === 'GET' || method === 'DELETE' ? undefined : {});
      if (access === 'open') expect(res.status, route).toBe(200);
      else {
        expect(res.status, route).toBe(401);
        expect((res.body as { error: { code: string; message: string } }).error.message, route).toMatch(/Authorization: Bearer|API key/);
      }
    }
  });

  it('each role: 403 exactly on the routes its role does not grant', async () => {
    for (const role of ROLES) {
      for (const [route, access] of Object.entries(ROUTE_ACCESS)) {
        const [method, template] = route.split(' ') as [string, string];
        if (access === 'open' || template === '/metrics') continue;
        // Mutating calls with placeholder targets: they answer 400/404, or change nothing that matters here.
        if (route === 'DELETE /keys/:id' || route === 'POST /keys/:id/rotate' || route === 'POST /keys') continue;
        const res = await call(method, samplePath(template), method === 'GET' || method === 'DELETE' ? undefined : {}, bearer(keys[role]));
        if (ROLE_GRANTS[role].includes(access)) expect([401, 403], `${role} ${route}`).not.toContain(res.status);
        else {
          expect(res.status, `${role} ${route}`).toBe(403);
          expect((res.body as { error: { message: string } }).error.message).toContain(`a ${role} key may not ${access}`);
        }
      }
    }
  });

  it('a producer enqueues and reads; a reader reads but cannot enqueue; an operator cancels but cannot enqueue', async () => {
    const posted = await call('POST', '/jobs', { kind: 'sec.job' }, bearer(keys.producer));
    expect(posted.status).toBe(201);
    const id = (posted.body as { job: { id: string } }).job.id;
    expect((await call('GET', `/jobs/${id}`, undefined, bearer(keys.reader))).status).toBe(200);
    expect((await call('POST', '/jobs', { kind: 'sec.job' }, bearer(keys.reader))).status).toBe(403);
    expect((await call('POST', '/jobs', { kind: 'sec.job' }, bearer(keys.operator))).status).toBe(403);
    expect((await call('DELETE', `/jobs/${id}`, undefined, bearer(keys.producer))).status).toBe(403);
    const cancelled = await call('DELETE', `/jobs/${id}`, undefined, bearer(keys.operator));
    expect(cancelled.status).toBe(200);
    expect((cancelled.body as { job: { state: string } }).job.state).toBe('cancelled');
  });

  it('malformed, unknown, revoked and expired keys are refused with 401; a tampered secret too', async () => {
    const anyRoute = (headers: Record<string, string>) => call('GET', '/queues', undefined, headers);
    expect((await anyRoute({ authorization: 'Basic abc' })).status).toBe(401);
    expect((await anyRoute({ authorization: 'Bearer nonsense' })).status).toBe(401);
    const { key, apiKey } = await db.spool.keys.create({ role: 'reader' });
    expect((await anyRoute(bearer(key))).status).toBe(200);
    const tampered = key.slice(0, -1) + (key.endsWith('A') ? 'B' : 'A');
    expect((await anyRoute(bearer(tampered))).status).toBe(401);
    // A fresh app (no cache of the key): revoked at once.
    await db.spool.keys.revoke(apiKey.id);
    const fresh = api(createApp({ spool: db.spool, logger: quiet }));
    expect((await fresh('GET', '/queues', undefined, bearer(key))).status).toBe(401);
    const expired = await db.spool.keys.create({ role: 'admin', expiresAt: new Date(Date.now() + 1_000) });
    expect((await fresh('GET', '/queues', undefined, bearer(expired.key))).status).toBe(200);
    await db.sql`UPDATE spool.api_keys SET expires_at = now() - interval '1 second' WHERE id = ${expired.apiKey.id}`;
    const later = api(createApp({ spool: db.spool, logger: quiet }));
    expect((await later('GET', '/queues', undefined, bearer(expired.key))).status).toBe(401);
  });

  it('admins manage keys over HTTP: created once with the secret, listed without it, rotated, revoked', async () => {
    const created = await call('POST', '/keys', { role: 'reader', name: 'dashboard' }, bearer(keys.admin));
    expect(created.status).toBe(201);
    const { key, apiKey } = created.body as { key: string; apiKey: { id: string; prefix: string } };
    expect(key).toMatch(/^spool_[a-z0-9]{12}_[A-Za-z0-9_-]{43}$/);
    const listed = await call('GET', '/keys', undefined, bearer(keys.admin));
    expect(JSON.stringify(listed.body)).not.toContain(secretOf(key));
    expect((listed.body as { keys: Array<{ id: string }> }).keys.map((k) => k.id)).toContain(apiKey.id);
    const [stored] = await db.sql`SELECT encode(secret_hash, 'hex') AS hash FROM spool.api_keys WHERE id = ${apiKey.id}`;
    expect(stored!.hash).toHaveLength(64);
    expect(stored!.hash).not.toContain(secretOf(key));
    const rotated = await call('POST', `/keys/${apiKey.prefix}/rotate`, undefined, bearer(keys.admin));
    expect(rotated.status).toBe(201);
    const fresh = api(createApp({ spool: db.spool, logger: quiet }));
    expect((await fresh('GET', '/queues', undefined, bearer(key))).status).toBe(401);
    const newKey = (rotated.body as { key: string }).key;
    expect((await fresh('GET', '/queues', undefined, bearer(newKey))).status).toBe(200);
    const newId = (rotated.body as { apiKey: { id: string } }).apiKey.id;
    expect((await call('DELETE', `/keys/${newId}`, undefined, bearer(keys.admin))).status).toBe(200);
    expect((await api(createApp({ spool: db.spool, logger: quiet }))('GET', '/queues', undefined, bearer(newKey))).status).toBe(401);
    // Bad input is named.
    const bad = await call('POST', '/keys', { role: 'root' }, bearer(keys.admin));
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toContain('role');
    expect((await call('DELETE', '/keys/nope!', undefined, bearer(keys.admin))).status).toBe(400);
    expect((await call('DELETE', '/keys/999999', undefined, bearer(keys.admin))).status).toBe(404);
  });

  it('the OpenAPI document shows the bearer scheme, and no security on the health routes', async () => {
    const doc = (await call('GET', '/openapi.json', undefined, bearer(keys.reader))).body as any;
    expect(doc.components.securitySchemes.bearerKey).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(doc.paths['/jobs'].post.security).toEqual([{ bearerKey: [] }]);
    expect(doc.paths['/healthz'].get.security).toEqual([]);
    expect(doc.paths['/jobs'].post.responses['403']).toBeDefined();
  });

  it('auth off: no key is asked for', async () => {
    const open = api(createApp({ spool: db.spool, logger: quiet, auth: 'off' }));
    expect((await open('GET', '/queues')).status).toBe(200);
  });
});

describe('cross-site and host safety', () => {
  it('a foreign Host is refused (DNS rebinding); localhost names are answered', async () => {
    const res = await call('GET', '/healthz', undefined, { host: 'evil.example' });
    expect(res.status).toBe(400);
    expect((res.body as { error: { code: string } }).error.code).toBe('host_not_allowed');
    expect((await call('GET', '/healthz', undefined, { host: 'localhost:8080' })).status).toBe(200);
    expect((await call('GET', '/healthz', undefined, { host: '127.0.0.1:8080' })).status).toBe(200);
    const wildcard = api(createApp({ spool: db.spool, logger: quiet, allowedHosts: ['*'] }));
    expect((await wildcard('GET', '/healthz', undefined, { host: 'spool.internal' })).status).toBe(200);
  });

  it('a state-changing request from a foreign origin is refused, even with a valid key; same origin and configured origins pass', async () => {
    const headers = { ...bearer(keys.admin), host: 'localhost:8080' };
    const foreign = await call('POST', '/queues/q/pause', {}, { ...headers, origin: 'https://evil.example' });
    expect(foreign.status).toBe(403);
    expect((foreign.body as { error: { code: string } }).error.code).toBe('origin_not_allowed');
    expect((await call('POST', '/queues/q/pause', {}, { ...headers, origin: 'null' })).status).toBe(403);
    expect((await call('POST', '/queues/q/resume', {}, { ...bearer(keys.admin), 'sec-fetch-site': 'cross-site' })).status).toBe(403);
    expect((await db.sql`SELECT count(*)::int AS n FROM spool.queues WHERE name = 'q' AND paused`)[0]!.n).toBe(0);
    expect((await call('POST', '/queues/q/pause', {}, { ...headers, origin: 'http://localhost:8080' })).status).toBe(200);
    const withCors = api(createApp({ spool: db.spool, logger: quiet, corsOrigins: ['https://admin.example.com'] }));
    const allowed = await withCors('POST', '/queues/q/resume', {}, { ...headers, origin: 'https://admin.example.com' });
    expect(allowed.status).toBe(200);
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://admin.example.com');
    // CORS is off by default: no allow-origin header for anyone.
    expect((await call('GET', '/healthz', undefined, { origin: 'https://admin.example.com' })).headers.get('access-control-allow-origin')).toBeNull();
  });

  it('answers carry the standard security headers', async () => {
    const res = await call('GET', '/healthz');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('x-frame-options')).toBe('SAMEORIGIN');
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
  });
});
