import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, createLogger, type Role } from '../../src/index.js';
import { ROUTE_ACCESS, TENANT_ROUTES } from '../../src/api/access.js';
import { api, type ApiCall } from '../support/api.js';
import { useTestDatabase } from '../support/database.js';

const db = useTestDatabase();
let call: ApiCall;
type Who = 'admin' | 'aProducer' | 'aOperator' | 'bProducer' | 'bOperator' | 'bReader';
const keys = {} as Record<Who, string>;
const as = (who: Who) => ({ authorization: `Bearer ${keys[who]}` });

const ids = (body: { jobs: { id: string }[] }) => body.jobs.map((j) => j.id);

async function deadJob(tenant: string | undefined, queue: string): Promise<string> {
  const { id } = await db.spool.enqueue('tenant.work', { who: tenant ?? 'none' }, { queue, tenant, tags: ['t'] });
  await db.sql`UPDATE spool.jobs SET state = 'running', attempt = 1, worker_id = 'w', lease_expires_at = now() + interval '1 minute', started_at = now() WHERE id = ${id}`;
  await db.sql`WITH gone AS (DELETE FROM spool.jobs WHERE id = ${id} RETURNING *)
    INSERT INTO spool.job_history SELECT id, queue, kind, payload, 'dead', priority, run_at, attempt, max_attempts, timeout_ms, NULL, NULL,
      unique_key, tags, result, '[{"attempt":1,"at":"x","message":"boom"}]'::jsonb, progress, metadata, created_at, started_at, now(), cancel_requested_at, group_key, tenant FROM gone`;
  return id;
}

beforeAll(async () => {
  call = api(createApp({ spool: db.spool, logger: createLogger({ level: 'silent' }), unknownKinds: 'allow' }));
  const make = async (who: Who, role: Role, tenant?: string) => (keys[who] = (await db.spool.keys.create({ role, tenant, name: who })).key);
  await make('admin', 'admin');
  await make('aProducer', 'producer', 'tenant-a');
  await make('aOperator', 'operator', 'tenant-a');
  await make('bProducer', 'producer', 'tenant-b');
  await make('bOperator', 'operator', 'tenant-b');
  await make('bReader', 'reader', 'tenant-b');
});

describe('tenants over the API', () => {
  it('a tenant key enqueues into its tenant, which comes from the key and never from the body', async () => {
    const res = await call('POST', '/jobs', { kind: 'tenant.work', queue: 'shared' }, as('aProducer'));
    expect(res.status).toBe(201);
    expect(res.body.job.tenant).toBe('tenant-a');
    const forged = await call('POST', '/jobs', { kind: 'tenant.work', tenant: 'tenant-b' }, as('aProducer'));
    expect(forged.status).toBe(400);
    expect(forged.body.error.details.map((d: { path: string }) => d.path)).toContain('tenant');
    const batch = await call('POST', '/jobs/batch', { jobs: [{ kind: 'tenant.work', queue: 'shared' }, { kind: 'tenant.work', queue: 'b-only' }] }, as('bProducer'));
    expect(batch.status).toBe(201);
    const rows = await db.sql`SELECT DISTINCT tenant FROM spool.jobs WHERE id = ANY(${batch.body.ids}::bigint[])`;
    expect(rows.map((r) => r.tenant)).toEqual(['tenant-b']);
    const none = await call('POST', '/jobs', { kind: 'tenant.work' }, as('admin'));
    expect(none.body.job.tenant).toBeNull();
  });

  it('tenant B cannot see, list, cancel or retry tenant A\'s jobs: 404, as if they did not exist, through every filter', async () => {
    const a = (await call('POST', '/jobs', { kind: 'tenant.work', queue: 'shared', tags: ['t'] }, as('aProducer'))).body.job.id as string;
    const b = (await call('POST', '/jobs', { kind: 'tenant.work', queue: 'shared', tags: ['t'] }, as('bProducer'))).body.job.id as string;

    expect((await call('GET', `/jobs/${a}`, undefined, as('bReader'))).status).toBe(404);
    expect((await call('GET', `/jobs/${b}`, undefined, as('bReader'))).status).toBe(200);
    for (const query of ['', '?queue=shared', '?kind=tenant.work', '?state=available', '?tag=t', '?order=asc&limit=1000']) {
      const page = await call('GET', `/jobs${query}`, undefined, as('bReader'));
      expect(page.status, query).toBe(200);
      expect(ids(page.body), query).toContain(b);
      expect(ids(page.body), query).not.toContain(a);
      expect(page.body.jobs.every((j: { tenant: string }) => j.tenant === 'tenant-b'), query).toBe(true);
    }
    // A cursor made by another tenant's page leads to B's jobs only.
    const aPage = await call('GET', '/jobs?limit=1', undefined, as('aOperator'));
    if (aPage.body.nextCursor) {
      const next = await call('GET', `/jobs?limit=1000&cursor=${aPage.body.nextCursor}`, undefined, as('bReader'));
      expect(next.body.jobs.every((j: { tenant: string }) => j.tenant === 'tenant-b')).toBe(true);
    }

    const cancel = await call('DELETE', `/jobs/${a}`, undefined, as('bOperator'));
    expect(cancel.status).toBe(404);
    expect((await db.spool.getJob(a))!.state).toBe('available');
    expect((await call('DELETE', `/jobs/${b}`, undefined, as('bOperator'))).status).toBe(200);

    const aDead = await deadJob('tenant-a', 'shared');
    expect((await call('POST', `/jobs/${aDead}/retry`, undefined, as('bOperator'))).status).toBe(404);
    expect((await db.spool.getJob(aDead))!.state).toBe('dead');
    expect((await call('POST', `/jobs/${aDead}/retry`, undefined, as('aOperator'))).status).toBe(200);

    // The admin key, bound to no tenant, sees both.
    expect((await call('GET', `/jobs/${a}`, undefined, as('admin'))).status).toBe(200);
  });

  it('replay and purge of dead jobs touch only the tenant\'s own, by ids, filter or all', async () => {
    const aDead = await deadJob('tenant-a', 'dlq');
    const bDead = await deadJob('tenant-b', 'dlq');
    const dead = await call('GET', '/dead?limit=1000', undefined, as('bReader'));
    expect(ids(dead.body)).toContain(bDead);
    expect(ids(dead.body)).not.toContain(aDead);

    const byIds = await call('POST', '/dead/replay', { ids: [aDead] }, as('bOperator'));
    expect(byIds.body).toEqual({ replayed: 0, ids: [] });
    const byFilter = await call('POST', '/dead/replay', { queue: 'dlq' }, as('bOperator'));
    expect(byFilter.body.ids).toEqual([bDead]);
    expect((await db.spool.getJob(aDead))!.state).toBe('dead');

    const bDead2 = await deadJob('tenant-b', 'dlq');
    const purged = await call('DELETE', '/dead?all=true', undefined, as('bOperator'));
    expect(purged.body.deleted).toBeGreaterThanOrEqual(1);
    expect(await db.spool.getJob(bDead2)).toBeNull();
    expect((await db.spool.getJob(aDead))!.state).toBe('dead');
    expect((await call('DELETE', `/dead?ids=${aDead}`, undefined, as('bOperator'))).body.deleted).toBe(0);
    expect((await db.spool.getJob(aDead))!.state).toBe('dead');
  });

  it('GET /queues counts only the tenant\'s own jobs, in its own queues', async () => {
    await db.spool.enqueue('tenant.work', {}, { queue: 'a-only', tenant: 'tenant-a' });
    const b = await call('GET', '/queues', undefined, as('bReader'));
    const names = b.body.queues.map((q: { queue: string }) => q.queue);
    expect(names).toContain('b-only');
    expect(names).not.toContain('a-only');
    const [{ n }] = (await db.sql`SELECT count(*)::int AS n FROM spool.all_jobs WHERE queue = 'shared' AND tenant = 'tenant-b' AND state = 'available'`) as unknown as [{ n: number }];
    expect(b.body.queues.find((q: { queue: string }) => q.queue === 'shared').counts.available).toBe(n);
    expect((await call('GET', '/queues', undefined, as('admin'))).body.queues.map((q: { queue: string }) => q.queue)).toContain('a-only');
  });

  it('a tenant key is refused (403) on every route that acts on what tenants share', async () => {
    for (const route of Object.keys(ROUTE_ACCESS)) {
      if (TENANT_ROUTES.has(route) || route === 'GET /metrics') continue;
      const [method, template] = route.split(' ') as [string, string];
      const path = template.replace(':queue', 'shared').replace(':scope', 'queue').replace(':name', 'n').replace(':id', '1');
      const res = await call(method, path, method === 'GET' || method === 'DELETE' ? undefined : {}, as('bOperator'));
      expect([403], `${route}: ${JSON.stringify(res.body)}`).toContain(res.status);
    }
    const pause = await call('POST', '/queues/shared/pause', {}, as('bOperator'));
    expect(pause.body.error.message).toMatch(/bound to a tenant/);
  });

  it('unique keys are per tenant: the same Idempotency-Key in two tenants makes two jobs, and one per tenant', async () => {
    const headers = (who: Who) => ({ ...as(who), 'idempotency-key': 'order-1' });
    const a1 = await call('POST', '/jobs', { kind: 'tenant.work' }, headers('aProducer'));
    const b1 = await call('POST', '/jobs', { kind: 'tenant.work' }, headers('bProducer'));
    const b2 = await call('POST', '/jobs', { kind: 'tenant.work' }, headers('bProducer'));
    expect([a1.status, b1.status, b2.status]).toEqual([201, 201, 200]);
    expect(a1.body.job.id).not.toBe(b1.body.job.id);
    expect(b2.body).toMatchObject({ duplicate: true, job: { id: b1.body.job.id } });
  });

  it('a tenant operator\'s actions are audited with its tenant', async () => {
    const { id } = await db.spool.enqueue('tenant.work', {}, { tenant: 'tenant-b' });
    await call('DELETE', `/jobs/${id}`, undefined, { ...as('bOperator'), 'x-request-id': 'tenant-audit' });
    const [row] = await db.sql`SELECT tenant, action, result FROM spool.audit_log WHERE request_id = 'tenant-audit'`;
    expect(row).toEqual({ tenant: 'tenant-b', action: 'job.cancel', result: 'ok' });
  });
});

describe('per-tenant payload cap', () => {
  it('a tenant key may enqueue payloads up to SPOOL_TENANT_PAYLOAD_MAX_BYTES; a key without a tenant keeps the global cap', async () => {
    const capped = api(createApp({ spool: db.spool, logger: createLogger({ level: 'silent' }), unknownKinds: 'allow', tenantPayloadMaxBytes: 100 }));
    const small = await capped('POST', '/jobs', { kind: 'tenant.work', payload: { s: 'x'.repeat(50) } }, as('aProducer'));
    expect(small.status).toBe(201);
    const big = await capped('POST', '/jobs/batch', { jobs: [{ kind: 'tenant.work' }, { kind: 'tenant.work', payload: { s: 'x'.repeat(200) } }] }, as('aProducer'));
    expect(big.status).toBe(400);
    expect(big.body.error.details).toEqual([expect.objectContaining({ path: 'jobs.1.payload', message: expect.stringMatching(/at most 100/) })]);
    expect((await capped('POST', '/jobs', { kind: 'tenant.work', payload: { s: 'x'.repeat(200) } }, as('admin'))).status).toBe(201);
  });
});

describe('row-level security (sql/0011)', () => {
  let asRole: postgres.Sql;
  beforeAll(() => {
    asRole = postgres(db.url, { max: 1, onnotice: () => {} });
  });
  afterAll(async () => {
    await asRole.end();
  });

  async function visible(tenant: string | null, table: string): Promise<string[]> {
    return asRole.begin(async (tx) => {
      await tx.unsafe('SET LOCAL ROLE spool_tenant');
      if (tenant !== null) await tx`SELECT set_config('spool.tenant', ${tenant}, true)`;
      // No WHERE on the tenant: the policy alone decides.
      const rows = await tx.unsafe(`SELECT DISTINCT tenant FROM spool.${table} WHERE tenant IS NOT NULL ORDER BY 1`);
      return rows.map((r) => r.tenant as string);
    }) as Promise<string[]>;
  }

  it('a direct SQL read with another tenant\'s setting sees none of A\'s rows, in the tables and through the views', async () => {
    await deadJob('tenant-a', 'rls');
    await db.spool.enqueue('tenant.work', {}, { tenant: 'tenant-a' });
    await db.spool.enqueue('tenant.work', {}, { tenant: 'tenant-b' });
    for (const table of ['jobs', 'job_history', 'all_jobs', 'dead_jobs']) {
      expect(await visible('tenant-b', table), table).not.toContain('tenant-a');
      expect(await visible('tenant-a', table), table).toContain('tenant-a');
    }
    expect(await visible('tenant-b', 'jobs')).toEqual(['tenant-b']);
  });

  it('nor can it change them, or write a row for another tenant', async () => {
    const { id } = await db.spool.enqueue('tenant.work', {}, { tenant: 'tenant-a', queue: 'rls-write' });
    const changed = await asRole.begin(async (tx) => {
      await tx.unsafe('SET LOCAL ROLE spool_tenant');
      await tx`SELECT set_config('spool.tenant', 'tenant-b', true)`;
      return tx`DELETE FROM spool.jobs WHERE id = ${id} RETURNING id`;
    });
    expect(changed).toHaveLength(0);
    expect(await db.spool.getJob(id)).not.toBeNull();
    const insert = await asRole.begin(async (tx) => {
      await tx.unsafe('SET LOCAL ROLE spool_tenant');
      await tx`SELECT set_config('spool.tenant', 'tenant-b', true)`;
      return tx`INSERT INTO spool.jobs (kind, tenant) VALUES ('x', 'tenant-a')`;
    }).catch((e: Error) => e);
    expect((insert as Error).message).toMatch(/row-level security/);
  });

  it('the API\'s tenant transactions run as spool_tenant with the tenant set', async () => {
    expect(await db.spool.tenantRoleAvailable()).toBe(true);
    const [row] = await db.spool.asTenant('tenant-b', (tx) => tx`SELECT current_user AS who, current_setting('spool.tenant') AS tenant`);
    expect(row).toEqual({ who: 'spool_tenant', tenant: 'tenant-b' });
  });
});
