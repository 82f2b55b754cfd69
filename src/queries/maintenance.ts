import { archiveSql } from './history.js';
import { historyEventSql, recordEventsSql } from './events.js';

/**
 * Leader-only statements: promote, reap, forget dead workers, and the leader
 * lease itself. Each works in bounded batches with SKIP LOCKED, so a second
 * leader for a moment (a stale one that has not noticed yet) does no harm.
 */

/**
 * Promote: due scheduled jobs become available, oldest first, in a batch;
 * wakes the workers of their queues. Also returns how long until the next
 * scheduled job is due (database time), for the promoter's timer.
 * Locks: the promoted rows. Index: jobs_scheduled.
 * $1 batch size, $2 channel.
 */
export function promoteSql(q: string): string {
  return `
WITH due AS (
  SELECT id FROM ${q}.jobs
   WHERE state = 'scheduled' AND run_at <= now()
   ORDER BY run_at
   LIMIT $1
     FOR UPDATE SKIP LOCKED
), promoted AS (
  UPDATE ${q}.jobs j SET state = 'available' FROM due WHERE j.id = due.id RETURNING j.queue
), wake AS (
  SELECT pg_notify($2::text, json_build_object('queues', array_agg(DISTINCT queue), 'scheduled', false)::text)
    FROM promoted
  HAVING count(*) > 0
)
SELECT (SELECT count(*) FROM promoted)::integer AS promoted,
       (SELECT count(*) FROM wake)::integer AS woke,
       (SELECT extract(epoch FROM min(run_at) - now()) * 1000
          FROM ${q}.jobs WHERE state = 'scheduled' AND run_at > now())::double precision AS next_due_in_ms`;
}

/**
 * Reap: running jobs whose lease expired (their worker stopped heartbeating)
 * count as a failed attempt with the error "lease expired" and follow the
 * retry rules with the default backoff (min($3, $2 * 2^(attempt - 1)), ±10 %
 * jitter: the same policy as src/worker/backoff.ts); a job whose cancel was
 * requested ends cancelled. A job that ends dead or cancelled moves to
 * job_history (deleted here, inserted there, in this statement).
 * Locks: the reaped rows. Index: jobs_lease.
 * $1 batch size, $2 backoff base ms, $3 backoff max ms, $4 channel.
 */
export function reapSql(q: string): string {
  // The job's errors with this attempt's "lease expired" appended; `row` has the job's columns, `lost` the worker's id.
  const lostError = (row: string, lost: string) => `(CASE WHEN jsonb_array_length(${row}.errors) >= 20 THEN ${row}.errors - 0 ELSE ${row}.errors END)
                  || jsonb_build_array(jsonb_build_object(
                       'attempt', ${row}.attempt, 'at', now(),
                       'message', format('lease expired: worker %s stopped heartbeating', ${lost})))`;
  const history = historyEventSql(q, 'SELECT 1 FROM ended');
  return `
WITH expired AS (
  SELECT id FROM ${q}.jobs
   WHERE state = 'running' AND lease_expires_at < now()
   ORDER BY lease_expires_at
   LIMIT $1
     FOR UPDATE SKIP LOCKED
), plan AS (
  SELECT j.id, j.worker_id AS lost_worker,
         CAST(CASE
           WHEN j.cancel_requested_at IS NOT NULL THEN 'cancelled'
           WHEN j.attempt >= j.max_attempts THEN 'dead'
           ELSE 'scheduled'
         END AS ${q}.job_state) AS next_state
    FROM expired JOIN ${q}.jobs j ON j.id = expired.id
), ended AS (
  DELETE FROM ${q}.jobs j
   USING plan p
   WHERE j.id = p.id AND j.state = 'running' AND p.next_state IN ('dead', 'cancelled')
  RETURNING j.*, p.next_state, p.lost_worker
), ${history.before}, archived AS (
  ${archiveSql(q, 'ended', { state: 'ended.next_state', errors: lostError('ended', 'ended.lost_worker'), finished_at: 'now()', worker_id: 'NULL', lease_expires_at: 'NULL' }, 'true', history.eventSeq)}
), ${history.after}, retried AS (
  UPDATE ${q}.jobs j
     SET state = p.next_state,
         run_at = now() + least($3::double precision, $2 * power(2, least(j.attempt - 1, 40)))
                          * (0.9 + random() * 0.2) * interval '1 millisecond',
         errors = ${lostError('j', 'p.lost_worker')},
         worker_id = NULL,
         lease_expires_at = NULL
    FROM plan p
   WHERE j.id = p.id AND j.state = 'running' AND p.next_state = 'scheduled'
  RETURNING j.id, j.state, j.queue, j.kind, j.attempt, p.lost_worker, j.group_key, j.tenant
), recorded AS (
  ${recordEventsSql(q, 'retried', "'retrying'")}
), reaped AS (
  SELECT id, next_state AS state, queue, kind, attempt, lost_worker FROM ended
  UNION ALL
  SELECT id, state, queue, kind, attempt, lost_worker FROM retried
), wake AS (
  SELECT pg_notify($4::text, json_build_object('queues', NULL, 'scheduled', true)::text)
    FROM retried
  HAVING count(*) > 0
)
SELECT reaped.*, (SELECT count(*) FROM wake) AS woke FROM reaped`;
}

/** Forget workers whose heartbeat stopped $1 ms ago. Index: the primary key (small table). */
export function forgetWorkersSql(q: string): string {
  return `DELETE FROM ${q}.workers WHERE last_heartbeat_at < now() - $1 * interval '1 millisecond' RETURNING id`;
}

/**
 * Take or renew the leader lease named $1 for worker $2 for $3 ms: succeeds
 * (returns a row) when the lease is free, expired, or already ours.
 * Locks: the lease row.
 */
export function acquireLeaderSql(q: string): string {
  return `
INSERT INTO ${q}.leader AS l (name, worker_id, expires_at)
VALUES ($1, $2, now() + $3 * interval '1 millisecond')
ON CONFLICT (name) DO UPDATE
   SET worker_id = EXCLUDED.worker_id,
       expires_at = EXCLUDED.expires_at,
       elected_at = CASE WHEN l.worker_id = EXCLUDED.worker_id THEN l.elected_at ELSE now() END
 WHERE l.worker_id = EXCLUDED.worker_id OR l.expires_at < now()
RETURNING l.worker_id`;
}

/** Give the lease up at shutdown so another process takes over at once. */
export function releaseLeaderSql(q: string): string {
  return `DELETE FROM ${q}.leader WHERE name = $1 AND worker_id = $2`;
}
