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
  ) {
    super(message);
  }
}


/**
 * The status and body for an error. Anything not made on purpose is a 500
 * whose message names only the request id; the caller logs the rest.
 */
export function problemFor(error: unknown): { status: ContentfulStatusCode; problem: Problem; unexpected: boolean } {
  const make = (status: ContentfulStatusCode, code: string, message: string, details: FieldIssue[] = []) => ({
    status,
    problem: { code, message, details },
    unexpected: false,
  });
  if (error instanceof ApiProblem) return make(error.status, error.code, error.message, error.details);
  if (error instanceof ValidationError) return make(400, 'invalid_input', error.message, error.issues);
  if (error instanceof JobNotFoundError) return make(404, 'not_found', error.message);
  if (error instanceof ScheduleNotFoundError) return make(404, 'not_found', error.message);
  if (error instanceof IllegalTransitionError) return make(409, 'illegal_transition', error.message);
  if (error instanceof UniqueConflictError) return make(409, 'unique_conflict', error.message);
  if (error instanceof SpoolError) return make(400, error.code, error.message);
  if (error instanceof HTTPException) return make(error.status as ContentfulStatusCode, 'http_error', error.message);
  if (isDatabaseDown(error)) {
    return make(503, 'database_unavailable', 'the database cannot be reached; retry later (GET /readyz shows the failing check)');
  }
  return {
    status: 500,
    problem: { code: 'internal', message: 'unexpected error; the server log has the details under this request id', details: [] },
    unexpected: true,
  };
}
