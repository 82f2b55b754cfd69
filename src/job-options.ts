import { activeTraceparent } from './observability/tracing.js';
import { z } from 'zod';
import { ValidationError, issuesOf, toFieldIssues, type FieldIssue } from './errors.js';
import type { Transaction } from './db/executor.js';
import { isJobDefinition, type AnyJobDefinition } from './job.js';
import { SIGNATURE_FIELD, Signer } from './signing.js';
import {
  kindSchema,
  queueSchema,
  prioritySchema,
  maxAttemptsSchema,
  timeoutMsSchema,
  tagsSchema,
  uniqueKeySchema,
  groupSchema,
  tenantSchema,
  storableText,
  STORABLE_TEXT_RULE,
  timestampTextSchema,
  storableDateSchema,
  JSON_DEPTH_MAX,
  PAYLOAD_BYTES_MAX,
} from './job-fields.js';
import { WEBHOOK_URL_RULE, webhookUrlSchema } from './webhooks/target.js';

const RUN_AT_RULE = 'expected a Date or an ISO 8601 timestamp with a zone, e.g. "2030-01-01T09:00:00Z"';
/** `runAt` as JSON carries it: an ISO 8601 timestamp with a zone. */
export const runAtTextSchema = timestampTextSchema('expected an ISO 8601 timestamp with a zone, e.g. "2030-01-01T09:00:00Z"');
const runAtSchema = z.union([storableDateSchema(RUN_AT_RULE), runAtTextSchema], { error: RUN_AT_RULE });

/**
 * The per-job options every enqueue boundary shares (the client, the HTTP
 * API), apart from `runAt`, whose form differs (Date or text).
 */
export const jobOptionFields = {
  queue: queueSchema.optional(),
  priority: prioritySchema.optional(),
  delayMs: z
    .number({ error: 'expected milliseconds as a number' })
    .int({ error: 'expected whole milliseconds' })
    .min(0, { error: 'must be >= 0 (use runAt for a point in time)' })
    .max(10 * 365 * 24 * 3600 * 1000, { error: 'must be at most 10 years' })
    .optional(),
  maxAttempts: maxAttemptsSchema.optional(),
  timeoutMs: timeoutMsSchema.optional(),
  uniqueKey: uniqueKeySchema.optional(),
  group: groupSchema.optional(),
  tags: tagsSchema.optional(),
  metadata: z.record(z.string(), z.unknown(), { error: 'expected a plain object' }).optional(),
  webhook: z
    .union([webhookUrlSchema, z.strictObject({ url: webhookUrlSchema })], { error: `${WEBHOOK_URL_RULE}, or { url }` })
    .optional()
    .describe('POST this job\'s end (completed, dead, cancelled) to this URL, signed (docs/events.md, "Webhooks")'),
};

/** runAt and delayMs are two ways to say when: one at most. */
export const oneWhen: [(o: { runAt?: unknown; delayMs?: unknown }) => boolean, { error: string; path: string[] }] = [
  (o) => o.runAt === undefined || o.delayMs === undefined,
  { error: 'give either runAt or delayMs, not both', path: ['delayMs'] },
];

/** Options for one job at enqueue. Unknown keys are refused, so a typo is an error and not a silent default. */
export const jobOptionsSchema = z
  .strictObject(
    // tenant: the library's callers are trusted with it; the API takes it from the key, never the body.
    { ...jobOptionFields, runAt: runAtSchema.optional(), tenant: tenantSchema.optional(), tx: z.unknown().optional() },
    { error: (issue) => (issue.code === 'unrecognized_keys' ? undefined : 'expected an options object') },
  )
  .refine(...oneWhen);

/**
 * Options for one job at enqueue. Defaults come from the job definition,
 * then from the kind's registered defaults (the `kinds` table), then from
 * the named defaults (`QUEUE_DEFAULT`, `PRIORITY_DEFAULT`, `MAX_ATTEMPTS_DEFAULT`).
 */
export interface JobOptions {
  /** Where it waits (`default`). */
  queue?: string;
  /** Lower runs first (0); -32768..32767. */
  priority?: number;
  /** Run no earlier than this (database time decides when it is due). */
  runAt?: Date | string;
  /** Run no earlier than this many ms after the database's now(). Not with runAt. */
  delayMs?: number;
  /** Attempts before the job is dead (25). */
  maxAttempts?: number;
  /** Abort the handler after this many ms (overrides the kind's timeoutMs). */
  timeoutMs?: number;
  /** At most one unfinished job per (queue, uniqueKey): a second enqueue returns the first job's id. */
  uniqueKey?: string;
  /**
   * The job's group, e.g. the tenant or customer id: a fair queue shares its
   * claims out across groups by weight, and group limits count it (docs/flow-control.md).
   */
  group?: string;
  tags?: string[];
  /** Free-form JSON object stored with the job (trace context, correlation ids). */
  metadata?: Record<string, unknown>;
  /**
   * Where to POST this job's end (completed, dead or cancelled), signed with
   * the secret of the webhook `job` (`spool webhooks rotate job` shows it).
   * http(s) only; private and loopback targets are refused when delivered
   * unless allowed (docs/events.md, "Webhooks").
   */
  webhook?: string | { url: string };
  /**
   * The tenant that owns the job: an API key bound to a tenant sees and
   * touches only its tenant's jobs (docs/security.md). Unique keys are per tenant.
   */
  tenant?: string;
}

/** Options of a single write: the caller's transaction to join. */
export interface WriteOptions {
  /** Join the caller's transaction: rolled back → the job never existed. */
  tx?: Transaction;
}

// An odd number of backslashes before u0000 is an escaped NUL in JSON text;
// JSON.stringify writes a lone surrogate as an escape too (a pair stays raw).
const JSON_UNSTORABLE = /(?<!\\)(?:\\\\)*\\u(?:0000|d[89a-f])/i;

/**
 * Validates one job (definition or kind, payload, options) and returns the
 * JSON text of one element of `enqueue_batch`'s input, with its kind (for
 * the metrics). The active OpenTelemetry context, if any, goes
 * into metadata as W3C `traceparent`, so the worker's span continues the
 * caller's trace. Throws a ValidationError naming every bad field, each
 * under `prefix`.
 */
export function jobInput(
  jobOrKind: AnyJobDefinition | string,
  payload: unknown,
  options: unknown,
  prefix = '',
  signer?: Signer,
): { text: string; kind: string } {
  const at = (field: string) => (prefix ? `${prefix}.${field}` : field);
  const issues: FieldIssue[] = [];
  const definition = isJobDefinition(jobOrKind) ? jobOrKind : undefined;
  const kind = definition ? definition.kind : jobOrKind;
  if (!definition) issues.push(...issuesOf(kindSchema, jobOrKind, at('kind')));

  const parsedOptions = jobOptionsSchema.safeParse(options ?? {});
  if (!parsedOptions.success) issues.push(...toFieldIssues(parsedOptions.error.issues, prefix));

  if (definition) {
    const parsedPayload = definition.schema.safeParse(payload);
    if (!parsedPayload.success) issues.push(...toFieldIssues(parsedPayload.error.issues, at('payload')));
  }
  if (issues.length > 0 || !parsedOptions.success) throw new ValidationError(issues);

  const o = parsedOptions.data;
  // Only what the caller (or its job definition) says travels; the rest is
  // filled in by the database from the kind's registered defaults, then the
  // column defaults (sql/0004), so every enqueue path gets the same ones.
  const queue = o.queue ?? definition?.queue;
  const priority = o.priority ?? definition?.priority;
  const maxAttempts = o.maxAttempts ?? definition?.maxAttempts;
  const tags = o.tags ?? definition?.tags;
  const element: Record<string, unknown> = { kind, payload: payload === undefined ? {} : payload };
  if (queue !== undefined) element.queue = queue;
  if (priority !== undefined) element.priority = priority;
  if (maxAttempts !== undefined) element.max_attempts = maxAttempts;
  if (o.runAt !== undefined) element.run_at = o.runAt instanceof Date ? o.runAt.toISOString() : o.runAt;
  if (o.delayMs !== undefined) element.delay_ms = o.delayMs;
  if (o.timeoutMs !== undefined) element.timeout_ms = o.timeoutMs;
  if (o.uniqueKey !== undefined) element.unique_key = o.uniqueKey;
  if (o.group !== undefined) element.group = o.group;
  if (o.tenant !== undefined) element.tenant = o.tenant;
  if (tags !== undefined) element.tags = tags;
  const traceparent = o.metadata?.traceparent === undefined ? activeTraceparent() : undefined;
  if (traceparent) element.metadata = { ...o.metadata, traceparent };
  else if (o.metadata !== undefined) element.metadata = o.metadata;
  if (o.webhook !== undefined) {
    // Kept in metadata: the finish marks the job's end event for the webhook dispatcher (sql/0013).
    element.metadata = { ...(element.metadata as Record<string, unknown> | undefined), webhook: { url: typeof o.webhook === 'string' ? o.webhook : o.webhook.url } };
  }
  if (definition?.signing) {
    // Over what is stored: the kind, the tenant and the payload as given (sql/0011 keeps it as sent).
    const signature = (signer ?? new Signer()).sign(definition.signing.keyId, definition.kind, o.tenant, element.payload, at('signing.keyId'));
    element.metadata = { ...(element.metadata as Record<string, unknown> | undefined), [SIGNATURE_FIELD]: signature };
  }
  for (const field of ['payload', 'metadata'] as const) {
    const deep = deepestPath(element[field], JSON_DEPTH_MAX);
    if (deep !== undefined) {
      throw new ValidationError([{ path: at([field, ...deep].join('.')), message: `nests deeper than ${JSON_DEPTH_MAX} levels: flatten it` }]);
    }
  }
  let text: string;
  try {
    text = JSON.stringify(element);
  } catch (error) {
    const field = jsonFailure(element.payload) ? 'payload' : 'metadata';
    throw new ValidationError([{ path: at(field), message: `is not JSON-serialisable (${(error as Error).message})` }]);
  }
  if (JSON_UNSTORABLE.test(text)) {
    const field = JSON_UNSTORABLE.test(JSON.stringify(element.payload)) ? 'payload' : 'metadata';
    throw new ValidationError([{ path: at([field, ...(unstorablePath(element[field]) ?? [])].join('.')), message: STORABLE_TEXT_RULE }]);
  }
  // UTF-8 takes at least one byte per UTF-16 unit: only a long text needs counting.
  if (text.length > PAYLOAD_BYTES_MAX / 4) {
    const bytes = Buffer.byteLength(JSON.stringify(element.payload));
    if (bytes > PAYLOAD_BYTES_MAX) {
      throw new ValidationError([{ path: at('payload'), message: `is ${bytes} bytes as JSON, over the ${PAYLOAD_BYTES_MAX}: store large data elsewhere and pass a reference` }]);
    }
  }
  return { text, kind: kind as string };
}

/**
 * The path to a value nested `max` levels below the top (the top is level
 * 0), or undefined: what `NOT payload @? 'strict $.**{64}'` refuses in
 * sql/0009. Walks no deeper than `max`, so a 100,000-deep value costs little.
 */
function deepestPath(value: unknown, max: number, level = 0): string[] | undefined {
  if (level >= max) return [];
  if (value === null || typeof value !== 'object') return undefined;
  const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v] as const) : Object.entries(value);
  for (const [key, child] of entries) {
    const below = deepestPath(child, max, level + 1);
    if (below !== undefined) return level < 8 ? [key, ...below] : below;
  }
  return undefined;
}

/** The path to the first string or key PostgreSQL cannot store (NUL, lone surrogate), for the error. */
function unstorablePath(value: unknown): string[] | undefined {
  if (typeof value === 'string') return storableText(value) ? undefined : [];
  if (value === null || typeof value !== 'object') return undefined;
  for (const [key, child] of Array.isArray(value) ? value.entries() : Object.entries(value)) {
    if (typeof key === 'string' && !storableText(key)) return [key];
    const below = unstorablePath(child);
    if (below !== undefined) return [String(key), ...below];
  }
  return undefined;
}

function jsonFailure(value: unknown): boolean {
  try {
    JSON.stringify(value);
    return false;
  } catch {
    return true;
  }
}
