import type { Executor } from '../db/executor.js';
import { storageHealthSql, type StorageHealthRow } from '../queries/health.js';

/** A transaction holding back cleanup this long is a warning (5 min). */
export const XMIN_WARN_SECONDS_DEFAULT = 300;

/** What `spool doctor`, `spool.doctor()` and the storage gauges report. */
export interface DoctorReport {
  hot: {
    bytes: number;
    liveRows: number;
    deadRows: number;
    /** Finished rows still in the hot table (from before the history layout; the pruner moves them). Counted up to 100,000. */
    finishedRows: number;
    lastVacuum: Date | null;
    lastAutovacuum: Date | null;
    lastAnalyze: Date | null;
    lastAutoanalyze: Date | null;
  };
  history: { bytes: number; rows: number; partitions: number; defaultPartitionRows: number; nextDrop: string | null; nextDropAt: Date | null; missingPartitions: string[] };
  autovacuum: boolean;
  /** The session whose snapshot holds back the cleanup of dead rows the longest, if any. */
  oldestSnapshot: { pid: number; state: string | null; backend: string | null; ageSeconds: number; xids: number; query: string | null } | null;
  /** Plain-language problems, each with what to do. Empty when all is well. */
  warnings: string[];
}

/** Reads the storage's health and says what is wrong in plain words. */
export async function doctor(executor: Executor, schema: string, q: string, options: { xminWarnSeconds?: number } = {}): Promise<DoctorReport> {
  const [row] = await executor.query<StorageHealthRow>(storageHealthSql(q), [schema]);
  if (!row) throw new Error(`no statistics for ${schema}.jobs: is the schema migrated?`);
  const report: DoctorReport = {
    hot: {
      bytes: Number(row.hot_bytes),
      liveRows: Number(row.hot_live_rows),
      deadRows: Number(row.hot_dead_rows),
      finishedRows: row.hot_finished_rows,
      lastVacuum: row.last_vacuum,
      lastAutovacuum: row.last_autovacuum,
      lastAnalyze: row.last_analyze,
      lastAutoanalyze: row.last_autoanalyze,
    },
    history: {
      bytes: Number(row.history_bytes),
      rows: Number(row.history_rows),
      partitions: row.history_partitions,
      defaultPartitionRows: Number(row.history_default_rows),
      nextDrop: row.next_drop,
      nextDropAt: row.next_drop_at,
      missingPartitions: row.missing_partitions,
    },
    autovacuum: row.autovacuum,
    oldestSnapshot:
      row.xmin_pid === null
        ? null
        : { pid: row.xmin_pid, state: row.xmin_state, backend: row.xmin_backend, ageSeconds: row.xmin_age_s ?? 0, xids: Number(row.xmin_xids ?? 0), query: row.xmin_query },
    warnings: [],
  };
  const warn = (text: string) => report.warnings.push(text);
  const xminWarn = options.xminWarnSeconds ?? XMIN_WARN_SECONDS_DEFAULT;
  const s = report.oldestSnapshot;
  if (s && s.ageSeconds >= xminWarn) {
    warn(
      `session ${s.pid} (${s.backend ?? 'backend'}, ${s.state ?? 'unknown state'}) has held a snapshot for ${Math.round(s.ageSeconds)} s, so no dead row newer than it can be cleaned, in any table: the hot table grows and the claim slows. End the transaction (or SELECT pg_terminate_backend(${s.pid})); its last statement: ${JSON.stringify(s.query ?? '')}`,
    );
  }
  if (!row.autovacuum_server) {
    warn('autovacuum is off on this server: the hot table\'s dead rows (one per finished job) are never cleaned and the claim slows as they pile up. Turn it on (autovacuum = on in postgresql.conf, then SELECT pg_reload_conf()).');
  } else if (!row.autovacuum) {
    warn('autovacuum is disabled for the hot table (autovacuum_enabled = false): ALTER TABLE jobs RESET (autovacuum_enabled).');
  }
  if (report.history.missingPartitions.length > 0) {
    warn(`history partitions for today or tomorrow are missing (${report.history.missingPartitions.join(', ')}): finished jobs go to the default partitions. Is a worker (the maintenance leader) running? spool prune creates them.`);
  }
  if (report.history.defaultPartitionRows > 0) {
    warn(`about ${report.history.defaultPartitionRows} history rows are in default partitions (their day's partition was missing); they are deleted in batches when they expire`);
  }
  if (report.hot.finishedRows > 0) {
    warn(`${report.hot.finishedRows >= 100_000 ? 'at least 100,000' : report.hot.finishedRows} finished rows are still in the hot table (from before the history layout): the leader's pruner moves them; spool prune moves 100,000 now`);
  }
  if (report.hot.deadRows > 10_000 && report.hot.deadRows > 2 * report.hot.liveRows) {
    warn(`the hot table has ${report.hot.deadRows} dead rows for ${report.hot.liveRows} live ones: vacuum is behind (check the snapshot holder above, and autovacuum)`);
  }
  return report;
}
