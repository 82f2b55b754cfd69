import type { Executor } from '../db/executor.js';
import type { Logger } from '../observability/logger.js';
import {
  backfillSql,
  createPartitionsSql,
  dropPartitionSql,
  expiredPartitionsSql,
  expiredRowsSql,
  pruneBatchSql,
  retentionSql,
  type PruneScope,
} from '../queries/prune.js';
import { Service } from './service.js';

/** How often the leader keeps history in shape (60 s). */
export const PRUNE_INTERVAL_MS_DEFAULT = 60_000;
/** Days of history partitions created ahead (3). */
export const PARTITIONS_AHEAD_DEFAULT = 3;
/** Rows per batched delete or backfill move (5,000): small transactions, short locks. */
export const PRUNE_BATCH_DEFAULT = 5_000;
/** Batches per run at most (20); the rest waits for the next run. */
export const PRUNE_BATCHES_MAX_DEFAULT = 20;

/** What a prune did (or, as a dry run, would do). */
export interface PruneReport {
  dryRun: boolean;
  /** Day partitions created ahead. */
  created: string[];
  /** Finished rows moved from the hot table into history (from before the upgrade). */
  moved: number;
  /** Day partitions dropped whole, with their estimated rows; in a dry run, those that would be. */
  dropped: Array<{ partition: string; state: string; rows: number }>;
  /** Partitions that were due but whose lock was busy: dropped at a later run. */
  deferred: string[];
  /** Expired rows deleted in batches (at most 20 × 5,000 per run); in a dry run, how many are expired outside the partitions it would drop. */
  deleted: number;
  /** Audit rows past the audit retention, deleted (dry run: how many are). */
  auditDeleted: number;
  /** job_events rows past the events retention, deleted (dry run: how many are). */
  eventsDeleted: number;
  /** Retention per state, in seconds (the longest of the defaults and the queues' overrides). */
  retentionSeconds: Record<string, number>;
}

export interface PruneOptions {
  dryRun?: boolean;
  batch?: number;
  maxBatches?: number;
  partitionsAhead?: number;
  /** Skip the backfill (it has found nothing before). */
  skipBackfill?: boolean;
}

/**
 * One prune: create partitions ahead, move leftover finished rows out of
 * the hot table, drop expired day partitions, then delete what is expired
 * but cannot go by partition, in small batches (each its own transaction).
 */
export async function prune(executor: Executor, q: string, schema: string, options: PruneOptions = {}): Promise<PruneReport> {
  const dryRun = options.dryRun ?? false;
  const batch = options.batch ?? PRUNE_BATCH_DEFAULT;
  const maxBatches = options.maxBatches ?? PRUNE_BATCHES_MAX_DEFAULT;
  const report: PruneReport = { dryRun, created: [], moved: 0, dropped: [], deferred: [], deleted: 0, auditDeleted: 0, eventsDeleted: 0, retentionSeconds: {} };
  if (!dryRun) {
    const rows = await executor.query<{ name: string }>(createPartitionsSql(q), [options.partitionsAhead ?? PARTITIONS_AHEAD_DEFAULT]);
    report.created = rows.map((row) => row.name);
    if (!options.skipBackfill) {
      let after = '0';
      for (let i = 0; i < maxBatches; i++) {
        const [moved] = await executor.query<{ moved: number; last_id: string | null }>(backfillSql(q), [after, batch]);
        report.moved += moved?.moved ?? 0;
        if (!moved?.last_id || moved.moved < batch) break;
        after = moved.last_id;
      }
    }
  }
  const retention = await executor.query<{ state: string; keep_s: number; needs_batches: boolean }>(retentionSql(q), []);
  for (const row of retention) report.retentionSeconds[row.state] = row.keep_s;
  const expired = await executor.query<{ partition: string; state: string; rows: string | number }>(expiredPartitionsSql(q), [schema]);
  for (const part of expired) {
    const entry = { partition: part.partition, state: part.state, rows: Number(part.rows) };
    if (dryRun) report.dropped.push(entry);
    else if ((await executor.query<{ dropped: boolean }>(dropPartitionSql(q), [part.partition]))[0]?.dropped) report.dropped.push(entry);
    else report.deferred.push(part.partition);
  }
  // Rows in the default partitions never go by partition drop; with a retention shorter than partitions allow, no row does.
  const scope: PruneScope = retention.some((row) => row.needs_batches) ? 'all' : 'defaults';
  if (dryRun) {
    const dropping = report.dropped.map((d) => d.partition);
    report.deleted = Number((await executor.query<{ expired: string }>(expiredRowsSql(q, scope), [dropping]))[0]?.expired ?? 0);
  } else {
    for (let i = 0; i < maxBatches; i++) {
      const deleted = (await executor.query<{ deleted: number }>(pruneBatchSql(q, scope), [batch]))[0]?.deleted ?? 0;
      report.deleted += deleted;
      if (deleted < batch) break;
    }
  }
  // The audit log and the event record keep the defaults row's `audit` (sql/0010) and `events` (sql/0013) retentions.
  report.auditDeleted = await pruneByAge(executor, { table: `${q}.audit_log`, key: 'id', retention: `(SELECT audit FROM ${q}.retention WHERE queue = '*')` }, dryRun, batch, maxBatches);
  report.eventsDeleted = await pruneByAge(executor, { table: `${q}.job_events`, key: 'xid, seq', retention: `(SELECT events FROM ${q}.retention WHERE queue = '*')` }, dryRun, batch, maxBatches);
  return report;
}

/** Deletes (or, in a dry run, counts) the rows of a table older than a retention, by `at`, in batches. */
async function pruneByAge(
  executor: Executor,
  target: { table: string; key: string; retention: string },
  dryRun: boolean,
  batch: number,
  maxBatches: number,
): Promise<number> {
  const expired = `FROM ${target.table} WHERE at < now() - ${target.retention}`;
  if (dryRun) return Number((await executor.query<{ n: string }>(`SELECT count(*) AS n ${expired}`, []))[0]?.n ?? 0);
  let total = 0;
  for (let i = 0; i < maxBatches; i++) {
    const [row] = await executor.query<{ deleted: number }>(
      `WITH gone AS (DELETE FROM ${target.table} WHERE (${target.key}) IN (SELECT ${target.key} ${expired} LIMIT $1) RETURNING 1)
       SELECT count(*)::int AS deleted FROM gone`,
      [batch],
    );
    total += row?.deleted ?? 0;
    if ((row?.deleted ?? 0) < batch) break;
  }
  return total;
}

/**
 * The leader's history keeper (a maintenance service): every `intervalMs`,
 * one `prune()`. The backfill stops looking once it found nothing, and
 * looks again every hour (an older Spool in a rolling upgrade may still
 * write finished rows in place).
 */
export class Pruner extends Service {
  /** What the last run did. */
  last: PruneReport | undefined;
  readonly #executor: Executor;
  readonly #q: string;
  readonly #schema: string;
  #backfillCheckedAt = Number.NEGATIVE_INFINITY;

  constructor(options: { executor: Executor; quotedSchema: string; schema: string; intervalMs?: number; log: Logger }) {
    super('pruner', { intervalMs: options.intervalMs ?? PRUNE_INTERVAL_MS_DEFAULT, log: options.log });
    this.#executor = options.executor;
    this.#q = options.quotedSchema;
    this.#schema = options.schema;
  }

  protected async runOnce(): Promise<number | undefined> {
    const skipBackfill = performance.now() - this.#backfillCheckedAt < 3_600_000;
    const report = await prune(this.#executor, this.#q, this.#schema, { skipBackfill });
    if (!skipBackfill && report.moved === 0) this.#backfillCheckedAt = performance.now();
    this.last = report;
    if (report.created.length || report.moved || report.dropped.length || report.deferred.length || report.deleted) {
      this.log.info(
        { created: report.created, moved: report.moved, dropped: report.dropped.map((d) => d.partition), deferred: report.deferred, deleted: report.deleted },
        'history pruned',
      );
    }
    // More to move or delete than one run's batches: go again soon.
    return report.moved >= PRUNE_BATCH_DEFAULT * PRUNE_BATCHES_MAX_DEFAULT || report.deleted >= PRUNE_BATCH_DEFAULT * PRUNE_BATCHES_MAX_DEFAULT ? 1_000 : undefined;
  }
}
