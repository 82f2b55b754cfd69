import { activeTraceparent } from './observability/tracing.js';
import { z } from 'zod';
import { ValidationError, issuesOf, toFieldIssues, type FieldIssue } from './errors.js';
import type { Transaction } from './db/executor.js';
import { isJobDefinition, type AnyJobDefinition } from './job.js';
import {
  kindSchema,
  queueSchema,
  prioritySchema,
  maxAttemptsSchema,
  timeoutMsSchema,
  tagsSchema,
  uniqueKeySchema,
  NUL_RULE,
  groupSchema,
} from './job-fields.js';

const RUN_AT_RULE = 'expected a Date or an ISO 8601 timestamp with a zone, e.g. "2030-01-01T09:00:00Z"';
/** `runAt` as JSON carries it: an ISO 8601 timestamp with a zone. */
export const runAtTextSchema = z.iso.datetime({ offset: true, error: 'expected an ISO 8601 timestamp with a zone, e.g. "2030-01-01T09:00:00Z"' });
const runAtSchema = z.union([z.date({ error: RUN_AT_RULE }), runAtTextSchema], { error: RUN_AT_RULE });

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
};

/** runAt and delayMs are two ways to say when: one at most. */
export const oneWhen: [(o: { runAt?: unknown; delayMs?: unknown }) => boolean, { error: string; path: string[] }] = [
  (o) => o.runAt === undefined || o.delayMs === undefined,
  { error: 'give either runAt or delayMs, not both', path: ['delayMs'] },
];

/** Options for one job at enqueue. Unknown keys are refused, so a typo is an error and not a silent default. */
export const jobOptionsSchema = z
  .strictObject(
    { ...jobOptionFields, runAt: runAtSchema.optional(), tx: z.unknown().optional() },
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
}

/** Options of a single write: the caller's transaction to join. */
export interface WriteOptions {
  /** Join the caller's transaction: rolled back → the job never existed. */
  tx?: Transaction;
}

// An odd number of backslashes before u0000 is an escaped NUL in JSON text.
const JSON_NUL = /(?<!\\)(?:\\\\)*\\u0000/;

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
  if (tags !== undefined) element.tags = tags;
  const traceparent = o.metadata?.traceparent === undefined ? activeTraceparent() : undefined;
  if (traceparent) element.metadata = { ...o.metadata, traceparent };
  else if (o.metadata !== undefined) element.metadata = o.metadata;
  let text: string;
  try {
    text = JSON.stringify(element);
  } catch (error) {
    const field = jsonFailure(element.payload) ? 'payload' : 'metadata';
    throw new ValidationError([{ path: at(field), message: `is not JSON-serialisable (${(error as Error).message})` }]);
  }
  if (JSON_NUL.test(text)) {
    const field = JSON_NUL.test(JSON.stringify(element.payload)) ? 'payload' : 'metadata';
    throw new ValidationError([{ path: at(field), message: NUL_RULE }]);
  }
  return { text, kind: kind as string };
}

function jsonFailure(value: unknown): boolean {
  try {
    JSON.stringify(value);
    return false;
  } catch {
    return true;
  }
}
