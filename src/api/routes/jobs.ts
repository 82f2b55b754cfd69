import type { Context, Hono } from 'hono';
import type { EnqueueItem } from '../../client.js';
import { jsonBody, queryOf, type ApiContext, type ApiEnv } from '../app.js';
import { ApiProblem } from '../problems.js';
import { enqueueBatchBody, enqueueBody, listQuery, waitQuery } from '../schemas.js';
import { uniqueKeySchema } from '../../job-fields.js';
import { JobNotFoundError, ValidationError, issuesOf } from '../../errors.js';
import type { KindCheck } from '../../kinds/catalog.js';
import { requestTenant, scoped } from '../tenancy.js';

/** Refuses jobs of unknown kinds (unless allowed) and payloads their kind's registered schema refuses: 400, each field named. */
async function checkKinds(ctx: ApiContext, jobs: KindCheck[]): Promise<void> {
  const issues = await ctx.kinds.check(jobs, ctx.unknownKinds);
  if (issues.length > 0) throw new ValidationError(issues);
}

/** A tenant key's payloads within SPOOL_TENANT_PAYLOAD_MAX_BYTES (when set): 400 naming each one over it. */
function checkTenantPayloads(c: Context<ApiEnv>, ctx: ApiContext, jobs: { payload: unknown; at: string }[]): void {
  const max = ctx.tenantPayloadMaxBytes;
  if (max === undefined || requestTenant(c) === undefined) return;
  const issues = jobs.flatMap(({ payload, at }) => {
    const bytes = Buffer.byteLength(JSON.stringify(payload ?? {}));
    return bytes > max ? [{ path: `${at}payload`, message: `is ${bytes} bytes as JSON; a tenant's jobs may carry at most ${max} (SPOOL_TENANT_PAYLOAD_MAX_BYTES)` }] : [];
  });
  if (issues.length > 0) throw new ValidationError(issues);
}

/** The job's metadata with the id of the request that enqueued it, so its attempts' log lines carry it (a caller's own request_id wins). */
function withRequestId(metadata: Record<string, unknown> | undefined, requestId: string): Record<string, unknown> {
  return metadata?.request_id === undefined ? { ...metadata, request_id: requestId } : metadata;
}

/** POST /jobs, POST /jobs/batch, GET /jobs, GET /jobs/:id, DELETE /jobs/:id, POST /jobs/:id/retry. */
export function registerJobRoutes(app: Hono<ApiEnv>, ctx: ApiContext): void {
  app.post('/jobs', async (c) => {
    const { wait } = queryOf(c, waitQuery);
    const { kind, payload, ...options } = await jsonBody(c, enqueueBody);
    const idempotencyKey = c.req.header('idempotency-key');
    if (idempotencyKey !== undefined) {
      if (options.uniqueKey !== undefined && options.uniqueKey !== idempotencyKey) {
        throw new ApiProblem(400, 'invalid_input', 'Idempotency-Key and uniqueKey differ: give one of them', [
          { path: 'uniqueKey', message: 'differs from the Idempotency-Key header' },
        ]);
      }
      const issues = issuesOf(uniqueKeySchema, idempotencyKey, 'Idempotency-Key');
      if (issues.length > 0) throw new ValidationError(issues);
      options.uniqueKey = idempotencyKey;
    }
    checkTenantPayloads(c, ctx, [{ payload, at: '' }]);
    await checkKinds(ctx, [{ kind, payload, at: '' }]);
    const metadata = withRequestId(options.metadata, c.get('requestId'));
    const tenant = requestTenant(c);
    const { job, duplicate } = await ctx.coalescer.enqueue({ job: kind, payload, ...options, metadata, tenant } as EnqueueItem);
    if (wait === undefined) return c.json({ job, duplicate }, duplicate ? 200 : 201);
    // Waiting holds no connection: the wait is on this process's one LISTEN.
    const waited = await ctx.spool.waitFor(job.id, { timeoutMs: wait, tenant, signal: c.req.raw.signal });
    return c.json({ job: waited.job, duplicate, timedOut: waited.timedOut }, duplicate ? 200 : 201);
  });

  app.post('/jobs/batch', async (c) => {
    const { jobs } = await jsonBody(c, enqueueBatchBody);
    if (jobs.length > ctx.batchMax) {
      throw new ApiProblem(400, 'invalid_input', `jobs: at most ${ctx.batchMax} per batch (got ${jobs.length}); split it or raise SPOOL_BATCH_MAX`, [
        { path: 'jobs', message: `at most ${ctx.batchMax} jobs per batch` },
      ]);
    }
    checkTenantPayloads(c, ctx, jobs.map(({ payload }, index) => ({ payload, at: `jobs.${index}.` })));
    await checkKinds(ctx, jobs.map(({ kind, payload }, index) => ({ kind, payload, at: `jobs.${index}.` })));
    const requestId = c.get('requestId');
    const tenant = requestTenant(c);
    const items = jobs.map(
      ({ kind, payload, ...options }) => ({ job: kind, payload, ...options, metadata: withRequestId(options.metadata, requestId), tenant }) as EnqueueItem,
    );
    const results = await ctx.spool.enqueueMany(items);
    return c.json({ ids: results.map((r) => r.id), duplicate: results.map((r) => r.duplicate) }, 201);
  });

  app.get('/jobs', async (c) => {
    const q = queryOf(c, listQuery);
    return c.json(await scoped(c, ctx, ({ tx, tenant }) => ctx.spool.listJobs({ ...q, tenant, maxBytes: ctx.pageMaxBytes }, { tx })));
  });

  app.get('/jobs/:id', async (c) => {
    const { wait } = queryOf(c, waitQuery);
    const job = await scoped(c, ctx, (scope) => ctx.spool.getJob(c.req.param('id'), scope));
    if (!job) throw new JobNotFoundError(c.req.param('id'));
    if (wait === undefined) return c.json({ job });
    const waited = await ctx.spool.waitFor(job.id, { timeoutMs: wait, tenant: requestTenant(c), signal: c.req.raw.signal });
    return c.json({ job: waited.job, timedOut: waited.timedOut });
  });

  app.delete('/jobs/:id', async (c) => c.json({ job: await scoped(c, ctx, (scope) => ctx.spool.cancelJob(c.req.param('id'), scope)) }));

  app.post('/jobs/:id/retry', async (c) => c.json({ job: await scoped(c, ctx, (scope) => ctx.spool.retryJob(c.req.param('id'), scope)) }));
}
