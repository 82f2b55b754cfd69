/**
 * Transitions requested by people (API, CLI, library), not by workers.
 * Each names the states it may start from in its WHERE and returns the
 * changed row, so a job that moved on meanwhile is left alone.
 * Locks: the one job row. Index: the primary key.
 */
import { archiveSql, JOB_COLUMNS, restoreSql } from './history.js';
import { historyEventSql } from './events.js';

/** States a job can be cancelled from. */
export const CANCELLABLE_STATES = ['scheduled', 'available', 'running'] as const;
/** States a job can be retried (replayed) from. */
export const RETRYABLE_STATES = ['completed', 'dead', 'cancelled'] as const;

/**
 * Cancel: a scheduled or available job becomes cancelled at once and moves
 * to job_history. A running job keeps running until its worker sees the
 * request: cancel_requested_at is set and the owning worker is told on the
 * NOTIFY channel; it aborts the handler's signal and records `cancelled`.
 * Returns the job as it now is. $1 job id, $2 channel, $3 tenant (null: any).
 */
export function cancelSql(q: string): string {
  const history = historyEventSql(q, 'SELECT 1 FROM moved');
  return `
WITH flagged AS (
  UPDATE ${q}.jobs
     SET cancel_requested_at = coalesce(cancel_requested_at, now())
   WHERE id = $1::bigint AND state = 'running' AND ($3::text IS NULL OR tenant = $3)
  RETURNING *
), moved AS (
  DELETE FROM ${q}.jobs WHERE id = $1::bigint AND state IN ('scheduled', 'available') AND ($3::text IS NULL OR tenant = $3) RETURNING *
), ${history.before}, archived AS (
  ${archiveSql(q, 'moved', { state: `'cancelled'`, finished_at: 'now()', cancel_requested_at: 'coalesce(moved.cancel_requested_at, now())' }, 'true', history.eventSeq)}
  RETURNING ${JOB_COLUMNS.join(', ')}
), ${history.after}
SELECT flagged.*, (SELECT true FROM pg_notify($2::text, json_build_object('cancel', json_build_array(flagged.id::text))::text)) AS notified
  FROM flagged
UNION ALL
SELECT archived.*, NULL FROM archived`;
}

/**
 * Retry (replay): a finished job moves back from job_history into the hot
 * table, available now, with at least one attempt left (max_attempts is
 * raised to attempt + 1 if it was used up); its errors stay as history; a
 * finished row still in the hot table from before the upgrade (sql/0005)
 * is updated in place. The same id, so its history follows it. Wakes the
 * queue's workers. A unique key held meanwhile by another unfinished job
 * fails the INSERT (23505), and the job stays in history.
 * $1 job id, $2 channel, $3 tenant (null: any).
 */
export function retrySql(q: string): string {
  const fresh = { state: `'available'`, run_at: 'now()', finished_at: 'NULL', lease_expires_at: 'NULL', worker_id: 'NULL', result: 'NULL', cancel_requested_at: 'NULL' };
  return `
WITH moved AS (
  DELETE FROM ${q}.job_history WHERE id = $1::bigint AND ($3::text IS NULL OR tenant = $3) RETURNING *
), restored AS (
  ${restoreSql(q, 'moved', { ...fresh, max_attempts: 'greatest(moved.max_attempts, moved.attempt + 1)' }, '*')}
), legacy AS (
  UPDATE ${q}.jobs
     SET state = 'available', run_at = now(), max_attempts = greatest(max_attempts, attempt + 1), finished_at = NULL,
         lease_expires_at = NULL, worker_id = NULL, result = NULL, cancel_requested_at = NULL
   WHERE id = $1::bigint AND state IN ('completed', 'dead', 'cancelled') AND ($3::text IS NULL OR tenant = $3)
  RETURNING *
), changed AS (
  SELECT * FROM restored UNION ALL SELECT * FROM legacy
)
SELECT changed.*,
       (SELECT true FROM pg_notify($2::text, json_build_object('queues', json_build_array(changed.queue), 'scheduled', false)::text)) AS notified
  FROM changed`;
}

/** One job by id, hot or finished, of tenant $2 (null: any). $1 job id. Index: the primary key and each history partition's id index. */
export function getJobSql(q: string): string {
  // LIMIT 1: a hot job is found in the first half of the union, and the history partitions are not probed.
  return `SELECT * FROM ${q}.all_jobs WHERE id = $1::bigint AND ($2::text IS NULL OR tenant = $2) LIMIT 1`;
}
