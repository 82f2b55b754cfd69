import { stillRunning } from './fence.js';
import { archiveSql } from './history.js';
import { historyEventSql, recordEventsSql } from './events.js';

/**
 * Finish: the buffered outcomes of many attempts, written in one statement.
 * Each row is fenced on (id, state = 'running', worker_id, attempt): a worker
 * that lost its lease matches nothing (a stale write, reported below), and a
 * job already moved to history cannot be matched at all.
 *
 * Outcomes: completed; failed (→ scheduled with backoff, or dead when the
 * attempts are used up); dead (a permanent error); cancelled; released
 * (shutdown: back to available, the attempt not consumed). A failure of a
 * job whose cancel was requested ends cancelled. Each error is appended to
 * `errors` (the oldest dropped past 20 entries).
 * A job that ends completed, dead or cancelled leaves the hot table: its row
 * is deleted and, in the same statement, inserted into job_history with its
 * final state (a completed job with `remove` set gets no history row:
 * removeOnComplete). A retry or a release updates the row in place.
 * Wakes the promoter when a retry was scheduled and workers when a job was
 * released. Records each change (completed, dead, cancelled, retrying,
 * released) in job_events, in this statement. Locks: the finished rows. Index: the primary key; writes the
 * history day partition's heap and id index.
 *
 * `removals`: the batch has outcomes with `remove` (their completions are
 * recorded as events here, having no history row); without, the statement
 * does not look for them (a pass over every finished row saved).
 *
 * Returns only the exceptions, one row per outcome that is not a completion
 * written as asked: the state every other outcome left its job in (a
 * `failed` can end scheduled, dead or cancelled), and a null state for every
 * outcome the fence refused. A batch of completions returns no rows: the
 * server formats, and the worker parses, nothing per completed job.
 * $1 outcomes (JSON array), $2 worker id, $3 channel.
 */
export function finishSql(q: string, options: { removals?: boolean } = {}): string {
  // The next state, from the outcome and the row as it is now (inlined, not joined in a CTE
  // first: that costs a second primary-key lookup per outcome). Each half also filters on the
  // outcome alone, which the planner applies to the input before looking rows up: a completion
  // always leaves the table and a release never does, so neither probes the primary key twice
  // (the update half's probe for a batch of 1,000 completions was 2 ms of a 9 ms statement).
  const next = `(CASE
           WHEN x.outcome = 'completed' THEN 'completed'
           WHEN x.outcome = 'released' THEN 'available'
           WHEN x.outcome = 'cancelled' OR j.cancel_requested_at IS NOT NULL THEN 'cancelled'
           WHEN x.outcome = 'dead' OR j.attempt >= j.max_attempts THEN 'dead'
           ELSE 'scheduled'
         END)`;
  const errors = (row: string, error: string, attempt: string) => `CASE
           WHEN ${error} IS NULL THEN ${row}.errors
           ELSE (CASE WHEN jsonb_array_length(${row}.errors) >= 20 THEN ${row}.errors - 0 ELSE ${row}.errors END)
                || jsonb_build_array(jsonb_build_object('attempt', ${attempt}, 'at', now()) || ${error})
         END`;
  // Rows that get a history row (a removed completion gets none).
  const kept = `finished.x_remove IS NOT TRUE OR finished.next_state <> 'completed'`;
  const history = historyEventSql(q, `SELECT 1 FROM finished WHERE ${kept}`);
  const fenced = `j.id = x.id
     AND ${stillRunning('j')}
     AND j.worker_id = $2
     AND j.attempt = x.attempt`;
  return `
WITH input AS (
  SELECT *
    FROM jsonb_to_recordset($1::text::jsonb)
      AS x(id bigint, attempt integer, outcome text, result jsonb, error jsonb, delay_ms bigint, remove boolean)
), finished AS (
  DELETE FROM ${q}.jobs j
   USING input x
   WHERE ${fenced}
     AND x.outcome <> 'released'
     AND ${next} IN ('completed', 'dead', 'cancelled')
  RETURNING j.*, CAST(${next} AS ${q}.job_state) AS next_state, x.outcome AS x_outcome, x.result AS x_result,
            x.error AS x_error, x.remove AS x_remove
), ${history.before}, archived AS (
  ${archiveSql(q, 'finished', {
    state: 'finished.next_state',
    result: `CASE WHEN finished.x_outcome = 'completed' THEN finished.x_result ELSE finished.result END`,
    errors: errors('finished', 'finished.x_error', 'finished.attempt'),
    finished_at: 'now()',
    worker_id: 'NULL',
    lease_expires_at: 'NULL',
  }, kept, history.eventSeq)}
), ${history.after}, done AS (
  UPDATE ${q}.jobs j
     SET state = CAST(${next} AS ${q}.job_state),
         attempt = CASE WHEN x.outcome = 'released' THEN j.attempt - 1 ELSE j.attempt END,
         errors = ${errors('j', 'x.error', 'j.attempt')},
         run_at = CASE ${next}
           WHEN 'scheduled' THEN now() + coalesce(x.delay_ms, 0) * interval '1 millisecond'
           ELSE now()
         END,
         worker_id = NULL,
         lease_expires_at = NULL
    FROM input x
   WHERE ${fenced}
     AND x.outcome <> 'completed'
     AND ${next} IN ('scheduled', 'available')
  RETURNING j.id, x.attempt, j.state, j.queue, j.kind, j.group_key, j.tenant
), changed AS (
  SELECT id, attempt, queue, kind, group_key, tenant, CASE state WHEN 'scheduled' THEN 'retrying' ELSE 'released' END AS change, false AS webhook FROM done${options.removals ? `
  UNION ALL
  -- Completions whose row is removed (removeOnComplete) have no history row to record them.
  SELECT id, attempt, queue, kind, group_key, tenant, 'completed', metadata ? 'webhook' FROM finished WHERE NOT (${kept})` : ''}
), recorded AS (
  ${recordEventsSql(q, 'changed', 'changed.change', { hooked: 'changed.webhook' })}
), wake AS (
  SELECT pg_notify($3::text, json_build_object(
           'queues', array_agg(DISTINCT queue) FILTER (WHERE state = 'available'),
           'scheduled', coalesce(bool_or(state = 'scheduled'), false))::text)
    FROM done
  HAVING count(*) > 0
)
SELECT x.id, x.attempt, coalesce(done.state, f.next_state)::text AS state
  FROM input x
  LEFT JOIN done ON done.id = x.id AND done.attempt = x.attempt
  LEFT JOIN finished f ON f.id = x.id AND f.attempt = x.attempt
 WHERE x.outcome <> 'completed' OR (done.id IS NULL AND f.id IS NULL)
UNION ALL
-- Reads wake, which sends the NOTIFY (a plain CTE runs only when read); its row, if any, has no id.
SELECT NULL, NULL, NULL FROM wake`;
}

/** What the worker reports for one attempt. */
export interface Outcome {
  id: string;
  attempt: number;
  outcome: 'completed' | 'failed' | 'dead' | 'cancelled' | 'released';
  result?: unknown;
  error?: { message: string; stack?: string; timeout?: boolean; code?: string };
  /** For `completed`: delete the row instead of keeping it as completed. */
  remove?: boolean;
  /** Backoff before the next attempt, for `failed`. */
  delay_ms?: number;
}
