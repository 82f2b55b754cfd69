import { randomUUID } from 'node:crypto';
import { Hono, type Context } from 'hono';
import type { z } from 'zod';
import type { Spool } from '../client.js';
import { BATCH_MAX_DEFAULT, BODY_LIMIT_BYTES_DEFAULT } from '../config.js';
import { toFieldIssues } from '../errors.js';
import { createLogger, type Logger } from '../observability/logger.js';
import { EnqueueCoalescer } from './enqueue-coalescer.js';
import { ApiProblem, problemFor } from './problems.js';
import { registerDeadRoutes } from './routes/dead.js';
import { registerDocsRoutes } from './routes/docs.js';
import { registerHealthRoutes } from './routes/health.js';
import { registerJobRoutes } from './routes/jobs.js';
import { registerQueueRoutes } from './routes/queues.js';

/** What the API needs from the process it runs in. */
export interface ApiOptions {
  spool: Spool;
  logger?: Logger;
  /** Most jobs in one POST /jobs/batch (1,000). */
  batchMax?: number;
  /** Largest request body in bytes (1 MiB); more is 413. */
  bodyLimitBytes?: number;
  /**
   * Whether this process's LISTEN connection is up, for /readyz; omit when
   * the process runs no workers (`spool api`), and the check is skipped.
   */
  listenerConnected?: () => boolean;
}

export type ApiEnv = { Variables: { requestId: string; log: Logger; bodyLimitBytes: number } };

/** Everything a route handler needs. */
export interface ApiContext {
  spool: Spool;
  coalescer: EnqueueCoalescer;
  batchMax: number;
  listenerConnected?: () => boolean;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * The HTTP API (Hono): JSON in and out, every body and query validated with
 * the zod schemas of ./schemas.ts (which also make GET /openapi.json).
 * Errors are `{ error: { code, message, details, requestId } }`; never a
 * stack or SQL text. Serve it with `startApiServer`, or call `app.request()`.
 */
export function createApp(options: ApiOptions): Hono<ApiEnv> {
  const log = options.logger ?? createLogger();
  const ctx: ApiContext = {
    spool: options.spool,
    coalescer: new EnqueueCoalescer(options.spool),
    batchMax: options.batchMax ?? BATCH_MAX_DEFAULT,
    listenerConnected: options.listenerConnected,
  };
  const app = new Hono<ApiEnv>();
  const bodyLimitBytes = options.bodyLimitBytes ?? BODY_LIMIT_BYTES_DEFAULT;

  app.use(async (c, next) => {
    c.set('bodyLimitBytes', bodyLimitBytes);
    const given = c.req.header('x-request-id');
    const requestId = given && REQUEST_ID.test(given) ? given : randomUUID();
    c.set('requestId', requestId);
    c.set('log', log.child({ request_id: requestId }));
    c.header('X-Request-Id', requestId);
    await next();
  });

  registerHealthRoutes(app, ctx);
  registerDocsRoutes(app);
  registerJobRoutes(app, ctx);
  registerQueueRoutes(app, ctx);
  registerDeadRoutes(app, ctx);

  app.notFound((c) => {
    throw new ApiProblem(404, 'not_found', `no route ${c.req.method} ${c.req.path}: see GET /openapi.json`);
  });
  app.onError((error, c) => {
    const { status, problem, unexpected } = problemFor(error);
    const requestId = c.get('requestId') ?? randomUUID();
    if (unexpected) (c.get('log') ?? log).error({ err: error, method: c.req.method, path: c.req.path }, 'request failed');
    else if (status === 503) (c.get('log') ?? log).warn({ err: error, path: c.req.path }, 'database unavailable');
    return c.json({ error: { ...problem, requestId } }, status);
  });
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
    const details = toFieldIssues(parsed.error.issues, '').map((d) => ({ ...d, path: name(d.path) }));
    throw new ApiProblem(400, 'invalid_input', details.map((d) => (d.path ? `${d.path}: ${d.message}` : d.message)).join('; '), details);
  }
  return parsed.data;
}
