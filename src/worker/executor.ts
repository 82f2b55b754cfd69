import { PermanentError } from '../errors.js';
import { SIGNATURE_FIELD, SignatureError, type Signer } from '../signing.js';
import type { AnyJobDefinition, JobContext } from '../job.js';
import type { Logger } from '../observability/logger.js';
import type { ClaimedRow } from '../queries/claim.js';
import type { Outcome } from '../queries/finish.js';
import { backoffDelay } from './backoff.js';
import type { Context, Span } from '@opentelemetry/api';
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
  /** Resolves once the attempt has an outcome (or was abandoned). */
  readonly done: Promise<void>;
  /** Aborts the handler's signal; after the grace period it is abandoned. */
  abort(cause: AbortCause): void;
  /** Gives up on the handler now (shutdown after its grace). */
  abandon(cause: AbortCause): void;
  /** The job's logger (job_id, kind, queue, attempt, worker_id, trace_id). */
  readonly log: Logger;
  /** The claimed row it runs. */
  readonly row: ClaimedRow;
}

/**
 * What every attempt of one worker shares: made once per worker, not per
 * job (`debug` and `traced` are refreshed per claim batch).
 */
export interface AttemptSettings {
  /** The worker's logger (it binds worker_id). */
  log: Logger;
  workerId: string;
  /** How long a handler may ignore an aborted signal before it is abandoned. */
  abandonAfterMs: number;
  /** Include the payload in the debug line of a starting job. */
  logPayloads: boolean;
  /** Whether the log level is debug or finer. */
  debug: boolean;
  /** Whether an OpenTelemetry SDK is registered: each attempt gets a span. */
  traced: boolean;
  /** The worker's default for kinds whose definition does not set removeOnComplete. */
  removeOnComplete: boolean;
  context: Pick<JobContext, 'spool'> & { progress: (id: string, attempt: number, value: unknown) => Promise<void> };
  /** The outcome to write, or null when nothing may be written (lease lost). */
  report: (execution: Execution, outcome: Outcome | null, info: { abandoned: boolean; cause: AbortCause | undefined; ms: number }) => void;
  /** Verifies signed kinds' payloads (docs/security.md, "Signed payloads"). */
  signer: Signer;
  /** A claimed job's tenant, which its signature covers. */
  tenantOf: (id: string) => Promise<string | null>;
}

/**
 * Runs one claimed attempt: validates the payload with the kind's schema,
 * calls the handler with an AbortSignal, enforces the timeout, and turns
 * what happened into an outcome for the completer. A handler that ignores
 * its aborted signal past the grace period is abandoned: its slot is freed
 * and the outcome written as if it had stopped.
 */
export function execute(row: ClaimedRow, definition: AnyJobDefinition, settings: AttemptSettings): Execution {
  return new Attempt(row, definition, settings);
}

/**
 * One attempt as one object. A class, not closures: at tens of thousands of
 * jobs per second, the fifteen closures per job of the earlier version were
 * a large share of the worker's garbage-collection time.
 */
class Attempt implements Execution {
  readonly #options: AttemptSettings;
  readonly row: ClaimedRow;
  /** What the handler sees as `ctx.job`. */
  readonly job: JobContext['job'];
  readonly #definition: AnyJobDefinition;
  readonly #started: number;
  readonly #timeoutMs: number | undefined;
  /** The consumer span, child of the trace the job was enqueued in; none when tracing is off. */
  readonly #traced: { span: Span; context: Context } | undefined;
  // The signal and the child logger are made on first use: most no-op-ish
  // handlers touch neither, and at tens of thousands of jobs/s it shows.
  #controller: AbortController | undefined;
  #abortReason: Error | undefined;
  #log: Logger | undefined;
  #cause: AbortCause | undefined;
  #timeoutTimer: NodeJS.Timeout | undefined;
  #graceTimer: NodeJS.Timeout | undefined;
  // The attempt ends once, by whichever comes first: the handler settles, or it is
  // abandoned. A flag instead of Promise.race over an "abandoned" promise: per job
  // that was four promises, and the worker spent 31 % of its CPU in the GC.
  #settled = false;
  #done: Promise<void> | undefined;
  #resolveDone: (() => void) | undefined;

  constructor(row: ClaimedRow, definition: AnyJobDefinition, options: AttemptSettings) {
    this.#options = options;
    this.row = row;
    this.#definition = definition;
    this.job = {
      id: row.id,
      kind: row.kind,
      queue: row.queue,
      attempt: row.attempt,
      maxAttempts: row.max_attempts,
      metadata: row.metadata,
      createdAt: new Date(row.created_at_ms),
    };
    this.#traced = options.traced ? startJobSpan(this.job, options.workerId) : undefined;
    if (options.debug) this.log.debug(options.logPayloads ? { payload: row.payload } : {}, 'job started');
    this.#started = performance.now();
    this.#timeoutMs = row.timeout_ms ?? definition.timeoutMs;
    if (this.#timeoutMs) this.#timeoutTimer = setTimeout(() => this.abort('timeout'), this.#timeoutMs);
    // Started on the next microtask, so the caller has registered the execution before any outcome.
    queueMicrotask(() => this.#run());
  }

  get done(): Promise<void> {
    return (this.#done ??= this.#settled ? Promise.resolve() : new Promise<void>((resolve) => (this.#resolveDone = resolve)));
  }

  /**
   * The job's logger: job_id, kind, queue, attempt, the trace ids, the
   * request_id of the HTTP request that enqueued it (metadata.request_id),
   * and the worker's worker_id.
   */
  get log(): Logger {
    const row = this.row;
    const requestId = row.metadata.request_id;
    return (this.#log ??= this.#options.log.child({
      job_id: row.id,
      kind: row.kind,
      queue: row.queue,
      attempt: row.attempt,
      ...(typeof requestId === 'string' ? { request_id: requestId } : {}),
      // worker_id comes from the worker's logger (a second binding would repeat the key).
      ...traceLogFields(this.#traced?.span, row.metadata),
    }));
  }

  /** The handler's signal, aborted already if the attempt was. */
  get signal(): AbortSignal {
    this.#controller ??= new AbortController();
    if (this.#abortReason && !this.#controller.signal.aborted) this.#controller.abort(this.#abortReason);
    return this.#controller.signal;
  }

  abort(why: AbortCause): void {
    if (this.#cause || this.#settled) return;
    this.#cause = why;
    const { name, message } = ABORT_ERRORS[why];
    this.#abortReason = Object.assign(new Error(why === 'timeout' ? `${message} after ${this.#timeoutMs} ms` : message), { name });
    this.#controller?.abort(this.#abortReason);
    this.#graceTimer = setTimeout(() => this.#giveUp(), this.#options.abandonAfterMs);
  }

  abandon(why: AbortCause): void {
    this.abort(why);
    this.#giveUp();
  }

  /** The handler returned (or its promise resolved). */
  #succeeded(result: unknown): void {
    this.#settle(this.#cause === 'lease' ? null : this.#completedOutcome(result), false);
  }

  /** The handler threw (or its promise rejected). */
  #threw(error: unknown): void {
    this.#settle(this.#cause ? this.#abortedOutcome(this.#cause, false, error) : this.#failedOutcome(error), false);
  }

  #run(): void {
    if (this.#settled) return;
    const signing = this.#definition.signing;
    if (signing) {
      // Before anything of the job's is trusted: a missing or bad signature is dead, the handler never called.
      this.#options.tenantOf(this.row.id).then(
        (tenant) => {
          try {
            this.#options.signer.verify(this.row.metadata?.[SIGNATURE_FIELD], this.row.kind, tenant, this.row.payload);
          } catch (error) {
            return this.#threw(error);
          }
          this.#runVerified();
        },
        (error: unknown) => this.#threw(error),
      );
      return;
    }
    this.#runVerified();
  }

  #runVerified(): void {
    if (this.#settled) return;
    const row = this.row;
    try {
      const parsed = this.#definition.schema.safeParse(row.payload);
      if (!parsed.success) {
        const detail = parsed.error.issues.map((i: { path: PropertyKey[]; message: string }) => `${['payload', ...i.path.map(String)].join('.')}: ${i.message}`).join('; ');
        throw new PermanentError(`payload does not match the schema of ${row.kind}: ${detail}`);
      }
      const context = new AttemptContext(this, this.#options.context);
      const handler = this.#definition.handler!;
      const traced = this.#traced;
      const result: unknown = traced ? runInContext(traced.context, () => handler(parsed.data, context)) : handler(parsed.data, context);
      if (result !== null && typeof result === 'object' && typeof (result as PromiseLike<unknown>).then === 'function') {
        (result as PromiseLike<unknown>).then(
          (value) => this.#succeeded(value),
          (error: unknown) => this.#threw(error),
        );
      } else {
        this.#succeeded(result);
      }
    } catch (error) {
      this.#threw(error);
    }
  }

  #giveUp(): void {
    this.#settle(this.#abortedOutcome(this.#cause ?? 'shutdown', true), true);
  }

  #settle(outcome: Outcome | null, wasAbandoned: boolean): void {
    if (this.#settled) return;
    this.#settled = true;
    clearTimeout(this.#timeoutTimer);
    clearTimeout(this.#graceTimer);
    const ms = performance.now() - this.#started;
    if (outcome === null || outcome.outcome !== 'completed' || this.#options.debug) this.#logOutcome(outcome, ms);
    if (this.#traced) endJobSpan(this.#traced.span, outcome?.outcome ?? 'lease_lost', outcome?.error);
    this.#options.report(this, outcome, { abandoned: wasAbandoned, cause: this.#cause, ms });
    this.#resolveDone?.();
  }

  /** The worker's line about how the attempt ended (completed ones only at debug). */
  #logOutcome(outcome: Outcome | null, ms: number): void {
    const duration_ms = Math.round(ms * 1000) / 1000;
    const row = this.row;
    if (outcome === null) {
      this.log.warn({ duration_ms }, 'attempt ended after the lease was lost: its outcome is not written');
      return;
    }
    switch (outcome.outcome) {
      case 'completed':
        this.log.debug({ duration_ms }, 'job completed');
        break;
      case 'failed':
        if (row.attempt >= row.max_attempts) {
          this.log.error({ duration_ms, error: outcome.error?.message, max_attempts: row.max_attempts }, 'attempt failed and none are left: job is dead');
        } else {
          this.log.warn({ duration_ms, error: outcome.error?.message, retry_in_ms: outcome.delay_ms }, 'attempt failed; will retry');
        }
        break;
      case 'dead':
        this.log.error({ duration_ms, error: outcome.error?.message }, 'permanent error: job is dead');
        break;
      case 'cancelled':
        this.log.info({ duration_ms }, 'job cancelled');
        break;
      case 'released':
        this.log.info({ duration_ms }, 'shutdown: job handed back to the queue, attempt not used');
        break;
    }
  }

  #completedOutcome(result: unknown): Outcome {
    const row = this.row;
    // The row is deleted: its result is not stored, so it need not be JSON.
    if (this.#definition.removeOnComplete ?? this.#options.removeOnComplete) return { id: row.id, attempt: row.attempt, outcome: 'completed', remove: true };
    const value = result === undefined ? null : result;
    try {
      JSON.stringify(value);
    } catch (error) {
      return this.#failedOutcome(new Error(`the handler's result is not JSON-serialisable: ${(error as Error).message}`));
    }
    return { id: row.id, attempt: row.attempt, outcome: 'completed', result: value };
  }

  #failedOutcome(error: unknown): Outcome {
    const row = this.row;
    const permanent = error instanceof PermanentError || (error as { name?: string } | null)?.name === 'PermanentError';
    return {
      id: row.id,
      attempt: row.attempt,
      outcome: permanent ? 'dead' : 'failed',
      error: describe(error),
      delay_ms: permanent ? 0 : backoffDelay(this.#definition.backoff, row.attempt),
    };
  }

  #abortedOutcome(why: AbortCause, wasAbandoned: boolean, error?: unknown): Outcome | null {
    const row = this.row;
    switch (why) {
      case 'lease':
        return null;
      case 'shutdown':
        return { id: row.id, attempt: row.attempt, outcome: 'released' };
      case 'cancel':
        return { id: row.id, attempt: row.attempt, outcome: 'cancelled' };
      case 'timeout': {
        const suffix = wasAbandoned ? `; the handler ignored the abort signal for ${this.#options.abandonAfterMs} ms and was abandoned` : '';
        return {
          id: row.id,
          attempt: row.attempt,
          outcome: 'failed',
          error: { ...describe(error), message: `timed out after ${this.#timeoutMs} ms${suffix}`, timeout: true },
          delay_ms: backoffDelay(this.#definition.backoff, row.attempt),
        };
      }
    }
  }
}

/**
 * The handler's `ctx`. Getters on the prototype, so a job that never reads
 * its signal or logger makes neither; destructuring (`const { signal, log,
 * progress } = ctx`) still works, since each getter returns a value that
 * does not need `this`.
 */
class AttemptContext implements JobContext {
  readonly job: JobContext['job'];
  readonly spool: JobContext['spool'];
  readonly #attempt: Attempt;
  readonly #progress: AttemptSettings['context']['progress'];

  constructor(attempt: Attempt, context: AttemptSettings['context']) {
    this.#attempt = attempt;
    this.#progress = context.progress;
    this.spool = context.spool;
    this.job = attempt.job;
  }

  get signal(): AbortSignal {
    return this.#attempt.signal;
  }

  get log(): Logger {
    return this.#attempt.log;
  }

  get progress(): (value: unknown) => Promise<void> {
    const { id, attempt } = this.job;
    return (value: unknown) => this.#progress(id, attempt, value);
  }
}

function describe(error: unknown): { message: string; stack?: string; code?: string } {
  if (error instanceof Error) {
    const described: { message: string; stack?: string; code?: string } = { message: `${error.name}: ${error.message}`.slice(0, MESSAGE_MAX) };
    if (error.stack) described.stack = error.stack.slice(0, STACK_MAX);
    // Spool's own codes (signature_invalid) travel with the error entry, for filters and alerts.
    if (error instanceof SignatureError) described.code = error.code;
    return described;
  }
  return { message: String(error).slice(0, MESSAGE_MAX) };
}
