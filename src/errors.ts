import type { z } from 'zod';

/**
 * Errors are values with codes. Every error Spool throws on purpose is a
 * `SpoolError`; `code` is stable (match on it, not on the message) and the
 * message says what was wrong and what to do.
 */
export type SpoolErrorCode =
  | 'invalid_input'
  | 'not_found'
  | 'illegal_transition'
  | 'unique_conflict'
  | 'migration_changed'
  | 'migration_unknown'
  | 'migration_failed'
  | 'config_invalid'
  | 'task_invalid'
  | 'database_unavailable'
  | 'schema_not_migrated'
  | 'usage'
  | 'internal'
  | 'timeout';

/** Base class of every error Spool throws on purpose. */
export class SpoolError extends Error {
  readonly code: SpoolErrorCode;

  constructor(code: SpoolErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** One problem with one field: `path` is dotted (`payload.to`, `jobs.3.queue`). */
export interface FieldIssue {
  path: string;
  message: string;
}

/**
 * Input that breaks a rule: an option, a payload, a filter, configuration.
 * `issues` names every bad field; `field` is the first one, for convenience.
 *
 * @example
 * try { await spool.enqueue(sendEmail, { to: 42 }) }
 * catch (e) { if (e instanceof ValidationError) console.log(e.field) } // "payload.to"
 */
export class ValidationError extends SpoolError {
  readonly issues: FieldIssue[];
  readonly field: string;

  constructor(issues: FieldIssue[], code: SpoolErrorCode = 'invalid_input') {
    super(code, issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; '));
    this.issues = issues;
    this.field = issues[0]?.path ?? '';
  }
}

/** No job has that id (in this schema). */
export class JobNotFoundError extends SpoolError {
  readonly jobId: string;

  constructor(jobId: string) {
    super('not_found', `job ${jobId} does not exist`);
    this.jobId = jobId;
  }
}

/** The job is in a state the requested change cannot start from. */
export class IllegalTransitionError extends SpoolError {
  readonly jobId: string;
  readonly state: string;

  constructor(jobId: string, state: string, action: string, allowedFrom: readonly string[]) {
    super(
      'illegal_transition',
      `cannot ${action} job ${jobId}: it is ${state}; only ${allowedFrom.join(', ')} jobs can be ${action === 'cancel' ? 'cancelled' : 'retried'}`,
    );
    this.jobId = jobId;
    this.state = state;
  }
}

/** Another unfinished job already holds the unique key this change needs. */
export class UniqueConflictError extends SpoolError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('unique_conflict', message, options);
  }
}

/** A migration could not be applied, was changed after it was applied, or is unknown. */
export class MigrationError extends SpoolError {}

/** Converts zod issues to Spool's, with `prefix` on every path. */
export function toFieldIssues(issues: readonly z.core.$ZodIssue[], prefix: string): FieldIssue[] {
  const seen = new Set<string>();
  // One issue per field: '' breaks both "not empty" and the pattern; the first says it best.
  return issues.flatMap((issue) => {
    const keys = issue.code === 'unrecognized_keys' ? issue.keys : [undefined];
    return keys.map((key) => {
      const path = [prefix, ...issue.path.map(String), ...(key === undefined ? [] : [key])].filter((p) => p !== '').join('.');
      const message =
        key === undefined ? issue.message : `unknown key; check its spelling against the documented options`;
      return { path, message };
    });
  }).filter((issue) => !seen.has(issue.path) && seen.add(issue.path));
}

/** `value` parsed by `schema`, or a ValidationError naming every bad field (each path under `prefix`). */
export function parseOrThrow<S extends z.ZodType>(schema: S, value: unknown, prefix = ''): z.output<S> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new ValidationError(toFieldIssues(parsed.error.issues, prefix));
  return parsed.data;
}

/** The issues of `value` against `schema`, each path prefixed with `path`. */
export function issuesOf(schema: z.ZodType, value: unknown, path: string): FieldIssue[] {
  const parsed = schema.safeParse(value);
  return parsed.success ? [] : toFieldIssues(parsed.error.issues, path);
}


/**
 * Throw from a handler to fail the job for good: it goes to the dead-letter
 * queue at once, whatever attempts are left.
 *
 * @example
 * if (!user) throw new PermanentError(`user ${payload.userId} does not exist`);
 */
export class PermanentError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PermanentError';
  }
}
