import { stillRunning } from './fence.js';

/**
 * Finish: the buffered outcomes of many attempts, written in one statement.
 * Each row is fenced on (id, state = 'running', worker_id, attempt): a worker
 * that lost its lease matches nothing (a stale write, reported below).
 *
 * Outcomes: completed (its row deleted instead when `remove` is set: a
 * DELETE writes no new row version and no index entry, so it costs a
 * fraction of the UPDATE); failed (→ scheduled with backoff, or dead when the
 * attempts are used up); dead (a permanent error); cancelled; released
 * (shutdown: back to available, the attempt not consumed). A failure of a
 * job whose cancel was requested ends cancelled. Each error is appended to
 * `errors` (the oldest dropped past 20 entries).
 * Wakes the promoter when a retry was scheduled and workers when a job was
 * released. Locks: the finished rows. Index: the primary key.
 *
 * Returns only the exceptions, one row per outcome that is not a completion
 * written as asked: the state every other outcome left its job in (a
 * `failed` can end scheduled, dead or cancelled), and a null state for every
 * outcome the fence refused. A batch of completions returns no rows: the
 * server formats, and the worker parses, nothing per completed job.
 * $1 outcomes (JSON array), $2 worker id, $3 channel.
 */
export function finishSql(q: string): string {
  // The next state, from the outcome and the row as it is now (inlined three times below: a CTE
  // that joins the row first costs a second primary-key lookup per outcome).
  const next = `(CASE
           WHEN x.outcome = 'completed' THEN 'completed'
           WHEN x.outcome = 'released' THEN 'available'
           WHEN x.outcome = 'cancelled' OR j.cancel_requested_at IS NOT NULL THEN 'cancelled'
           WHEN x.outcome = 'dead' OR j.attempt >= j.max_attempts THEN 'dead'
           ELSE 'scheduled'
         END)`;
  return `
WITH input AS (
  SELECT *
    FROM jsonb_to_recordset($1::text::jsonb)
      AS x(id bigint, attempt integer, outcome text, result jsonb, error jsonb, delay_ms bigint, remove boolean)
), removed AS (
  DELETE FROM ${q}.jobs j
   USING input x
   WHERE x.remove AND x.outcome = 'completed'
     AND j.id = x.id
     AND ${stillRunning('j')}
     AND j.worker_id = $2
     AND j.attempt = x.attempt
  RETURNING j.id, x.attempt
), done AS (
  UPDATE ${q}.jobs j
     SET state = CAST(${next} AS ${q}.job_state),
         attempt = CASE WHEN x.outcome = 'released' THEN j.attempt - 1 ELSE j.attempt END,
         result = CASE WHEN x.outcome = 'completed' THEN x.result ELSE j.result END,
         errors = CASE
           WHEN x.error IS NULL THEN j.errors
           ELSE (CASE WHEN jsonb_array_length(j.errors) >= 20 THEN j.errors - 0 ELSE j.errors END)
                || jsonb_build_array(jsonb_build_object('attempt', j.attempt, 'at', now()) || x.error)
         END,
         run_at = CASE ${next}
           WHEN 'scheduled' THEN now() + coalesce(x.delay_ms, 0) * interval '1 millisecond'
           WHEN 'available' THEN now()
           ELSE j.run_at
         END,
         finished_at = CASE WHEN ${next} IN ('completed', 'dead', 'cancelled') THEN now() END,
         worker_id = NULL,
         lease_expires_at = NULL
    FROM input x
   WHERE (x.remove IS NOT TRUE OR x.outcome <> 'completed')
     AND j.id = x.id
     AND ${stillRunning('j')}
     AND j.worker_id = $2
     AND j.attempt = x.attempt
  RETURNING j.id, x.attempt, j.state, j.queue
), wake AS (
  SELECT pg_notify($3::text, json_build_object(
           'queues', array_agg(DISTINCT queue) FILTER (WHERE state = 'available'),
           'scheduled', coalesce(bool_or(state = 'scheduled'), false))::text)
    FROM done
  HAVING bool_or(state IN ('available', 'scheduled'))
)
SELECT x.id, x.attempt, done.state::text AS state
  FROM input x
  LEFT JOIN done ON done.id = x.id AND done.attempt = x.attempt
 WHERE x.outcome <> 'completed'
    OR (done.id IS NULL AND NOT EXISTS (SELECT 1 FROM removed WHERE removed.id = x.id AND removed.attempt = x.attempt))
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
  error?: { message: string; stack?: string; timeout?: boolean };
  /** For `completed`: delete the row instead of keeping it as completed. */
  remove?: boolean;
  /** Backoff before the next attempt, for `failed`. */
  delay_ms?: number;
}
