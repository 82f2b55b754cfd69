import { PermanentError } from '../errors.js';
import type { AnyJobDefinition, JobContext } from '../job.js';
import type { Logger } from '../observability/logger.js';
import type { ClaimedRow } from '../queries/claim.js';
import type { Outcome } from '../queries/finish.js';
import { backoffDelay } from './backoff.js';
import { endJobSpan, runInContext, startJobSpan, traceLogFields } from '../observability/tracing.js';

/** Why a handler's signal was aborted. */
export type AbortCause = 'cancel' | 'timeout' | 'lease' | 'shutdown';

const ABORT_ERRORS: Record<AbortCause, { name: string; message: string }> = {
  cancel: { name: 'CancelledError', message: 'the job was cancelled' },
  timeout: { name: 'TimeoutError', message: 'the job timed out' },
  lease: { name: 'LeaseLostError', message: 'this worker lost the job\'s lease; another worker may run it' },
  shutdown: { name: 'ShutdownError', message: 'the worker is shutting down; the job goes back to the queue' },
};

const MESSAGE_MAX = 2_000;
const STACK_MAX = 8_000;

/** One attempt in progress. */
export interface Execution {
  readonly id: string;
  readonly attempt: number;
  readonly kind: string;
  readonly queue: string;
  /** Resolves once the attempt has an outcome (or was abandoned). */
  readonly done: Promise<void>;
  /** Aborts the handler's signal; after the grace period it is abandoned. */
  abort(cause: AbortCause): void;
  /** Gives up on the handler now (shutdown after its grace). */
  abandon(cause: AbortCause): void;
  /** The job's logger (job_id, kind, queue, attempt, worker_id, trace_id). */
  readonly log: Logger;
}

export interface ExecuteOptions {
  row: ClaimedRow;
  definition: AnyJobDefinition;
  /** The worker's logger (it binds worker_id). */
  log: Logger;
  workerId: string;
  /** How long a handler may ignore an aborted signal before it is abandoned. */
  abandonAfterMs: number;
  /** Include the payload in the debug line of a starting job. */
  logPayloads?: boolean;
  /** The worker's default for kinds whose definition does not set removeOnComplete. */
  removeOnComplete: boolean;
  context: Pick<JobContext, 'spool'> & { progress: (id: string, attempt: number, value: unknown) => Promise<void> };
  /** The outcome to write, or null when nothing may be written (lease lost). */
  report: (outcome: Outcome | null, info: { abandoned: boolean; cause: AbortCause | undefined; ms: number }) => void;
}

/**
 * Runs one claimed attempt: validates the payload with the kind's schema,
 * calls the handler with an AbortSignal, enforces the timeout, and turns
 * what happened into an outcome for the completer. A handler that ignores
 * its aborted signal past the grace period is abandoned: its slot is freed
 * and the outcome written as if it had stopped.
 */
export function execute(options: ExecuteOptions): Execution {
  const { row, definition, workerId } = options;
  // The signal and the child logger are made on first use: most no-op-ish
  // handlers touch neither, and at tens of thousands of jobs/s it shows.
  let controller: AbortController | undefined;
  let abortReason: Error | undefined;
  let log: Logger | undefined;
  const signal = () => {
    controller ??= new AbortController();
    if (abortReason && !controller.signal.aborted) controller.abort(abortReason);
    return controller.signal;
  };
  // The consumer span, child of the trace the job was enqueued in; none when tracing is off.
  const traced = startJobSpan({
    id: row.id,
    kind: row.kind,
    queue: row.queue,
    attempt: row.attempt,
    maxAttempts: row.max_attempts,
    metadata: row.metadata,
    workerId,
  });
  const logger = () =>
    (log ??= options.log.child({
      job_id: row.id,
      kind: row.kind,
      queue: row.queue,
      attempt: row.attempt,
      // worker_id comes from the worker's logger (a second binding would repeat the key).
      ...traceLogFields(traced?.span, row.metadata),
    }));
  if (options.log.isLevelEnabled('debug')) {
    logger().debug(options.logPayloads ? { payload: row.payload } : {}, 'job started');
  }
  const started = performance.now();
  const timeoutMs = row.timeout_ms ?? definition.timeoutMs;
  let cause: AbortCause | undefined;
  let timeoutTimer: NodeJS.Timeout | undefined;
  let graceTimer: NodeJS.Timeout | undefined;
  // The attempt ends once, by whichever comes first: the handler settles, or it is
  // abandoned. A flag and a callback instead of Promise.race over an "abandoned"
  // promise: per job that was four promises and their closures, and the drain
  // benchmark's worker spent 31 % of its CPU in the garbage collector.
  let settled = false;
  let done: Promise<void> | undefined;
  let resolveDone: (() => void) | undefined;
  const settle = (outcome: Outcome | null, wasAbandoned: boolean) => {
    if (settled) return;
    settled = true;
    clearTimeout(timeoutTimer);
    clearTimeout(graceTimer);
    const ms = performance.now() - started;
    if (outcome === null || outcome.outcome !== 'completed' || options.log.isLevelEnabled('debug')) logOutcome(outcome, ms);
    if (traced) endJobSpan(traced.span, outcome?.outcome ?? 'lease_lost', outcome?.error);
    options.report(outcome, { abandoned: wasAbandoned, cause, ms });
    resolveDone?.();
  };
  const giveUp = () => settle(abortedOutcome(cause ?? 'shutdown', true), true);

  const abort = (why: AbortCause) => {
    if (cause || settled) return;
    cause = why;
    const { name, message } = ABORT_ERRORS[why];
    abortReason = Object.assign(new Error(why === 'timeout' ? `${message} after ${timeoutMs} ms` : message), { name });
    controller?.abort(abortReason);
    graceTimer = setTimeout(giveUp, options.abandonAfterMs);
  };

  const abandon = (why: AbortCause) => {
    abort(why);
    giveUp();
  };

  const succeeded = (result: unknown) => settle(cause === 'lease' ? null : completedOutcome(result), false);
  const threw = (error: unknown) => settle(cause ? abortedOutcome(cause, false, error) : failedOutcome(error), false);

  if (timeoutMs) timeoutTimer = setTimeout(() => abort('timeout'), timeoutMs);
  // Started on the next microtask, so the caller has registered the execution before any outcome.
  queueMicrotask(() => {
    if (settled) return;
    try {
      const parsed = definition.schema.safeParse(row.payload);
      if (!parsed.success) {
        const detail = parsed.error.issues.map((i: { path: PropertyKey[]; message: string }) => `${['payload', ...i.path.map(String)].join('.')}: ${i.message}`).join('; ');
        throw new PermanentError(`payload does not match the schema of ${row.kind}: ${detail}`);
      }
      const context: JobContext = {
        job: {
          id: row.id,
          kind: row.kind,
          queue: row.queue,
          attempt: row.attempt,
          maxAttempts: row.max_attempts,
          metadata: row.metadata,
          createdAt: row.created_at,
        },
        get signal() {
          return signal();
        },
        get log() {
          return logger();
        },
        progress: (value) => options.context.progress(row.id, row.attempt, value),
        spool: options.context.spool,
      };
      const result: unknown = traced
        ? runInContext(traced.context, () => definition.handler!(parsed.data, context))
        : definition.handler!(parsed.data, context);
      if (result !== null && typeof result === 'object' && typeof (result as PromiseLike<unknown>).then === 'function') {
        (result as PromiseLike<unknown>).then(succeeded, threw);
      } else {
        succeeded(result);
      }
    } catch (error) {
      threw(error);
    }
  });

  /** The worker's line about how the attempt ended (completed ones only at debug). */
  function logOutcome(outcome: Outcome | null, ms: number): void {
    const duration_ms = Math.round(ms * 1000) / 1000;
    if (outcome === null) {
      logger().warn({ duration_ms }, 'attempt ended after the lease was lost: its outcome is not written');
      return;
    }
    switch (outcome.outcome) {
      case 'completed':
        logger().debug({ duration_ms }, 'job completed');
        break;
      case 'failed':
        if (row.attempt >= row.max_attempts) {
          logger().error({ duration_ms, error: outcome.error?.message, max_attempts: row.max_attempts }, 'attempt failed and none are left: job is dead');
        } else {
          logger().warn({ duration_ms, error: outcome.error?.message, retry_in_ms: outcome.delay_ms }, 'attempt failed; will retry');
        }
        break;
      case 'dead':
        logger().error({ duration_ms, error: outcome.error?.message }, 'permanent error: job is dead');
        break;
      case 'cancelled':
        logger().info({ duration_ms }, 'job cancelled');
        break;
      case 'released':
        logger().info({ duration_ms }, 'shutdown: job handed back to the queue, attempt not used');
        break;
    }
  }

  function completedOutcome(result: unknown): Outcome {
    // The row is deleted: its result is not stored, so it need not be JSON.
    if (definition.removeOnComplete ?? options.removeOnComplete) return { id: row.id, attempt: row.attempt, outcome: 'completed', remove: true };
    const value = result === undefined ? null : result;
    try {
      JSON.stringify(value);
    } catch (error) {
      return failedOutcome(new Error(`the handler's result is not JSON-serialisable: ${(error as Error).message}`));
    }
    return { id: row.id, attempt: row.attempt, outcome: 'completed', result: value };
  }

  function failedOutcome(error: unknown): Outcome {
    const permanent = error instanceof PermanentError || (error as { name?: string } | null)?.name === 'PermanentError';
    return {
      id: row.id,
      attempt: row.attempt,
      outcome: permanent ? 'dead' : 'failed',
      error: describe(error),
      delay_ms: permanent ? 0 : backoffDelay(definition.backoff, row.attempt),
    };
  }

  function abortedOutcome(why: AbortCause, wasAbandoned: boolean, error?: unknown): Outcome | null {
    switch (why) {
      case 'lease':
        return null;
      case 'shutdown':
        return { id: row.id, attempt: row.attempt, outcome: 'released' };
      case 'cancel':
        return { id: row.id, attempt: row.attempt, outcome: 'cancelled' };
      case 'timeout': {
        const suffix = wasAbandoned ? `; the handler ignored the abort signal for ${options.abandonAfterMs} ms and was abandoned` : '';
        return {
          id: row.id,
          attempt: row.attempt,
          outcome: 'failed',
          error: { ...describe(error), message: `timed out after ${timeoutMs} ms${suffix}`, timeout: true },
          delay_ms: backoffDelay(definition.backoff, row.attempt),
        };
      }
    }
  }

  return {
    id: row.id,
    attempt: row.attempt,
    kind: row.kind,
    queue: row.queue,
    get done() {
      return (done ??= settled ? Promise.resolve() : new Promise<void>((resolve) => (resolveDone = resolve)));
    },
    abort,
    abandon,
    get log() {
      return logger();
    },
  };
}

function describe(error: unknown): { message: string; stack?: string } {
  if (error instanceof Error) {
    const described: { message: string; stack?: string } = { message: `${error.name}: ${error.message}`.slice(0, MESSAGE_MAX) };
    if (error.stack) described.stack = error.stack.slice(0, STACK_MAX);
    return described;
  }
  return { message: String(error).slice(0, MESSAGE_MAX) };
}
