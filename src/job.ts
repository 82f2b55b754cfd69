import type { z } from 'zod';
import { ValidationError, issuesOf } from './errors.js';
import { kindSchema, queueSchema, prioritySchema, maxAttemptsSchema, tagsSchema, timeoutMsSchema } from './job-fields.js';
import type { Logger } from './observability/logger.js';
import type { Backoff } from './worker/backoff.js';
import type { Spool } from './client.js';

/**
 * Where a job is in its life. Transitions (see docs/adr/0001-state-model-and-claim-index.md):
 * scheduled → available → running → completed | scheduled (retry) | dead;
 * scheduled | available → cancelled; running → cancelled (on request);
 * dead | cancelled | completed → available (retry).
 */
export const JOB_STATES = ['scheduled', 'available', 'running', 'completed', 'dead', 'cancelled'] as const;
export type JobState = (typeof JOB_STATES)[number];

/** States a job never leaves on its own. */
export const FINISHED_STATES = ['completed', 'dead', 'cancelled'] as const satisfies readonly JobState[];

/** A failed attempt, as recorded in `Job.errors`. */
export interface JobError {
  attempt: number;
  at: string;
  message: string;
  stack?: string;
  /** Spool's code for some failures: `signature_invalid`. */
  code?: string;
}

/** A job row, as `getJob`, `listJobs`, `cancelJob` and `retryJob` return it. */
export interface Job<Payload = unknown> {
  /** bigint identity, as a string (ids outgrow JavaScript numbers' exact range only in theory, but JSON clients agree on strings). */
  id: string;
  queue: string;
  kind: string;
  payload: Payload;
  state: JobState;
  /** Lower runs first. */
  priority: number;
  runAt: Date;
  /** 1-based number of the current or last attempt; 0 before the first claim. */
  attempt: number;
  maxAttempts: number;
  /** Per-job handler timeout; null: the kind's, or none. */
  timeoutMs: number | null;
  leaseExpiresAt: Date | null;
  workerId: string | null;
  uniqueKey: string | null;
  tags: string[];
  result: unknown;
  errors: JobError[];
  progress: unknown;
  metadata: Record<string, unknown>;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  cancelRequestedAt: Date | null;
  /** The job's group (a tenant, a customer): fair share and group limits; null for none. */
  group: string | null;
  /** The tenant that owns it (docs/security.md): a tenant-bound API key sees only its own; null for none. */
  tenant: string | null;
}

/** The columns of `jobs` as PostgreSQL returns them. */
export interface JobRow {
  id: string;
  queue: string;
  kind: string;
  payload: unknown;
  state: JobState;
  priority: number;
  run_at: Date;
  attempt: number;
  max_attempts: number;
  timeout_ms: number | null;
  lease_expires_at: Date | null;
  worker_id: string | null;
  unique_key: string | null;
  tags: string[];
  result: unknown;
  errors: JobError[];
  progress: unknown;
  metadata: Record<string, unknown>;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  cancel_requested_at: Date | null;
  group_key: string | null;
  tenant: string | null;
}

/** Maps a `jobs` row to the public `Job` shape. */
export function toJob(row: JobRow): Job {
  return {
    id: String(row.id),
    queue: row.queue,
    kind: row.kind,
    payload: row.payload,
    state: row.state,
    priority: row.priority,
    runAt: row.run_at,
    attempt: row.attempt,
    maxAttempts: row.max_attempts,
    timeoutMs: row.timeout_ms,
    leaseExpiresAt: row.lease_expires_at,
    workerId: row.worker_id,
    uniqueKey: row.unique_key,
    tags: row.tags,
    result: row.result,
    errors: row.errors,
    progress: row.progress,
    metadata: row.metadata,
    createdAt: row.created_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    cancelRequestedAt: row.cancel_requested_at,
    group: row.group_key ?? null,
    tenant: row.tenant ?? null,
  };
}

/**
 * What a handler gets besides its payload.
 */
export interface JobContext {
  job: Pick<Job, 'id' | 'kind' | 'queue' | 'attempt' | 'maxAttempts' | 'metadata' | 'createdAt'>;
  /**
   * Aborted on cancellation, timeout, lost lease or shutdown; `signal.reason`
   * is an Error whose name says which (CancelledError, TimeoutError,
   * LeaseLostError, ShutdownError). Pass it to fetch, streams, child processes.
   */
  signal: AbortSignal;
  /** A logger whose lines carry job_id, kind, queue, attempt and worker_id. */
  log: Logger;
  /** Stores a progress value (any JSON) on the job; ignored once the attempt is over. */
  progress(value: unknown): Promise<void>;
  /** The client the worker runs on: enqueue follow-up jobs, or use `spool.sql`. */
  spool: Spool;
}

/** What `defineJob` takes. */
export interface JobDefinitionInput<S extends z.ZodType, Result = unknown> {
  /** The handler's name, stored in `jobs.kind`: 1-255 letters, digits and `_ . : / -`. */
  kind: string;
  /** Validates the payload at enqueue (and, in the worker, before the handler runs). */
  schema: S;
  /** Default queue for jobs of this kind (`default`). */
  queue?: string;
  /** Default priority; lower runs first (0). */
  priority?: number;
  /** Default attempts before the job is dead (25). */
  maxAttempts?: number;
  /** Default tags. */
  tags?: string[];
  /** Abort the handler after this many ms (a job's own timeoutMs wins). None by default. */
  timeoutMs?: number;
  /**
   * Delete the job's row when it completes instead of keeping it as
   * `completed` (its result is then not stored). Failed, dead and cancelled
   * jobs are always kept. Default: the worker's `removeOnComplete` (false).
   */
  removeOnComplete?: boolean;
  /** Delay between attempts: `{ baseMs, maxMs, jitter }` or `(attempt) => ms` (1 s doubling to 1 h, ±10 %). */
  backoff?: Backoff;
  /**
   * Signed payloads (docs/security.md): producers sign each job of this kind
   * with the HMAC key `keyId` of their `signingKeys`, and workers run only
   * jobs whose signature their keyring verifies; any other goes `dead` with
   * the code `signature_invalid`, its handler never called.
   */
  signing?: { keyId: string };
  /** Runs the job; its return value (JSON) is stored as the job's result. */
  handler?: (payload: z.output<S>, ctx: JobContext) => Promise<Result> | Result;
}

/** A typed job definition: enqueueing it type-checks the payload. */
export interface JobDefinition<S extends z.ZodType = z.ZodType, Result = unknown>
  extends Readonly<JobDefinitionInput<S, Result>> {
  readonly __spoolJob: true;
}

/** Any job definition, whatever its schema. */
export type AnyJobDefinition = JobDefinition<any, any>;

/** The payload type to enqueue a job: the schema's input for a definition, any JSON for a bare kind. */
export type PayloadOf<J> = J extends JobDefinition<infer S, any> ? z.input<S> : unknown;

/**
 * Defines a job kind with a zod schema for its payload.
 *
 * @example
 * const sendEmail = defineJob({
 *   kind: 'email.send',
 *   schema: z.object({ to: z.email(), subject: z.string() }),
 *   maxAttempts: 5,
 * });
 * await spool.enqueue(sendEmail, { to: 'a@b.c', subject: 'Hi' });
 */
export function defineJob<S extends z.ZodType, Result = unknown>(
  definition: JobDefinitionInput<S, Result>,
): JobDefinition<S, Result> {
  const issues = [
    ...issuesOf(kindSchema, definition.kind, 'kind'),
    ...(definition.queue === undefined ? [] : issuesOf(queueSchema, definition.queue, 'queue')),
    ...(definition.priority === undefined ? [] : issuesOf(prioritySchema, definition.priority, 'priority')),
    ...(definition.maxAttempts === undefined ? [] : issuesOf(maxAttemptsSchema, definition.maxAttempts, 'maxAttempts')),
    ...(definition.tags === undefined ? [] : issuesOf(tagsSchema, definition.tags, 'tags')),
    ...(definition.timeoutMs === undefined ? [] : issuesOf(timeoutMsSchema, definition.timeoutMs, 'timeoutMs')),
  ];
  if (definition.removeOnComplete !== undefined && typeof definition.removeOnComplete !== 'boolean') {
    issues.push({ path: 'removeOnComplete', message: 'expected true or false' });
  }
  const backoff = definition.backoff as unknown;
  if (backoff !== undefined && typeof backoff !== 'function' && !isBackoffPolicy(backoff)) {
    issues.push({ path: 'backoff', message: 'expected (attempt) => ms, or { baseMs?, maxMs?, jitter? } with baseMs, maxMs >= 0 and jitter in [0, 1]' });
  }
  const schema = definition.schema as unknown;
  if (typeof schema !== 'object' || schema === null || typeof (schema as z.ZodType).safeParse !== 'function') {
    issues.push({ path: 'schema', message: 'expected a zod schema, e.g. z.object({ to: z.string() })' });
  } else if (!('_zod' in schema)) {
    // zod 3 schemas parse, but cannot become the registry's JSON Schema, and their types do not match.
    issues.push({ path: 'schema', message: 'is a zod 3 schema; Spool needs zod 4: npm install zod@^4 (or, on zod 3.25, import { z } from "zod/v4")' });
  }
  const signing = definition.signing as unknown;
  if (signing !== undefined && (typeof signing !== 'object' || signing === null || typeof (signing as { keyId?: unknown }).keyId !== 'string'
    || !/^[A-Za-z0-9_.-]{1,64}$/.test((signing as { keyId: string }).keyId) || Object.keys(signing).length !== 1)) {
    issues.push({ path: 'signing', message: 'expected { keyId } naming a key of the signing keyring (letters, digits and _ . -, at most 64)' });
  }
  if (definition.handler !== undefined && typeof definition.handler !== 'function') {
    issues.push({ path: 'handler', message: 'expected a function (payload, ctx) => result' });
  }
  if (issues.length > 0) throw new ValidationError(issues);
  return Object.freeze({ ...definition, __spoolJob: true as const });
}

function isBackoffPolicy(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const { baseMs, maxMs, jitter, ...rest } = value as Record<string, unknown>;
  const ms = (v: unknown) => v === undefined || (typeof v === 'number' && Number.isFinite(v) && v >= 0);
  const fraction = jitter === undefined || (typeof jitter === 'number' && jitter >= 0 && jitter <= 1);
  return ms(baseMs) && ms(maxMs) && fraction && Object.keys(rest).length === 0;
}

/** True for values made by `defineJob`. */
export function isJobDefinition(value: unknown): value is AnyJobDefinition {
  return typeof value === 'object' && value !== null && (value as { __spoolJob?: unknown }).__spoolJob === true;
}
