import { beforeAll, describe, expect, it } from 'vitest';
import { createApp, createLogger } from '../../src/index.js';
import { api, type ApiCall } from '../support/api.js';
import { useTestDatabase } from '../support/database.js';

const db = useTestDatabase();
const quiet = createLogger({ level: 'silent' });
// Hour-long windows (aligned to the epoch): a test never straddles two of them by chance.
const HOUR = 3_600_000;
const BUDGET = { limit: 5, windowMs: HOUR };
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

async function key(tenant?: string): Promise<string> {
  return (await db.spool.keys.create({ role: 'reader', tenant, name: 'budget test' })).key;
}

/** Waits (bounded) until the shared table holds `n` requests for the key, as the other API processes read it. */
async function sharedCount(scope: string, n: number): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const [row] = await db.sql`SELECT coalesce(sum(n), 0)::int AS n FROM spool.api_request_windows WHERE scope = ${scope}`;
    if (row!.n >= n) return row!.n as number;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return -1;
}

describe('request budgets (ADR 0008)', () => {
  let call: ApiCall;
  beforeAll(() => {
    call = api(createApp({ spool: db.spool, logger: quiet, keyRateLimit: BUDGET, tenantRateLimit: { limit: 3, windowMs: HOUR } }));
  });

  it('past its key\'s budget a request is 429 rate_limited with Retry-After; another key is not affected', async () => {
    const first = await key();
    for (let i = 0; i < 5; i++) expect((await call('GET', '/queues', undefined, bearer(first))).status).toBe(200);
    const refused = await call('GET', '/queues', undefined, bearer(first));
    expect(refused.status).toBe(429);
    expect(refused.body.error.code).toBe('rate_limited');
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(Number(refused.headers.get('retry-after'))).toBeLessThanOrEqual(3600);
    expect((await call('GET', '/queues', undefined, bearer(await key()))).status).toBe(200);
  });

  it('a tenant\'s keys share the tenant\'s budget', async () => {
    const [a, b] = [await key('budget-t'), await key('budget-t')];
    expect((await call('GET', '/jobs', undefined, bearer(a))).status).toBe(200);
    expect((await call('GET', '/jobs', undefined, bearer(b))).status).toBe(200);
    expect((await call('GET', '/jobs', undefined, bearer(a))).status).toBe(200);
    expect((await call('GET', '/jobs', undefined, bearer(b))).status).toBe(429);
    expect((await call('GET', '/jobs', undefined, bearer(await key('other-t')))).status).toBe(200);
  });

  it('holds across API processes: a second one refuses once the first has used the budget', async () => {
    const one = api(createApp({ spool: db.spool, logger: quiet, keyRateLimit: { limit: 6, windowMs: HOUR } }));
    const two = api(createApp({ spool: db.spool, logger: quiet, keyRateLimit: { limit: 6, windowMs: HOUR } }));
    const shared = await key();
    const id = (await db.spool.keys.verify(shared))!.id;
    for (let i = 0; i < 4; i++) expect((await one('GET', '/queues', undefined, bearer(shared))).status).toBe(200);
    expect(await sharedCount(`key:${id}`, 4)).toBe(4);
    // The second process learns the first's count at its own first sync: admit, sync, then the rest.
    expect((await two('GET', '/queues', undefined, bearer(shared))).status).toBe(200);
    expect(await sharedCount(`key:${id}`, 5)).toBe(5);
    await new Promise((resolve) => setTimeout(resolve, 250));
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await two('GET', '/queues', undefined, bearer(shared))).status);
    expect(statuses).toEqual([200, 429, 429]);
  });

  it('a new window has room again', async () => {
    const fast = api(createApp({ spool: db.spool, logger: quiet, keyRateLimit: { limit: 2, windowMs: 1000 } }));
    const k = await key();
    // Start just after a window begins, so the first requests share one.
    await new Promise((resolve) => setTimeout(resolve, 1000 - (Date.now() % 1000) + 5));
    let res = await fast('GET', '/queues', undefined, bearer(k));
    for (let i = 0; i < 3 && res.status === 200; i++) res = await fast('GET', '/queues', undefined, bearer(k));
    expect(res.status).toBe(429);
    await new Promise((resolve) => setTimeout(resolve, Number(res.headers.get('retry-after')) * 1000 + 50));
    expect((await fast('GET', '/queues', undefined, bearer(k))).status).toBe(200);
  });

  it('no budget is kept with auth off, or when set to none', async () => {
    const open = api(createApp({ spool: db.spool, logger: quiet, auth: 'off', keyRateLimit: { limit: 1, windowMs: HOUR } }));
    for (let i = 0; i < 5; i++) expect((await open('GET', '/queues')).status).toBe(200);
    const unlimited = api(createApp({ spool: db.spool, logger: quiet, keyRateLimit: null }));
    const k = await key();
    for (let i = 0; i < 8; i++) expect((await unlimited('GET', '/queues', undefined, bearer(k))).status).toBe(200);
  });
});
