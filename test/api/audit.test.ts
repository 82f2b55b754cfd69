import { beforeAll, describe, expect, it } from 'vitest';
import { createApp, createLogger, type Role } from '../../src/index.js';
import { ROUTE_ACCESS } from '../../src/api/access.js';
import { AUDITED_ROUTES } from '../../src/api/audit.js';
import { api, secretOf, type ApiCall } from '../support/api.js';
import { useTestDatabase } from '../support/database.js';

const db = useTestDatabase();
let call: ApiCall;
const keys = {} as Record<Role, { key: string; id: string; name: string }>;
const as = (role: Role, requestId?: string) => ({ authorization: `Bearer ${keys[role].key}`, ...(requestId ? { 'x-request-id': requestId } : {}) });

beforeAll(async () => {
  call = api(createApp({ spool: db.spool, logger: createLogger({ level: 'silent' }), unknownKinds: 'allow' }));
  for (const role of ['admin', 'operator', 'producer', 'reader'] as const) {
    const created = await db.spool.keys.create({ role, name: `${role} of the audit test` });
    keys[role] = { key: created.key, id: created.apiKey.id, name: created.apiKey.name };
  }
});

async function rowsFor(requestId: string) {
  return db.sql`SELECT key_id::text, key_name, role, action, target, result, status, request_id, details FROM spool.audit_log WHERE request_id = ${requestId}`;
}

describe('the audit log', () => {
  it('covers every state-changing route an operator or admin key is needed for, and no other', () => {
    const changing = Object.entries(ROUTE_ACCESS)
      .filter(([route, access]) => (access === 'operate' || access === 'admin') && !route.startsWith('GET '))
      .map(([route]) => route)
      .sort();
    expect(Object.keys(AUDITED_ROUTES).sort()).toEqual(changing);
  });

  it('a cancel writes who, what, on what, the outcome and the request id; never the key itself', async () => {
    const { id } = await db.spool.enqueue('audited', {});
    const res = await call('DELETE', `/jobs/${id}`, undefined, as('operator', 'req-audit-cancel'));
    expect(res.status).toBe(200);
    const rows = await rowsFor('req-audit-cancel');
    expect(rows).toEqual([
      expect.objectContaining({ key_id: keys.operator.id, key_name: keys.operator.name, role: 'operator', action: 'job.cancel', target: id, result: 'ok', status: 200 }),
    ]);
    const all = await db.sql`SELECT row_to_json(a)::text AS text FROM spool.audit_log a`;
    for (const key of Object.values(keys)) expect(all.map((r) => r.text).join('')).not.toContain(secretOf(key.key));
  });

  it('a refused action (403) is written as refused with the key that tried; a request without a key is not written', async () => {
    expect((await call('POST', '/queues/q1/pause', {}, as('reader', 'req-audit-refused'))).status).toBe(403);
    expect(await rowsFor('req-audit-refused')).toEqual([expect.objectContaining({ key_id: keys.reader.id, action: 'queue.pause', target: 'q1', result: 'refused', status: 403 })]);
    expect((await call('POST', '/queues/q1/pause', {}, { 'x-request-id': 'req-audit-nokey' })).status).toBe(401);
    expect(await rowsFor('req-audit-nokey')).toEqual([]);
  });

  it('a failed action is written as failed with its status', async () => {
    const { id } = await db.spool.enqueue('audited', {});
    await db.spool.cancelJob(id);
    expect((await call('DELETE', `/jobs/${id}`, undefined, as('operator', 'req-audit-failed'))).status).toBe(409);
    expect(await rowsFor('req-audit-failed')).toEqual([expect.objectContaining({ action: 'job.cancel', result: 'failed', status: 409 })]);
  });

  it('each admin action writes its row: pause, resume, replay, purge, schedules, limits, keys', async () => {
    const steps: [string, string, unknown, string][] = [
      ['POST', '/queues/q2/pause', {}, 'queue.pause'],
      ['POST', '/queues/q2/resume', {}, 'queue.resume'],
      ['POST', '/dead/replay', { queue: 'q2' }, 'dead.replay'],
      ['DELETE', '/dead?queue=q2', undefined, 'dead.purge'],
      ['PUT', '/schedules/nightly', { cron: '0 3 * * *', kind: 'audited' }, 'schedule.put'],
      ['POST', '/schedules/nightly/pause', {}, 'schedule.pause'],
      ['POST', '/schedules/nightly/resume', {}, 'schedule.resume'],
      ['POST', '/schedules/nightly/trigger', {}, 'schedule.trigger'],
      ['DELETE', '/schedules/nightly', undefined, 'schedule.remove'],
      ['PUT', '/limits/queue/q2', { concurrency: 3 }, 'limit.put'],
      ['DELETE', '/limits/queue/q2', undefined, 'limit.remove'],
      ['PUT', '/groups/acme', { weight: 2 }, 'group.put'],
      ['DELETE', '/groups/acme', undefined, 'group.remove'],
      ['POST', '/maintenance/prune', { dryRun: true }, 'maintenance.prune'],
    ];
    for (const [method, path, body, action] of steps) {
      const requestId = `req-${action}`;
      const res = await call(method, path, body, as('admin', requestId));
      expect(res.status, `${method} ${path}: ${JSON.stringify(res.body)}`).toBeLessThan(300);
      expect(await rowsFor(requestId), action).toEqual([expect.objectContaining({ action, result: 'ok', key_id: keys.admin.id })]);
    }
    const [purge] = await rowsFor('req-dead.purge');
    expect(purge!.details).toEqual({ selection: { queue: 'q2' }, deleted: 0 });

    const created = await call('POST', '/keys', { role: 'reader', name: 'made over HTTP' }, as('admin', 'req-key-create'));
    expect(created.status).toBe(201);
    const [row] = await rowsFor('req-key-create');
    expect(row).toMatchObject({ action: 'key.create', result: 'ok', details: { keyId: created.body.apiKey.id, role: 'reader' } });
    expect(JSON.stringify(row)).not.toContain(created.body.key);
    expect((await call('POST', `/keys/${created.body.apiKey.id}/rotate`, {}, as('admin', 'req-key-rotate'))).status).toBe(201);
    expect(await rowsFor('req-key-rotate')).toEqual([expect.objectContaining({ action: 'key.rotate', target: created.body.apiKey.id })]);
    expect((await call('DELETE', `/keys/${created.body.apiKey.id}`, undefined, as('admin', 'req-key-revoke'))).status).toBe(200);
    expect(await rowsFor('req-key-revoke')).toEqual([expect.objectContaining({ action: 'key.revoke' })]);
  });

  it('GET /audit is for admins: newest first, filtered by action prefix and time, paged', async () => {
    expect((await call('GET', '/audit', undefined, as('operator'))).status).toBe(403);
    const page = await call('GET', '/audit?action=schedule&limit=2', undefined, as('admin'));
    expect(page.status).toBe(200);
    expect(page.body.entries).toHaveLength(2);
    expect(page.body.entries.every((e: { action: string }) => e.action.startsWith('schedule.'))).toBe(true);
    expect(Number(page.body.entries[0].id)).toBeGreaterThan(Number(page.body.entries[1].id));
    const next = await call('GET', `/audit?action=schedule&limit=2&before=${page.body.nextBefore}`, undefined, as('admin'));
    expect(next.body.entries.map((e: { id: string }) => e.id)).not.toContain(page.body.entries[0].id);
    expect((await call('GET', '/audit?since=1h', undefined, as('admin'))).body.entries.length).toBeGreaterThan(10);
    expect((await call('GET', '/audit?since=2999-01-01T00:00:00Z', undefined, as('admin'))).body.entries).toEqual([]);
    const bad = await call('GET', '/audit?since=yesterday', undefined, as('admin'));
    expect(bad.status).toBe(400);
    expect(bad.body.error.details[0].path).toBe('since');
  });

  it('the pruner deletes rows past the audit retention and keeps the rest', async () => {
    await db.sql`INSERT INTO spool.audit_log (at, action, result) VALUES (now() - interval '91 days', 'job.cancel', 'ok')`;
    const [{ before }] = (await db.sql`SELECT count(*)::int AS before FROM spool.audit_log`) as unknown as [{ before: number }];
    const report = await db.spool.prune();
    expect(report.auditDeleted).toBe(1);
    const [{ after }] = (await db.sql`SELECT count(*)::int AS after FROM spool.audit_log`) as unknown as [{ after: number }];
    expect(after).toBe(before - 1);
  });
});
