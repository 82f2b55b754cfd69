import { z } from 'zod';
import { ROLES } from '../auth/keys.js';
import { JOB_STATES, type Job } from '../job.js';
import { groupSchema, jobIdTextSchema, kindSchema, queueSchema, timestampTextSchema } from '../job-fields.js';
import { EVENT_TYPES } from '../queries/events.js';
import { jobOptionFields, oneWhen, runAtTextSchema } from '../job-options.js';
import { LIST_LIMIT_MAX, listFilterSchema } from '../queries/list.js';

/**
 * The API's shapes, in zod: requests are validated with them and the
 * OpenAPI document (GET /openapi.json) is generated from them.
 */

/** `POST /jobs`: one job. */
export const enqueueBody = z
  .strictObject({
    kind: kindSchema.describe('which handler runs it, e.g. "email.send"'),
    payload: z.unknown().optional().describe('the handler\'s input: any JSON ({} when omitted)'),
    ...jobOptionFields,
    runAt: runAtTextSchema.optional().describe('run no earlier than this (ISO 8601 with a zone); not with delayMs'),
  })
  .refine(...oneWhen);

/** `POST /jobs/batch`: many jobs in one statement. */
export const enqueueBatchBody = z.strictObject({
  jobs: z.array(enqueueBody).min(1, { error: 'give at least one job' }),
});

const oneOrList = <T extends z.ZodType<unknown, string>>(item: T) =>
  z
    .string()
    .transform((text) => text.split(','))
    .pipe(z.array(item))
    .optional();

const wholeText = (rule: string) => z.string().regex(/^[0-9]{1,9}$/, { error: rule }).transform(Number).optional();

/** `GET /jobs` query parameters (lists are comma-separated). */
export const listQuery = z.strictObject({
  state: oneOrList(z.enum(JOB_STATES, { error: `expected ${JOB_STATES.join(', ')} (comma-separated for several)` })).describe(
    `one or more of ${JOB_STATES.join(', ')}, comma-separated`,
  ),
  queue: oneOrList(queueSchema).describe('one or more queues, comma-separated'),
  kind: oneOrList(kindSchema).describe('one or more kinds, comma-separated'),
  tag: listFilterSchema.shape.tag.describe('jobs carrying this tag'),
  limit: wholeText(`expected a whole number from 1 to ${LIST_LIMIT_MAX}`).describe(`page size (50; at most ${LIST_LIMIT_MAX})`),
  cursor: listFilterSchema.shape.cursor.describe('nextCursor of the previous page'),
  order: listFilterSchema.shape.order.describe('by id: desc (newest first, default) or asc'),
});

/** The longest `?wait=` an HTTP request may hold (5 minutes). */
export const HTTP_WAIT_MS_MAX = 300_000;
const WAIT_TEXT = /^([0-9]{1,7})(ms|s|m)?$/;
const WAIT_RULE = `expected a duration such as 500ms, 30s or 2m (a bare number is seconds), at most ${HTTP_WAIT_MS_MAX / 1000}s`;

/** `?wait=`: hold the answer until the job finishes or this long passes. */
export const waitQuery = z.strictObject({
  wait: z
    .string()
    .regex(WAIT_TEXT, { error: WAIT_RULE })
    .transform((text) => {
      const [, amount, unit] = WAIT_TEXT.exec(text)!;
      return Number(amount) * (unit === 'ms' ? 1 : unit === 'm' ? 60_000 : 1_000);
    })
    .pipe(z.number().max(HTTP_WAIT_MS_MAX, { error: WAIT_RULE }))
    .optional()
    .describe(`hold the answer until the job is completed, dead or cancelled, or this long passes (then the job as it is, timedOut: true): 500ms, 30s, 2m; at most ${HTTP_WAIT_MS_MAX / 1000}s`),
});

/** `GET /events` query parameters (lists are comma-separated). */
export const eventsQuery = z.strictObject({
  queue: oneOrList(queueSchema).describe('only events of jobs in these queues, comma-separated'),
  kind: oneOrList(kindSchema).describe('only these kinds, comma-separated'),
  job: oneOrList(jobIdTextSchema).describe('only these job ids, comma-separated'),
  group: oneOrList(groupSchema).describe('only jobs of these groups, comma-separated'),
  state: oneOrList(z.enum(EVENT_TYPES, { error: `expected ${EVENT_TYPES.join(', ')} (comma-separated for several)` })).describe(
    `only these changes: ${EVENT_TYPES.join(', ')}, comma-separated`,
  ),
  after: z.string().max(64).optional().describe('replay from just after this event id (as Last-Event-ID does; the header wins)'),
});

/** `GET /dead` query parameters. */
export const deadListQuery = listQuery.omit({ state: true });

/** `POST /dead/replay` and `DELETE /dead`: which dead jobs. */
export const deadSelection = z
  .strictObject({
    ids: z.array(jobIdTextSchema).min(1).max(10_000).optional(),
    queue: queueSchema.optional(),
    kind: kindSchema.optional(),
    finishedBefore: timestampTextSchema('expected an ISO 8601 timestamp with a zone').optional(),
    all: z.literal(true, { error: 'expected true' }).optional().describe('required when no other selector is given: every dead job'),
  })
  .refine((s) => s.all === true || s.ids !== undefined || s.queue !== undefined || s.kind !== undefined || s.finishedBefore !== undefined, {
    error: 'select the dead jobs: ids, queue, kind, finishedBefore, or all: true for every one',
  });

/** `DELETE /dead` query parameters (the same selection as a query string). */
export const deadPurgeQuery = z.strictObject({
  ids: z.string().transform((text) => text.split(',')).optional(),
  queue: z.string().optional(),
  kind: z.string().optional(),
  finishedBefore: z.string().optional(),
  all: z.enum(['true'], { error: 'expected true' }).transform(() => true as const).optional(),
});

/** `POST /maintenance/prune`. */
export const pruneBody = z.strictObject({
  dryRun: z.boolean({ error: 'expected true or false' }).optional().default(false).describe('change nothing; report what would go'),
});

// ---- Responses (documented; the handlers build them from the client's types) ----

const timestamp = z.iso.datetime({ offset: true });

/** A job as the API returns it (the client's `Job`, dates as ISO 8601). */
export const jobResponse = z.object({
  id: z.string().describe('bigint id, as a string'),
  queue: z.string(),
  kind: z.string(),
  payload: z.unknown(),
  state: z.enum(JOB_STATES),
  priority: z.number().int(),
  runAt: timestamp,
  attempt: z.number().int(),
  maxAttempts: z.number().int(),
  timeoutMs: z.number().int().nullable(),
  leaseExpiresAt: timestamp.nullable(),
  workerId: z.string().nullable(),
  uniqueKey: z.string().nullable(),
  tags: z.array(z.string()),
  result: z.unknown(),
  errors: z.array(z.object({ attempt: z.number().int(), at: z.string(), message: z.string(), stack: z.string().optional(), code: z.string().optional().describe('signature_invalid: a signed kind whose signature is missing or wrong') })),
  progress: z.unknown(),
  metadata: z.record(z.string(), z.unknown()),
  createdAt: timestamp,
  startedAt: timestamp.nullable(),
  finishedAt: timestamp.nullable(),
  cancelRequestedAt: timestamp.nullable(),
  group: z.string().nullable().describe('fair-share and limit group (e.g. the tenant); null for none'),
  tenant: z.string().nullable().describe('the tenant that owns it (from the enqueuing key); null for none'),
});

// The documented shape and the client's Job must name the same fields.
type SameKeys<A, B> = [keyof A] extends [keyof B] ? ([keyof B] extends [keyof A] ? true : never) : never;
const jobFieldsMatch: SameKeys<z.infer<typeof jobResponse>, Job> = true;
void jobFieldsMatch;

export const enqueueResponse = z.object({
  job: jobResponse,
  duplicate: z.boolean().describe('true: an unfinished job already held the unique key; this is it'),
  timedOut: z.boolean().optional().describe('with ?wait=: true when the wait ended before the job finished (job is as it was then)'),
});
export const enqueueBatchResponse = z.object({
  ids: z.array(z.string()).describe('in input order'),
  duplicate: z.array(z.boolean()).describe('per input: true when an unfinished job already held its unique key'),
});
export const jobEnvelope = z.object({
  job: jobResponse,
  timedOut: z.boolean().optional().describe('with ?wait=: true when the wait ended before the job finished'),
});

/** One event of GET /events (the SSE data line) and of a webhook's body. */
export const eventResponse = z.object({
  id: z.string().describe('<xid>-<seq>-<pos>: later events compare greater; give it back as Last-Event-ID'),
  type: z.enum(EVENT_TYPES),
  at: z.string().describe('when the change was made (database time)'),
  job: z.object({
    id: z.string(),
    queue: z.string(),
    kind: z.string(),
    attempt: z.number().int(),
    group: z.string().nullable(),
    tenant: z.string().nullable(),
  }),
  result: z.unknown().optional().describe('completed: the result, when at most 8 KiB'),
  resultTruncated: z.boolean().optional(),
  error: z.unknown().optional().describe('retrying, dead: the attempt\'s error'),
  progress: z.unknown().optional().describe('progress: the reported value'),
});
export const jobPageResponse = z.object({
  jobs: z.array(jobResponse),
  nextCursor: z.string().nullable(),
  truncated: z.boolean().describe('true: the page reached the byte cap (SPOOL_PAGE_MAX_BYTES, 4 MiB) before limit jobs; nextCursor goes on'),
});
export const queuesResponse = z.object({
  queues: z.array(
    z.object({
      queue: z.string(),
      counts: z.object(Object.fromEntries(JOB_STATES.map((s) => [s, z.number().int()])) as Record<(typeof JOB_STATES)[number], z.ZodNumber>),
      oldestAvailableAgeSeconds: z.number(),
      paused: z.boolean(),
    }),
  ),
});
export const kindsResponse = z.object({
  kinds: z.array(
    z.object({
      kind: z.string(),
      queue: z.string().describe('default queue of jobs enqueued by this kind\'s name'),
      priority: z.number().int(),
      maxAttempts: z.number().int(),
      timeoutMs: z.number().int().nullable(),
      removeOnComplete: z.boolean().nullable().describe('null: the worker\'s setting decides'),
      tags: z.array(z.string()),
      payloadSchema: z.unknown().describe('JSON Schema of the payload; null: any JSON'),
      registeredBy: z.string().describe('worker id, or client:<host>:<pid>'),
      registeredAt: timestamp,
      lastSeenAt: timestamp.describe('its latest registration or a live worker\'s heartbeat'),
      workers: z.number().int().describe('live workers that handle it'),
      waiting: z.number().int().describe('its scheduled and available jobs'),
    }),
  ),
});
export const pruneResponse = z.object({
  dryRun: z.boolean(),
  created: z.array(z.string()).describe('day partitions created ahead'),
  moved: z.number().int().describe('finished rows moved from the hot table into history (from before the upgrade)'),
  dropped: z.array(z.object({ partition: z.string(), state: z.string(), rows: z.number().int().describe('estimated') })),
  deferred: z.array(z.string()).describe('due partitions whose lock was busy: dropped at a later run'),
  deleted: z.number().int().describe('expired rows deleted in batches (dry run: how many are expired)'),
  auditDeleted: z.number().int().describe('audit rows past the audit retention (90 days), deleted'),
  eventsDeleted: z.number().int().describe('job_events rows past the events retention (1 day), deleted'),
  retentionSeconds: z.record(z.string(), z.number()).describe('longest retention per state'),
});
export const queueStateResponse = z.object({ queue: z.string(), paused: z.boolean() });
export const replayResponse = z.object({ replayed: z.number().int(), ids: z.array(z.string()) });
export const purgeResponse = z.object({ deleted: z.number().int() });
export const healthResponse = z.object({ status: z.literal('ok') });
export const readyResponse = z.object({
  status: z.enum(['ready', 'not_ready']),
  checks: z.record(z.string(), z.object({ ok: z.boolean(), message: z.string() })),
});
export const problemResponse = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    details: z.array(z.object({ path: z.string(), message: z.string() })),
    requestId: z.string(),
  }),
});

// ---- Schedules and limits (docs/flow-control.md) ----

/** `PUT /schedules/:name`: the schedule, with its job as a kind name. */
export const scheduleBody = z.strictObject({
  cron: z.string({ error: 'expected a cron pattern, e.g. "0 * * * *"' }).describe('5 fields, or 6 with seconds first (croner syntax)'),
  timezone: z.string().optional().describe('IANA zone the pattern is read in (UTC)'),
  kind: z.string({ error: 'expected the kind to enqueue at each tick' }),
  payload: z.unknown().optional(),
  options: z.record(z.string(), z.unknown()).optional().describe('each tick\'s job options: queue, priority, maxAttempts, timeoutMs, tags, group, metadata'),
  jitterMs: z.number().int().optional().describe('a tick\'s job is due up to this many ms after the tick, at random (0)'),
  overlap: z.enum(['allow', 'skip']).optional().describe('skip: no job while the last tick\'s job is unfinished (allow)'),
  catchUp: z.enum(['none', 'latest', 'all']).optional().describe('ticks missed while no leader ran (none; a tick up to 60 s late still runs)'),
  paused: z.boolean().optional(),
});

const scheduleResponseShape = z.object({
  name: z.string(), cron: z.string(), timezone: z.string(), kind: z.string(), payload: z.unknown(), options: z.record(z.string(), z.unknown()),
  jitterMs: z.number().int(), overlap: z.enum(['allow', 'skip']), catchUp: z.enum(['none', 'latest', 'all']), paused: z.boolean(),
  nextRunAt: timestamp.nullable(), lastRunAt: timestamp.nullable(), lastJobId: z.string().nullable(), lastError: z.string().nullable(),
  source: z.string().describe('code (defineSchedule), api, cli or sql'), createdAt: timestamp, updatedAt: timestamp,
});
export const schedulesResponse = z.object({ schedules: z.array(scheduleResponseShape) });
export const scheduleEnvelope = z.object({ schedule: scheduleResponseShape.extend({ nextRuns: z.array(timestamp).optional().describe('the next 5 ticks; none while paused') }) });
export const triggerResponse = z.object({ jobId: z.string() });
export const removedResponse = z.object({ removed: z.boolean() });

const limitResponseShape = z.object({
  scope: z.enum(['queue', 'kind', 'group']), name: z.string(), concurrency: z.number().int().nullable(),
  rate: z.object({ limit: z.number().int(), windowMs: z.number().int() }).nullable(), weight: z.number().int(), fair: z.boolean(),
  source: z.string(), updatedAt: timestamp,
});
export const limitsResponse = z.object({ limits: z.array(limitResponseShape) });
export const limitEnvelope = z.object({ limit: limitResponseShape });
export const limitsQuery = z.strictObject({ scope: z.enum(['queue', 'kind', 'group'], { error: 'expected queue, kind or group' }).optional() });
export const groupsResponse = z.object({
  groups: z.array(z.object({
    group: z.string(), waiting: z.number().int(), scheduled: z.number().int(), running: z.number().int(), weight: z.number().int(),
    concurrency: z.number().int().nullable(), rate: z.object({ limit: z.number().int(), windowMs: z.number().int() }).nullable(),
    configured: z.boolean().describe('it has a limits row (a weight or a limit)'),
  })),
});

const apiKeyShape = z.object({
  id: z.string(),
  prefix: z.string(),
  name: z.string(),
  role: z.enum(ROLES),
  tenant: z.string().nullable(),
  createdAt: z.string(),
  expiresAt: z.string().nullable(),
  revokedAt: z.string().nullable(),
  lastUsedAt: z.string().nullable(),
  rotatedFrom: z.string().nullable(),
});
export const keysResponse = z.object({ keys: z.array(apiKeyShape) });
export const keyEnvelope = z.object({ apiKey: apiKeyShape });
export const createdKeyResponse = z.object({ key: z.string().describe('the whole key: shown this once, never again'), apiKey: apiKeyShape });
export const keysQuery = z.strictObject({
  includeRevoked: z.enum(['true', 'false'], { error: 'expected true or false' }).optional().describe('also list revoked keys'),
});

/** `GET /audit` query parameters. */
export const auditQuery = z.strictObject({
  since: z.string().optional().describe('rows from this time on: a duration back from now (30m, 12h, 7d) or an ISO time'),
  action: z.string().optional().describe('one action (job.cancel) or every action under a prefix (job, key, dead)'),
  keyId: z.string().optional().describe('rows of this key id'),
  limit: wholeText('expected a whole number from 1 to 1000').describe('page size (100; at most 1000)'),
  before: z.string().optional().describe('nextBefore of the previous page'),
});
const auditEntryShape = z.object({
  id: z.string(), at: z.string(), keyId: z.string().nullable(), keyName: z.string().nullable(), role: z.string().nullable(),
  tenant: z.string().nullable(), action: z.string(), target: z.string().nullable(), result: z.enum(['ok', 'refused', 'failed']),
  status: z.number().int().nullable(), client: z.string().nullable(), requestId: z.string().nullable(), details: z.record(z.string(), z.unknown()),
});
export const auditResponse = z.object({ entries: z.array(auditEntryShape), nextBefore: z.string().nullable() });
