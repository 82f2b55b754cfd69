import type { Executor } from '../db/executor.js';
import { forgetWorkersSql, reapSql } from '../queries/maintenance.js';
import type { Logger } from '../observability/logger.js';
import { BACKOFF_DEFAULT } from '../worker/backoff.js';
import { Service } from './service.js';

export const REAP_BATCH_DEFAULT = 1_000;

/**
 * Takes jobs back from workers that stopped heartbeating: a running job
 * whose lease expired counts as a failed attempt ("lease expired") and
 * follows the retry rules. Also forgets worker rows whose heartbeat stopped
 * three leases ago.
 */
export class Reaper extends Service {
  /** Jobs reaped since start. */
  reaped = 0;
  readonly #executor: Executor;
  readonly #statements: { reap: string; forget: string };
  readonly #channel: string;
  readonly #batch: number;
  readonly #leaseMs: number;
  readonly #onReaped: ((job: { queue: string; kind: string }) => void) | undefined;

  constructor(options: {
    executor: Executor;
    quotedSchema: string;
    channel: string;
    intervalMs: number;
    leaseMs: number;
    batch?: number;
    log: Logger;
    /** Told of each job taken back (for the rescued-jobs metric). */
    onReaped?: (job: { queue: string; kind: string }) => void;
  }) {
    super('reaper', { intervalMs: options.intervalMs, log: options.log });
    this.#executor = options.executor;
    this.#statements = { reap: reapSql(options.quotedSchema), forget: forgetWorkersSql(options.quotedSchema) };
    this.#channel = options.channel;
    this.#batch = options.batch ?? REAP_BATCH_DEFAULT;
    this.#leaseMs = options.leaseMs;
    this.#onReaped = options.onReaped;
  }

  protected async runOnce(): Promise<number | undefined> {
    const rows = await this.#executor.query<{ id: string; state: string; queue: string; kind: string; attempt: number; lost_worker: string }>(
      this.#statements.reap,
      [this.#batch, BACKOFF_DEFAULT.baseMs, BACKOFF_DEFAULT.maxMs, this.#channel],
    );
    this.reaped += rows.length;
    for (const row of rows) {
      this.log.warn(
        { job_id: row.id, kind: row.kind, attempt: row.attempt, lost_worker_id: row.lost_worker, state: row.state },
        'lease expired: job taken back',
      );
      this.#onReaped?.(row);
    }
    await this.#executor.query(this.#statements.forget, [this.#leaseMs * 3]);
    return rows.length >= this.#batch ? 0 : undefined;
  }
}
