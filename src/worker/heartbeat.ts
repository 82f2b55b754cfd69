import { hostname } from 'node:os';
import type { Executor } from '../db/executor.js';
import { heartbeatSql } from '../queries/heartbeat.js';
import type { Logger } from '../observability/logger.js';
import { Service } from '../maintenance/service.js';

export const LEASE_MS_DEFAULT = 30_000;
export const HEARTBEAT_MS_DEFAULT = 10_000;

/**
 * One statement per interval: refreshes this worker's row and extends the
 * lease of every job it holds. Jobs missing from the answer were taken back
 * (`onLost`); jobs with a cancel request are reported (`onCancel`), as a
 * backstop for a NOTIFY the listener missed.
 */
export class Heartbeat extends Service {
  readonly #executor: Executor;
  readonly #sql: string;
  readonly #params: { workerId: string; leaseMs: number; queues: string[]; kinds: string[]; concurrency: number };
  readonly #held: () => Array<[string, number]>;
  readonly #onLost: (ids: string[]) => void;
  readonly #onCancel: (ids: string[]) => void;

  constructor(options: {
    executor: Executor;
    quotedSchema: string;
    workerId: string;
    leaseMs: number;
    intervalMs: number;
    queues: string[];
    kinds: string[];
    concurrency: number;
    log: Logger;
    held: () => Array<[string, number]>;
    onLost: (ids: string[]) => void;
    onCancel: (ids: string[]) => void;
  }) {
    super('heartbeat', { intervalMs: options.intervalMs, jitter: 0.05, log: options.log });
    this.#executor = options.executor;
    this.#sql = heartbeatSql(options.quotedSchema);
    this.#params = options;
    this.#held = options.held;
    this.#onLost = options.onLost;
    this.#onCancel = options.onCancel;
  }

  protected async runOnce(): Promise<undefined> {
    // In id order, as the completer writes outcomes: two statements that lock the same
    // rows in the same order cannot deadlock each other.
    const held = this.#held().sort(([a], [b]) => byId(a, b));
    const ids = held.map(([id]) => id);
    const p = this.#params;
    const rows = await this.#executor.query<{ id: string; cancel_requested: boolean }>(this.#sql, [
      p.workerId,
      ids,
      held.map(([, attempt]) => attempt),
      p.leaseMs,
      hostname(),
      process.pid,
      p.queues,
      p.kinds,
      p.concurrency,
    ]);
    const kept = new Set(rows.map((row) => String(row.id)));
    const lost = ids.filter((id) => !kept.has(id));
    if (lost.length > 0) this.#onLost(lost);
    const cancel = rows.filter((row) => row.cancel_requested).map((row) => String(row.id));
    if (cancel.length > 0) this.#onCancel(cancel);
    return undefined;
  }
}

/** Ascending job ids (decimal strings of bigints, so shorter is smaller). */
export function byId(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}
