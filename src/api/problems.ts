import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import {
  IllegalTransitionError,
  JobNotFoundError,
  SpoolError,
  UniqueConflictError,
  ValidationError,
  type FieldIssue,
} from '../errors.js';
import { isDatabaseDown } from '../db/errors.js';
import { ScheduleNotFoundError } from '../schedules/store.js';

/** The body of every error response: `{ "error": { code, message, details, requestId } }`. */
export interface Problem {
  code: string;
  message: string;
  details: FieldIssue[];
  requestId?: string;
}

/** An error the API answers on purpose, with its HTTP status. */
export class ApiProblem extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly details: FieldIssue[] = [],
    /** Sent as Retry-After (429, 503). */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}


/**
 * A PostgreSQL error about a value rather than the server: class 22 (data
 * exception: bad text, out of range, bad date) and 54 (too deep, too
 * complex). Statement-timeout (57014) and the rest are not.
 */
function isDataException(error: unknown): boolean {
  const e = error as { name?: unknown; code?: unknown } | null;
  return e?.name === 'PostgresError' && typeof e.code === 'string' && (e.code.startsWith('22') || e.code.startsWith('54'));
}

/**
 * The status and body for an error. Anything not made on purpose is a 500
 * whose message names only the request id; the caller logs the rest.
 */
export function problemFor(error: unknown): { status: ContentfulStatusCode; problem: Problem; unexpected: boolean; retryAfterSeconds?: number } {
  const make = (status: ContentfulStatusCode, code: string, message: string, details: FieldIssue[] = [], retryAfterSeconds?: number) => ({
    status,
    problem: { code, message, details },
    unexpected: false,
    retryAfterSeconds,
  });
  if (error instanceof ApiProblem) return make(error.status, error.code, error.message, error.details, error.retryAfterSeconds);
  if ((error as { code?: unknown } | null)?.code === '57014') {
    return make(503, 'database_timeout', 'the database did not answer within the statement timeout (SPOOL_API_STATEMENT_TIMEOUT_MS); retry later or narrow the request', [], 1);
  }
  if (error instanceof ValidationError) return make(400, 'invalid_input', error.message, error.issues);
  if (error instanceof JobNotFoundError) return make(404, 'not_found', error.message);
  if (error instanceof ScheduleNotFoundError) return make(404, 'not_found', error.message);
  if (error instanceof IllegalTransitionError) return make(409, 'illegal_transition', error.message);
  if (error instanceof UniqueConflictError) return make(409, 'unique_conflict', error.message);
  if (error instanceof SpoolError && error.code === 'not_found') return make(404, 'not_found', error.message);
  if (error instanceof SpoolError) return make(400, error.code, error.message);
  if (error instanceof HTTPException) return make(error.status as ContentfulStatusCode, 'http_error', error.message);
  if (isDataException(error)) {
    // The last net under the validators: PostgreSQL refused a value the request carried.
    const message = (error as { message: string }).message;
    return make(400, 'invalid_input', `PostgreSQL refused a value of the request: ${message}`);
  }
  if (isDatabaseDown(error)) {
    return make(503, 'database_unavailable', 'the database cannot be reached; retry later (GET /readyz shows the failing check)', [], 1);
  }
  return {
    status: 500,
    problem: { code: 'internal', message: 'unexpected error; the server log has the details under this request id', details: [] },
    unexpected: true,
  };
}
