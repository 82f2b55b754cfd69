import { randomUUID } from 'node:crypto';
import { Hono, type Context } from 'hono';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, propagation, trace } from '@opentelemetry/api';
import { tracingEnabled } from '../observability/tracing.js';
import type { z } from 'zod';
import type { Spool } from '../client.js';
import { BATCH_MAX_DEFAULT, BODY_LIMIT_BYTES_DEFAULT, KEY_RATE_LIMIT_DEFAULT } from '../config.js';
import { ValidationError, toFieldIssues } from '../errors.js';
import { createLogger, type Logger } from '../observability/logger.js';
import { EnqueueCoalescer } from './enqueue-coalescer.js';
import { ApiProblem, problemFor } from './problems.js';
import { registerDeadRoutes } from './routes/dead.js';
import { registerDocsRoutes } from './routes/docs.js';
import { registerHealthRoutes } from './routes/health.js';
import { registerJobRoutes } from './routes/jobs.js';
import { registerQueueRoutes } from './routes/queues.js';
import { registerKindRoutes } from './routes/kinds.js';
import { registerMaintenanceRoutes } from './routes/maintenance.js';
import { registerFlowRoutes } from './routes/flow.js';
import { registerKeyRoutes } from './routes/keys.js';
import { registerAuditRoutes } from './routes/audit.js';
import { registerEventRoutes } from './routes/events.js';
import { registerWebhookRoutes } from './routes/webhooks.js';
import { SUBSCRIBER_BUFFER_DEFAULT } from '../events/hub.js';
import { registerAudit } from './audit.js';
import { RequestBudget, type RequestRate } from './request-budget.js';
import { registerAccessChecks, type AuthMode } from './access.js';
import { defaultAllowedHosts, registerWebSafety } from './web-safety.js';
import type { ApiKey } from '../auth/keys.js';
import { KindCatalog, type UnknownKinds } from '../kinds/catalog.js';
import { postgresExecutor } from '../db/executor.js';
import { LIST_BYTES_DEFAULT } from '../queries/list.js';

/** What the API needs from the process it runs in. */
export interface ApiOptions {
  spool: Spool;
  logger?: Logger;
  /** Most jobs in one POST /jobs/batch (1,000). */
  batchMax?: number;
  /** Largest request body in bytes (1 MiB); more is 413. */
  bodyLimitBytes?: number;
  /** Most bytes of jobs in one GET /jobs or /dead page (4 MiB): the page ends early with truncated: true. */
  pageMaxBytes?: number;
  /**
   * Whether this process's LISTEN connection is up, for /readyz; omit when
   * the process runs no workers (`spool api`), and the check is skipped.
   */
  listenerConnected?: () => boolean;
  /**
   * An enqueue of a kind that is not in the registry: refused with 400
   * naming the known kinds (`reject`, the default), or accepted (`allow`:
   * for producers deployed before their workers). Either way a payload of a
   * registered kind is checked against its schema.
   */
  unknownKinds?: UnknownKinds;
  /**
   * `keys` (the default): every route but /healthz and /readyz needs an API
   * key whose role allows it (docs/security.md). `off`: no key is asked for.
   */
  auth?: AuthMode;
  /** Open GET /docs and /openapi.json without a key (they hold no data). */
  docsPublic?: boolean;
  /** Host names the API answers to (the Host header), `*` for any; default: loopback names only. */
  allowedHosts?: string[];
  /** Browser origins allowed to call the API (CORS); none by default. */
  corsOrigins?: string[];
  /** Requests per API key and window, across API processes (ADR 0008): 10,000 per second by default; null for none. */
  keyRateLimit?: RequestRate | null;
  /** Requests per tenant (all its keys) and window; none by default. */
  tenantRateLimit?: RequestRate | null;
  /** Largest payload (JSON bytes) a tenant-bound key may enqueue; default: the global 1 MiB. */
  tenantPayloadMaxBytes?: number;
  /** Events a GET /events subscriber may fall behind by before it is dropped (10,000). */
  eventBufferMax?: number;
}

export type ApiEnv = {
  Variables: {
    requestId: string;
    log: Logger;
    bodyLimitBytes: number;
    apiKey: ApiKey | undefined;
    accessChecked: boolean;
    auditDetails: Record<string, unknown> | undefined;
  };
};

/** Everything a route handler needs. */
export interface ApiContext {
  spool: Spool;
  coalescer: EnqueueCoalescer;
  batchMax: number;
  listenerConnected?: () => boolean;
  kinds: KindCatalog;
  unknownKinds: UnknownKinds;
  pageMaxBytes: number;
  tenantPayloadMaxBytes: number | undefined;
  eventBufferMax: number;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The matched route template (`/jobs/:id`), or `unmatched` for a 404 (raw paths would be unbounded labels). */
function routeOf(c: Context<ApiEnv>): string {
  const path = c.req.routePath;
  return !path || path === '/*' || path === '*' ? 'unmatched' : path;
}

/**
 * Runs the request inside an OpenTelemetry SERVER span, continuing the
 * caller's trace from its `traceparent` header; jobs enqueued by the
 * request store that span as their parent. Nothing when tracing is off.
 */
async function withServerSpan(c: Context<ApiEnv>, next: () => Promise<void>): Promise<void> {
  if (!tracingEnabled()) return next();
  const parent = propagation.extract(ROOT_CONTEXT, c.req.raw.headers, headerGetter);
  const span = trace.getTracer('spool').startSpan(
    `${c.req.method}`,
    { kind: SpanKind.SERVER, attributes: { 'http.request.method': c.req.method, 'url.path': c.req.path } },
    parent,
  );
  try {
    await context.with(trace.setSpan(parent, span), next);
  } finally {
    const route = routeOf(c);
    span.updateName(`${c.req.method} ${route}`);
    span.setAttribute('http.route', route);
    span.setAttribute('http.response.status_code', c.res.status);
    if (c.res.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
    span.end();
  }
}

const headerGetter = {
  keys: (carrier: Headers) => [...carrier.keys()],
  get: (carrier: Headers, key: string) => carrier.get(key) ?? undefined,
};

/**
 * The HTTP API (Hono): JSON in and out, every body and query validated with
 * the zod schemas of ./schemas.ts (which also make GET /openapi.json).
 * Errors are `{ error: { code, message, details, requestId } }`; never a
 * stack or SQL text. Serve it with `startApiServer`, or call `app.request()`.
 */
export function createApp(options: ApiOptions): Hono<ApiEnv> {
  const log = options.logger ?? createLogger();
  // One executor over the Spool's pool for the API's own statements (kind checks, request budgets).
  const executor = postgresExecutor(options.spool.sql, true);
  const ctx: ApiContext = {
    spool: options.spool,
    coalescer: new EnqueueCoalescer(options.spool),
    batchMax: options.batchMax ?? BATCH_MAX_DEFAULT,
    listenerConnected: options.listenerConnected,
    kinds: new KindCatalog(executor, options.spool.quotedSchema),
    unknownKinds: options.unknownKinds ?? 'reject',
    pageMaxBytes: options.pageMaxBytes ?? LIST_BYTES_DEFAULT,
    tenantPayloadMaxBytes: options.tenantPayloadMaxBytes,
    eventBufferMax: options.eventBufferMax ?? SUBSCRIBER_BUFFER_DEFAULT,
  };
  const app = new Hono<ApiEnv>();
  const bodyLimitBytes = options.bodyLimitBytes ?? BODY_LIMIT_BYTES_DEFAULT;

  // GET /metrics and the request counts: the Spool's metrics, if it has any.
  const metrics = options.spool.metrics;
  app.use(async (c, next) => {
    const started = performance.now();
    c.set('bodyLimitBytes', bodyLimitBytes);
    const given = c.req.header('x-request-id');
    const requestId = given && REQUEST_ID.test(given) ? given : randomUUID();
    c.set('requestId', requestId);
    const requestLog = log.child({ request_id: requestId });
    c.set('log', requestLog);
    c.header('X-Request-Id', requestId);
    await withServerSpan(c, next);
    const route = routeOf(c);
    const status = c.res.status;
    const seconds = (performance.now() - started) / 1000;
    if (metrics) {
      const labels = { method: c.req.method, route, status: String(status) };
      metrics.http.requests.inc(labels);
      metrics.http.seconds.observe(labels, seconds);
    }
    // Every request at debug; client errors at info, server errors at error (their cause is logged by onError).
    const level = status >= 500 ? 'error' : status >= 400 ? 'info' : 'debug';
    if (requestLog.isLevelEnabled(level)) {
      requestLog[level]({ method: c.req.method, route, status, duration_ms: Math.round(seconds * 1e6) / 1e3 }, 'request');
    }
  });

  registerWebSafety(app, { allowedHosts: options.allowedHosts ?? defaultAllowedHosts('127.0.0.1'), corsOrigins: options.corsOrigins ?? [] });
  registerAudit(app, options.spool.audit);
  const keyRate = options.keyRateLimit === undefined ? KEY_RATE_LIMIT_DEFAULT : options.keyRateLimit;
  const tenantRate = options.tenantRateLimit ?? null;
  const budget = keyRate || tenantRate
    ? new RequestBudget(executor, options.spool.quotedSchema, { key: keyRate ?? undefined, tenant: tenantRate ?? undefined }, log)
    : undefined;
  registerAccessChecks(app, { mode: options.auth ?? 'keys', keys: options.spool.keys, docsPublic: options.docsPublic, budget });
  if (metrics) {
    options.spool.startQueueGauges({ log });
    app.get('/metrics', async (c) => c.body(await metrics.text(), 200, { 'Content-Type': metrics.contentType }));
  }
  registerHealthRoutes(app, ctx);
  registerDocsRoutes(app);
  registerJobRoutes(app, ctx);
  registerQueueRoutes(app, ctx);
  registerDeadRoutes(app, ctx);
  registerKindRoutes(app, ctx);
  registerMaintenanceRoutes(app, ctx);
  registerFlowRoutes(app, ctx);
  registerKeyRoutes(app, ctx);
  registerAuditRoutes(app, ctx);
  registerEventRoutes(app, ctx);
  registerWebhookRoutes(app, ctx);

  const errorResponse = (error: unknown, c: Context<ApiEnv>) => {
    const { status, problem, unexpected, retryAfterSeconds } = problemFor(error);
    if (retryAfterSeconds !== undefined) c.header('Retry-After', String(retryAfterSeconds));
    const requestId = c.get('requestId') ?? randomUUID();
    if (unexpected) (c.get('log') ?? log).error({ err: error, method: c.req.method, path: c.req.path }, 'request failed');
    else if (status === 503) (c.get('log') ?? log).warn({ err: error, path: c.req.path }, 'database unavailable');
    return c.json({ error: { ...problem, requestId } }, status);
  };
  // Answered, not thrown: a throw from here would skip the request middleware's metrics and log line.
  app.notFound((c) => errorResponse(new ApiProblem(404, 'not_found', `no route ${c.req.method} ${c.req.path}: see GET /openapi.json`), c));
  app.onError(errorResponse);
  return app;
}

/**
 * The request's JSON body parsed with `schema`: 415 unless the body is
 * JSON, 400 for malformed JSON or a body that breaks the schema (every bad
 * field named).
 */
export async function jsonBody<S extends z.ZodType>(c: Context<ApiEnv>, schema: S): Promise<z.output<S>> {
  const type = c.req.header('content-type') ?? '';
  if (!/^application\/([a-z.+-]+\+)?json\b/i.test(type)) {
    throw new ApiProblem(415, 'unsupported_media_type', `send the body as JSON with Content-Type: application/json (got ${type ? JSON.stringify(type) : 'none'})`);
  }
  const text = await boundedText(c);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (error) {
    throw new ApiProblem(400, 'invalid_json', `the body is not valid JSON: ${(error as Error).message}`);
  }
  return parseWith(schema, body);
}

/**
 * The body as text, refused with 413 past the limit. With a Content-Length
 * (what clients send for JSON) it is checked before reading, and the body is
 * read straight from the socket: Hono's bodyLimit middleware reads it through
 * a web Request instead, which cost ~15 % of the API's CPU per POST /jobs
 * (profiled: undici Request and AbortSignal creation). A chunked body is
 * counted while it streams.
 */
async function boundedText(c: Context<ApiEnv>): Promise<string> {
  const limit = c.get('bodyLimitBytes');
  const tooLarge = () => new ApiProblem(413, 'payload_too_large', `the body is over ${limit} bytes: send fewer jobs per request`);
  const length = c.req.header('content-length');
  if (length !== undefined && c.req.header('transfer-encoding') === undefined) {
    if (Number(length) > limit) throw tooLarge();
    return c.req.text();
  }
  const reader = c.req.raw.body?.getReader();
  if (!reader) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > limit) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The query string parsed with `schema` (400 naming each bad parameter). */
export function queryOf<S extends z.ZodType>(c: Context<ApiEnv>, schema: S): z.output<S> {
  // A list parameter's bad item is the parameter's problem: "state", not "state.0".
  return parseWith(schema, c.req.query(), (path) => path.split('.')[0]!);
}

function parseWith<S extends z.ZodType>(schema: S, value: unknown, name = (path: string) => path): z.output<S> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    throw new ValidationError(toFieldIssues(parsed.error.issues, '').map((d) => ({ ...d, path: name(d.path) })));
  }
  return parsed.data;
}
