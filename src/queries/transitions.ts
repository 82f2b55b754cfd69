/**
 * Transitions requested by people (API, CLI, library), not by workers.
 * Each names the states it may start from in its WHERE and returns the
 * changed row, so a job that moved on meanwhile is left alone.
 * Locks: the one job row. Index: the primary key.
 */

/** States a job can be cancelled from. */
export const CANCELLABLE_STATES = ['scheduled', 'available', 'running'] as const;
/** States a job can be retried (replayed) from. */
export const RETRYABLE_STATES = ['completed', 'dead', 'cancelled'] as const;

/**
 * Cancel: scheduled/available jobs become cancelled at once. A running job
 * keeps running until its worker sees the request: cancel_requested_at is
 * set and the owning worker is told on the NOTIFY channel; it aborts the
 * handler's signal and records `cancelled`.
 * $1 job id, $2 channel.
 */
export function cancelSql(quotedSchema: string): string {
  return `
WITH changed AS (
  UPDATE ${quotedSchema}.jobs
     SET state = CASE WHEN state = 'running' THEN state ELSE 'cancelled' END,
         finished_at = CASE WHEN state = 'running' THEN NULL ELSE now() END,
         cancel_requested_at = coalesce(cancel_requested_at, now())
   WHERE id = $1::bigint
     AND state IN ('scheduled', 'available', 'running')
  RETURNING *
)
SELECT changed.*,
       (SELECT true FROM pg_notify($2::text, json_build_object('cancel', json_build_array(changed.id::text))::text)
         WHERE changed.state = 'running') AS notified
  FROM changed`;
}

/**
 * Retry (replay): a finished job becomes available now, with at least one
 * attempt left (max_attempts is raised to attempt + 1 if it was used up);
 * its errors stay as history. Wakes the queue's workers.
 * $1 job id, $2 channel.
 */
export function retrySql(quotedSchema: string): string {
  return `
WITH changed AS (
  UPDATE ${quotedSchema}.jobs
     SET state = 'available',
         run_at = now(),
         max_attempts = greatest(max_attempts, attempt + 1),
         finished_at = NULL,
         lease_expires_at = NULL,
         worker_id = NULL,
         result = NULL,
         cancel_requested_at = NULL
   WHERE id = $1::bigint
     AND state IN ('completed', 'dead', 'cancelled')
  RETURNING *
)
SELECT changed.*,
       (SELECT true FROM pg_notify($2::text, json_build_object('queues', json_build_array(changed.queue), 'scheduled', false)::text)) AS notified
  FROM changed`;
}

/** One job by id. $1 job id. */
export function getJobSql(quotedSchema: string): string {
  return `SELECT * FROM ${quotedSchema}.jobs WHERE id = $1::bigint`;
}
