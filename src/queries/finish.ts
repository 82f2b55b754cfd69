/**
 * Finish: the buffered outcomes of many attempts, written in one statement.
 * Each row is fenced on (id, state = 'running', worker_id, attempt): a worker
 * that lost its lease matches nothing, and the caller counts the ids that
 * did not come back as stale writes.
 *
 * Outcomes: completed; failed (→ scheduled with backoff, or dead when the
 * attempts are used up); dead (a permanent error); cancelled; released
 * (shutdown: back to available, the attempt not consumed). A failure of a
 * job whose cancel was requested ends cancelled. Each error is appended to
 * `errors` (the oldest dropped past 20 entries).
 * Wakes the promoter when a retry was scheduled and workers when a job was
 * released. Locks: the finished rows. Index: the primary key.
 * $1 outcomes (JSON array), $2 worker id, $3 channel.
 */
export function finishSql(q: string): string {
  return `
WITH input AS (
  SELECT *
    FROM jsonb_to_recordset($1::text::jsonb)
      AS x(id bigint, attempt integer, outcome text, result jsonb, error jsonb, delay_ms bigint)
), plan AS (
  SELECT x.id, x.attempt, x.result, x.error, x.delay_ms,
         CAST(CASE
           WHEN x.outcome = 'completed' THEN 'completed'
           WHEN x.outcome = 'released' THEN 'available'
           WHEN x.outcome = 'cancelled' OR j.cancel_requested_at IS NOT NULL THEN 'cancelled'
           WHEN x.outcome = 'dead' OR j.attempt >= j.max_attempts THEN 'dead'
           ELSE 'scheduled'
         END AS ${q}.job_state) AS next_state
    FROM input x
    JOIN ${q}.jobs j ON j.id = x.id
), done AS (
  UPDATE ${q}.jobs j
     SET state = p.next_state,
         attempt = CASE WHEN p.next_state = 'available' THEN j.attempt - 1 ELSE j.attempt END,
         result = CASE WHEN p.next_state = 'completed' THEN p.result ELSE j.result END,
         errors = CASE
           WHEN p.error IS NULL THEN j.errors
           ELSE (CASE WHEN jsonb_array_length(j.errors) >= 20 THEN j.errors - 0 ELSE j.errors END)
                || jsonb_build_array(jsonb_build_object('attempt', j.attempt, 'at', now()) || p.error)
         END,
         run_at = CASE
           WHEN p.next_state = 'scheduled' THEN now() + coalesce(p.delay_ms, 0) * interval '1 millisecond'
           WHEN p.next_state = 'available' THEN now()
           ELSE j.run_at
         END,
         finished_at = CASE WHEN p.next_state IN ('completed', 'dead', 'cancelled') THEN now() END,
         worker_id = NULL,
         lease_expires_at = NULL
    FROM plan p
   WHERE j.id = p.id
     AND j.state = 'running'
     AND j.worker_id = $2
     AND j.attempt = p.attempt
  RETURNING j.id, j.state, j.queue
), wake AS (
  SELECT pg_notify($3::text, json_build_object(
           'queues', array_agg(DISTINCT queue) FILTER (WHERE state = 'available'),
           'scheduled', coalesce(bool_or(state = 'scheduled'), false))::text)
    FROM done
  HAVING bool_or(state IN ('available', 'scheduled'))
)
SELECT done.id, done.state, (SELECT count(*) FROM wake) AS woke FROM done`;
}

/** What the worker reports for one attempt. */
export interface Outcome {
  id: string;
  attempt: number;
  outcome: 'completed' | 'failed' | 'dead' | 'cancelled' | 'released';
  result?: unknown;
  error?: { message: string; stack?: string; timeout?: boolean };
  /** Backoff before the next attempt, for `failed`. */
  delay_ms?: number;
}
