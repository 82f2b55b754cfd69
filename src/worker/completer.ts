import type { Executor } from '../db/executor.js';
import { finishSql, type Outcome } from '../queries/finish.js';
import { byId } from './heartbeat.js';
import type { Logger } from '../observability/logger.js';

/**
 * 0: an outcome is written at once when no write is in flight, and those
 * that arrive meanwhile go together in the next write. A wait before the
 * first write (20 ms until 2026-12-08) saved nothing under load, where
 * writes follow each other anyway, and added up to its length to every
 * job's end, which a `?wait=` caller sees.
 */
export const COMPLETION_FLUSH_MS_DEFAULT = 0;
export const COMPLETION_BATCH_DEFAULT = 2_000;
/**
 * Writes in flight at once. A second starts only for a full batch: when the
 * handlers outrun one writer (no-op jobs at c50 buffered up to 17,000
 * outcomes behind a single write, and the drain's last 6–14 % was spent
 * writing them out), two writers on two connections keep up. Their batches
 * are disjoint, so they never wait on each other's rows.
 */
const WRITES_IN_FLIGHT = 2;

/**
 * A row of the finish statement: an outcome that was not a completion
 * written as asked. `state` is what its write left the job in, or null when
 * the fence refused it; a row with no id is the wake-up's, not an outcome's.
 */
interface FinishException {
  id: string | null;
  attempt: number | null;
  state: AppliedState | null;
}

/** A state a written outcome can leave its job in. */
export type AppliedState = 'completed' | 'scheduled' | 'dead' | 'cancelled' | 'available';

/** The finish statement's exceptions, by job id (an id can come twice: an old attempt and a new). */
export type FinishExceptions = ReadonlyMap<string, readonly FinishException[]>;

/** The state an outcome's write left its job in, or undefined when it was refused (stale). */
export function appliedState(exceptions: FinishExceptions, outcome: Outcome): AppliedState | undefined {
  const reported = exceptions.get(outcome.id)?.find((row) => row.attempt === outcome.attempt);
  // Unreported: a completion, written (the statement reports every other outcome).
  if (reported === undefined) return outcome.outcome === 'completed' ? 'completed' : undefined;
  return reported.state ?? undefined;
}

/**
 * Buffers the outcomes of finished attempts and writes them as one statement
 * per batch (at once when none is in flight), one write in flight at a time (two when
 * a full batch waits behind the first). A write
 * that fails is retried with backoff and nothing is dropped: until it lands,
 * the jobs stay `running` and the heartbeat keeps their leases. Outcomes the
 * database refuses (the lease was lost and the job moved on) are stale
 * writes: logged and counted, never applied.
 */
export class Completer {
  /** Outcomes applied, by resulting state; stale writes refused. */
  readonly counters = { completed: 0, scheduled: 0, dead: 0, cancelled: 0, available: 0, stale: 0, flushes: 0, errors: 0 };
  readonly #executor: Executor;
  readonly #sql: string;
  readonly #sqlWithRemovals: string;
  readonly #workerId: string;
  readonly #channel: string;
  readonly #flushMs: number;
  readonly #batch: number;
  readonly #log: Logger;
  readonly #onWritten: (outcomes: readonly Outcome[], exceptions: FinishExceptions) => void;
  #buffer: Outcome[] = [];
  #timer: NodeJS.Timeout | undefined;
  #timerDelay = 0;
  readonly #writes = new Set<Promise<void>>();
  #failures = 0;
  #draining = false;

  constructor(options: {
    executor: Executor;
    quotedSchema: string;
    workerId: string;
    channel: string;
    flushMs?: number;
    batch?: number;
    log: Logger;
    /**
     * Called with every outcome once the database answered for it, and the
     * statement's exceptions, from which `appliedState` tells each outcome's
     * resulting state.
     */
    onWritten: (outcomes: readonly Outcome[], exceptions: FinishExceptions) => void;
  }) {
    this.#executor = options.executor;
    this.#sql = finishSql(options.quotedSchema);
    this.#sqlWithRemovals = finishSql(options.quotedSchema, { removals: true });
    this.#workerId = options.workerId;
    this.#channel = options.channel;
    this.#flushMs = options.flushMs ?? COMPLETION_FLUSH_MS_DEFAULT;
    this.#batch = options.batch ?? COMPLETION_BATCH_DEFAULT;
    this.#log = options.log.child({ service: 'completer' });
    this.#onWritten = options.onWritten;
  }

  /** Outcomes not yet written. */
  get pending(): number {
    return this.#buffer.length;
  }

  push(outcome: Outcome): void {
    this.#buffer.push(outcome);
    if (this.#buffer.length >= this.#batch) this.#flushSoon(0);
    else this.#flushSoon(this.#flushMs);
  }

  /**
   * Writes everything buffered (at shutdown). If the database stays
   * unreachable it gives up after `attempts` tries with backoff: the jobs
   * keep their `running` rows, their leases expire and they run again, so
   * nothing is lost by giving up — only a rerun is risked.
   */
  async drain(attempts = 5): Promise<void> {
    this.#draining = true; // drain paces the retries itself
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (let failures = 0; this.#buffer.length > 0 || this.#writes.size > 0; ) {
      if (this.#writes.size > 0) {
        await Promise.all(this.#writes);
        continue;
      }
      const errorsBefore = this.counters.errors;
      await this.#write();
      if (this.counters.errors === errorsBefore) continue;
      if (++failures >= attempts) {
        this.#log.error(
          { outcomes: this.#buffer.length },
          'gave up writing job outcomes at shutdown; those jobs run again once their leases expire',
        );
        this.#buffer = [];
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 100 * 2 ** failures));
    }
  }

  /** Whether another write may start now: none in flight, or a full batch and room for a second writer (not while failing). */
  #mayWrite(): boolean {
    if (this.#writes.size === 0) return true;
    return this.#writes.size < WRITES_IN_FLIGHT && this.#failures === 0 && this.#buffer.length >= this.#batch;
  }

  #flushSoon(delay: number): void {
    if (!this.#mayWrite()) return; // A write in flight reschedules when it ends.
    // A pending timer that fires as soon or sooner stays: replacing it per outcome
    // (a full buffer asks for 0 ms on every push) cost a timer per job.
    if (this.#timer && (delay > 0 || this.#timerDelay === 0)) return;
    clearTimeout(this.#timer);
    this.#timerDelay = delay;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#write();
    }, delay);
  }

  #write(): Promise<void> {
    if (this.#buffer.length === 0 || !this.#mayWrite()) return Promise.resolve();
    // In id order, as the heartbeat extends leases: the same lock order (within each of the
    // finish statement's two parts, the kept and the removed rows), so they do not deadlock.
    const batch = this.#buffer.splice(0, this.#batch).sort((a, b) => byId(a.id, b.id));
    const writing: Promise<void> = this.#apply(batch).finally(() => {
      this.#writes.delete(writing);
      if (this.#buffer.length > 0 && !this.#draining) this.#flushSoon(this.#failures > 0 ? Math.min(5_000, 100 * 2 ** this.#failures) : 0);
    });
    this.#writes.add(writing);
    return writing;
  }

  async #apply(batch: Outcome[]): Promise<void> {
    let rows: FinishException[];
    try {
      // Removed completions need their own event record (they get no history row): only batches with one pay for it.
      const statement = batch.some((o) => o.remove === true) ? this.#sqlWithRemovals : this.#sql;
      rows = await this.#executor.query(statement, [JSON.stringify(batch), this.#workerId, this.#channel]);
    } catch (error) {
      // Keep them: they are written on the next try, or the lease expires and the job runs again.
      this.#failures++;
      this.counters.errors++;
      this.#buffer.unshift(...batch);
      this.#log.error({ err: error, outcomes: batch.length }, 'could not write job outcomes; will retry');
      return;
    }
    this.#failures = 0;
    this.counters.flushes++;
    const exceptions = new Map<string, FinishException[]>();
    for (const row of rows) {
      if (row.id === null) continue;
      const same = exceptions.get(row.id);
      if (same) same.push(row);
      else exceptions.set(row.id, [row]);
    }
    for (const outcome of batch) {
      const state = appliedState(exceptions, outcome);
      if (state !== undefined) {
        this.counters[state]++;
        continue;
      }
      this.counters.stale++;
      this.#log.warn(
        { job_id: outcome.id, attempt: outcome.attempt, outcome: outcome.outcome },
        'stale write refused: this worker no longer holds the job (its lease expired and it was taken back)',
      );
    }
    this.#onWritten(batch, exceptions);
  }
}
