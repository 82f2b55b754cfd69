import { z } from 'zod';
import { createWebhookSchema } from '../webhooks/store.js';
import { deliveriesQuery } from './routes/webhooks.js';
import {
  eventResponse,
  eventsQuery,
  waitQuery,
  deadListQuery,
  deadPurgeQuery,
  deadSelection,
  enqueueBatchBody,
  enqueueBody,
  enqueueBatchResponse,
  enqueueResponse,
  healthResponse,
  kindsResponse,
  pruneBody,
  pruneResponse,
  jobEnvelope,
  jobPageResponse,
  listQuery,
  problemResponse,
  purgeResponse,
  queuesResponse,
  queueStateResponse,
  readyResponse,
  replayResponse,
  groupsResponse,
  limitEnvelope,
  limitsQuery,
  limitsResponse,
  removedResponse,
  scheduleBody,
  scheduleEnvelope,
  schedulesResponse,
  triggerResponse,
  keysResponse,
  keyEnvelope,
  createdKeyResponse,
  keysQuery,
  auditQuery,
  auditResponse,
} from './schemas.js';
import { ROUTE_ACCESS } from './access.js';
import { createKeySchema } from '../auth/keys.js';
import { limitSettingsSchema } from '../flow/limits.js';

type Status = '200' | '201' | '400' | '401' | '403' | '404' | '409' | '413' | '415' | '429' | '503';

interface RouteDoc {
  summary: string;
  body?: z.ZodType;
  query?: z.ZodObject;
  path?: string[];
  headers?: Record<string, string>;
  ok: Partial<Record<Status, z.ZodType>>;
  /** Of the ok responses (application/json). */
  contentType?: string;
  errors: Status[];
}

const ERROR_TEXT: Record<string, string> = {
  '400': 'invalid input: every bad field is named in details',
  '401': 'no API key, or an unknown, revoked or expired one (Authorization: Bearer spool_…)',
  '403': 'the key\'s role does not allow this route, or a cross-site request',
  '404': 'no such job or route',
  '409': 'illegal transition (the job is not in a state this action starts from) or unique-key conflict',
  '413': 'body over the limit (SPOOL_BODY_LIMIT_BYTES, 1 MiB by default)',
  '415': 'the body is not JSON (Content-Type: application/json)',
  '429': 'the key or its tenant used its request budget (SPOOL_KEY_RATE_LIMIT); Retry-After says when to come back',
  '503': 'the database cannot be reached',
};

const ROUTES: Record<string, Record<string, RouteDoc>> = {
  '/jobs': {
    post: {
      summary: 'Enqueue one job. A unique-key (or Idempotency-Key) hit answers 200 with the existing job and duplicate: true. With ?wait=30s the answer waits until the job finishes (or the wait ends: timedOut true).',
      query: waitQuery,
      body: enqueueBody,
      headers: { 'Idempotency-Key': 'works as uniqueKey: one unfinished job per (queue, key)' },
      ok: { '201': enqueueResponse, '200': enqueueResponse },
      errors: ['400', '413', '415', '503'],
    },
    get: { summary: 'List jobs, newest first, a keyset page at a time.', query: listQuery, ok: { '200': jobPageResponse }, errors: ['400', '503'] },
  },
  '/jobs/batch': {
    post: {
      summary: 'Enqueue many jobs in one statement (at most SPOOL_BATCH_MAX, 1,000 by default).',
      body: enqueueBatchBody,
      ok: { '201': enqueueBatchResponse },
      errors: ['400', '413', '415', '503'],
    },
  },
  '/jobs/{id}': {
    get: {
      summary: 'One job. With ?wait=30s the answer waits until the job is completed, dead or cancelled (or the wait ends: timedOut true).',
      path: ['id'],
      query: waitQuery,
      ok: { '200': jobEnvelope },
      errors: ['400', '404', '503'],
    },
    delete: {
      summary: 'Cancel: a scheduled or available job is cancelled at once; a running one has its handler aborted, then ends cancelled.',
      path: ['id'],
      ok: { '200': jobEnvelope },
      errors: ['400', '404', '409', '503'],
    },
  },
  '/jobs/{id}/retry': {
    post: { summary: 'Run a dead, cancelled or completed job again.', path: ['id'], ok: { '200': jobEnvelope }, errors: ['400', '404', '409', '503'] },
  },
  '/maintenance/prune': {
    post: {
      summary: 'Keep history in shape now (the leader does it every minute): drop expired day partitions, delete other expired history in batches; dryRun reports only.',
      body: pruneBody,
      ok: { '200': pruneResponse },
      errors: ['400', '415', '503'],
    },
  },
  '/kinds': {
    get: {
      summary: 'The kind registry: each kind\'s defaults (applied to jobs enqueued by its name), payload JSON Schema, waiting jobs, live workers and when a worker last had it.',
      ok: { '200': kindsResponse },
      errors: ['503'],
    },
  },
  '/queues': {
    get: { summary: 'Per queue: jobs by state, the oldest available job\'s age, paused.', ok: { '200': queuesResponse }, errors: ['503'] },
  },
  '/queues/{queue}/pause': {
    post: { summary: 'No worker claims from this queue until it is resumed (running jobs finish).', path: ['queue'], ok: { '200': queueStateResponse }, errors: ['400', '503'] },
  },
  '/queues/{queue}/resume': {
    post: { summary: 'Workers claim from this queue again, woken at once.', path: ['queue'], ok: { '200': queueStateResponse }, errors: ['400', '503'] },
  },
  '/dead': {
    get: { summary: 'The dead-letter queue: dead jobs, newest first.', query: deadListQuery, ok: { '200': jobPageResponse }, errors: ['400', '503'] },
    delete: {
      summary: 'Purge dead jobs matching the query (all=true for every one); returns the count.',
      query: deadPurgeQuery,
      ok: { '200': purgeResponse },
      errors: ['400', '503'],
    },
  },
  '/dead/replay': {
    post: { summary: 'Replay dead jobs by ids or filter (all: true for every one).', body: deadSelection, ok: { '200': replayResponse }, errors: ['400', '415', '503'] },
  },
  '/schedules': {
    get: { summary: 'Every cron schedule with its next and last tick.', ok: { '200': schedulesResponse }, errors: ['503'] },
  },
  '/schedules/{name}': {
    get: { summary: 'One schedule and its next 5 ticks.', path: ['name'], ok: { '200': scheduleEnvelope }, errors: ['404', '503'] },
    put: {
      summary: 'Create or update a schedule (a changed cron or zone starts from the next tick after now; the paused state is kept unless given).',
      path: ['name'],
      body: scheduleBody,
      ok: { '200': scheduleEnvelope },
      errors: ['400', '415', '503'],
    },
    delete: { summary: 'Remove a schedule (its jobs stay).', path: ['name'], ok: { '200': removedResponse }, errors: ['404', '503'] },
  },
  '/schedules/{name}/pause': { post: { summary: 'No more ticks until resumed.', path: ['name'], ok: { '200': scheduleEnvelope }, errors: ['404', '503'] } },
  '/schedules/{name}/resume': { post: { summary: 'Tick again from the next tick after now (missed ticks are not caught up).', path: ['name'], ok: { '200': scheduleEnvelope }, errors: ['404', '503'] } },
  '/schedules/{name}/trigger': { post: { summary: 'Enqueue one job of the schedule now, outside its ticks.', path: ['name'], ok: { '201': triggerResponse }, errors: ['404', '503'] } },
  '/limits': {
    get: { summary: 'Flow limits: concurrency and rate per queue, kind or group; group weights; queue fairness.', query: limitsQuery, ok: { '200': limitsResponse }, errors: ['400', '503'] },
  },
  '/limits/{scope}/{name}': {
    put: {
      summary: 'Set a limiter (scope queue, kind or group), replacing its settings; every worker applies it at once.',
      path: ['scope', 'name'],
      body: limitSettingsSchema,
      ok: { '200': limitEnvelope },
      errors: ['400', '415', '503'],
    },
    delete: { summary: 'Remove a limiter.', path: ['scope', 'name'], ok: { '200': removedResponse }, errors: ['400', '503'] },
  },
  '/groups': {
    get: { summary: 'Per group: jobs waiting, scheduled and running, its weight and limits.', ok: { '200': groupsResponse }, errors: ['503'] },
  },
  '/groups/{name}': {
    put: { summary: 'Set a group\'s weight, concurrency and rate (as PUT /limits/group/{name}).', path: ['name'], body: limitSettingsSchema, ok: { '200': limitEnvelope }, errors: ['400', '415', '503'] },
    delete: { summary: 'Remove a group\'s weight and limits.', path: ['name'], ok: { '200': removedResponse }, errors: ['400', '503'] },
  },
  '/keys': {
    get: { summary: 'API keys (never their secrets), newest first.', query: keysQuery, ok: { '200': keysResponse }, errors: ['400', '503'] },
    post: { summary: 'Create a key; the answer holds the whole key, shown this once.', body: createKeySchema, ok: { '201': createdKeyResponse }, errors: ['400', '415', '503'] },
  },
  '/keys/{id}': { delete: { summary: 'Revoke a key (by id or prefix) at once (within 5 s on every API process).', path: ['id'], ok: { '200': keyEnvelope }, errors: ['400', '404', '503'] } },
  '/keys/{id}/rotate': { post: { summary: 'A new key with the same role and name; the old one is revoked.', path: ['id'], ok: { '201': createdKeyResponse }, errors: ['400', '404', '503'] } },
  '/audit': {
    get: { summary: 'The audit log, newest first: who (key id, name, role) changed what, when, from where, and how it ended.', query: auditQuery, ok: { '200': auditResponse }, errors: ['400', '503'] },
  },
  '/events': {
    get: {
      summary: 'Server-Sent Events: one per job change (enqueued, started, progress, retrying, released, completed, dead, cancelled) matching the filters; each has an id, and a client reconnecting with Last-Event-ID (or ?after=) gets every event after it, in order, within the events retention (1 day). A comment line every 15 s keeps proxies open; a subscriber too far behind gets event: dropped and the stream ends. docs/events.md',
      query: eventsQuery,
      headers: { 'Last-Event-ID': 'replay from just after this event id' },
      ok: { '200': eventResponse },
      contentType: 'text/event-stream',
      errors: ['400', '503'],
    },
  },
  '/webhooks': {
    get: { summary: 'Webhook subscriptions (never their secrets). docs/events.md', ok: { '200': z.object({ webhooks: z.array(z.unknown()) }) }, errors: ['503'] },
    post: { summary: 'Subscribe a URL to events; answers { webhook, secret } with the signing secret, shown this once.', body: createWebhookSchema, ok: { '201': z.object({ webhook: z.unknown(), secret: z.string() }) }, errors: ['400', '415', '503'] },
  },
  '/webhooks/{id}': {
    get: { summary: 'One webhook.', path: ['id'], ok: { '200': z.object({ webhook: z.unknown() }) }, errors: ['400', '404', '503'] },
    delete: { summary: 'Remove a webhook; deliveries already queued for it are skipped.', path: ['id'], ok: { '200': removedResponse }, errors: ['400', '404', '503'] },
  },
  '/webhooks/{id}/rotate': { post: { summary: 'A new signing secret (shown once); the old one still signs for 24 h.', path: ['id'], ok: { '200': z.object({ webhook: z.unknown(), secret: z.string() }) }, errors: ['400', '404', '503'] } },
  '/webhooks/{id}/pause': { post: { summary: 'Hold deliveries (they retry until resumed or dead).', path: ['id'], ok: { '200': z.object({ webhook: z.unknown() }) }, errors: ['400', '404', '503'] } },
  '/webhooks/{id}/resume': { post: { summary: 'Deliver again.', path: ['id'], ok: { '200': z.object({ webhook: z.unknown() }) }, errors: ['400', '404', '503'] } },
  '/webhooks/{id}/deliveries': { get: { summary: 'The webhook\'s deliveries (jobs of queue spool.webhooks), newest first; state=dead is its dead-letter queue.', path: ['id'], query: deliveriesQuery, ok: { '200': jobPageResponse }, errors: ['400', '404', '503'] } },
  '/webhooks/{id}/replay': { post: { summary: 'Run the webhook\'s dead deliveries again.', path: ['id'], ok: { '200': replayResponse }, errors: ['400', '404', '503'] } },
  '/healthz': { get: { summary: 'The process is alive.', ok: { '200': healthResponse }, errors: [] } },
  '/readyz': {
    get: { summary: 'Database reachable, migrations current, listener connected (where workers run).', ok: { '200': readyResponse }, errors: ['503'] },
  },
};

const schemaOf = (schema: z.ZodType, io: 'input' | 'output') =>
  z.toJSONSchema(schema, { target: 'openapi-3.0', io, unrepresentable: 'any' }) as Record<string, unknown>;

let cached: object | undefined;

/** The OpenAPI 3 document of the API, generated from the zod schemas the routes validate with. */
export function openApiDocument(version: string): object {
  if (cached) return cached;
  const paths: Record<string, Record<string, unknown>> = {};
  for (const [path, methods] of Object.entries(ROUTES)) {
    paths[path] = {};
    for (const [method, route] of Object.entries(methods)) {
      const parameters = [
        ...(route.path ?? []).map((name) => ({ name, in: 'path', required: true, schema: { type: 'string' } })),
        ...Object.entries(route.query?.shape ?? {}).map(([name, schema]) => ({
          name,
          in: 'query',
          required: false,
          ...((schema as z.ZodType).description ? { description: (schema as z.ZodType).description } : {}),
          schema: { type: 'string' },
        })),
        ...Object.entries(route.headers ?? {}).map(([name, description]) => ({ name, in: 'header', required: false, description, schema: { type: 'string' } })),
      ];
      const responses: Record<string, unknown> = {};
      for (const [status, schema] of Object.entries(route.ok)) {
        responses[status] = { description: status === '201' ? 'created' : 'ok', content: { [route.contentType ?? 'application/json']: { schema: schemaOf(schema!, 'output') } } };
      }
      for (const status of route.errors) {
        responses[status] = { description: ERROR_TEXT[status], content: { 'application/json': { schema: { $ref: '#/components/schemas/Problem' } } } };
      }
      const access = ROUTE_ACCESS[`${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`];
      if (access !== 'open') {
        responses['401'] = { description: ERROR_TEXT['401'], content: { 'application/json': { schema: { $ref: '#/components/schemas/Problem' } } } };
        responses['403'] = { description: ERROR_TEXT['403'], content: { 'application/json': { schema: { $ref: '#/components/schemas/Problem' } } } };
        responses['429'] = { description: ERROR_TEXT['429'], content: { 'application/json': { schema: { $ref: '#/components/schemas/Problem' } } } };
      }
      paths[path][method] = {
        summary: access && access !== 'open' ? `${route.summary} Needs a key allowed to ${access}.` : route.summary,
        security: access === 'open' ? [] : [{ bearerKey: [] }],
        ...(parameters.length > 0 ? { parameters } : {}),
        ...(route.body ? { requestBody: { required: true, content: { 'application/json': { schema: schemaOf(route.body, 'input') } } } } : {}),
        responses,
      };
    }
  }
  cached = {
    openapi: '3.0.3',
    info: { title: 'Spool', version, description: 'A durable job queue that needs nothing but PostgreSQL. Every error is { error: { code, message, details, requestId } }.' },
    // Relative to this document: where the API is mounted under a prefix, "Try it out" calls the prefix.
    servers: [{ url: '.' }],
    paths,
    security: [{ bearerKey: [] }],
    components: {
      schemas: { Problem: schemaOf(problemResponse, 'output') },
      securitySchemes: {
        bearerKey: { type: 'http', scheme: 'bearer', description: 'An API key, spool_<prefix>_<secret>: spool keys create --role admin|operator|producer|reader' },
      },
    },
  };
  return cached;
}
