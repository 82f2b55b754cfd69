import type { Executor } from '../db/executor.js';
import { promoteSql } from '../queries/maintenance.js';
import type { Logger } from '../observability/logger.js';
import { Service } from './service.js';

export const PROMOTE_BATCH_DEFAULT = 1_000;

/**
 * Moves due `scheduled` jobs to `available` in batches and wakes their
 * workers. Sleeps until the next job is due (asked of the database, so host
 * clocks do not matter), at most `intervalMs`; a NOTIFY about newly
 * scheduled jobs wakes it early (`trigger()`).
 */
export class Promoter extends Service {
  /** Jobs promoted since start. */
  promoted = 0;
  readonly #executor: Executor;
  readonly #sql: string;
  readonly #channel: string;
  readonly #batch: number;

  constructor(options: { executor: Executor; quotedSchema: string; channel: string; intervalMs: number; batch?: number; log: Logger }) {
    super('promoter', { intervalMs: options.intervalMs, log: options.log });
    this.#executor = options.executor;
    this.#sql = promoteSql(options.quotedSchema);
    this.#channel = options.channel;
    this.#batch = options.batch ?? PROMOTE_BATCH_DEFAULT;
  }

  protected async runOnce(): Promise<number | undefined> {
    const [row] = await this.#executor.query<{ promoted: number; next_due_in_ms: number | null }>(this.#sql, [this.#batch, this.#channel]);
    const promoted = row?.promoted ?? 0;
    this.promoted += promoted;
    if (promoted > 0) this.log.debug({ promoted }, 'promoted due jobs');
    if (promoted >= this.#batch) return 0; // More are due.
    const next = row?.next_due_in_ms;
    // Wake a little after the due time; never sleep past the interval.
    return next === null || next === undefined ? undefined : Math.min(Math.max(0, Math.ceil(next) + 1), this.intervalMs);
  }
}
