import { stillRunning } from './fence.js';

/**
 * Heartbeat: one statement per worker per interval. Registers the worker (or
 * refreshes its row) and extends the lease of every job it still holds,
 * fenced on (id, attempt, state = 'running', worker_id), skipping rows that
 * are locked at the moment (extended at the next beat; the lease is three
 * beats long). Jobs that do not come back were lost (reaped); the flag says
 * a cancel was requested (a backstop for a missed NOTIFY).
 * Locks: the held job rows and the worker's row. Index: the primary keys.
 * $1 worker id, $2 job ids bigint[], $3 attempts int[], $4 lease ms,
 * $5 hostname, $6 pid, $7 queues, $8 kinds, $9 concurrency.
 */
export function heartbeatSql(q: string): string {
  return `
WITH registered AS (
  INSERT INTO ${q}.workers AS w (id, hostname, pid, queues, kinds, concurrency)
  VALUES ($1, $5, $6, $7::text[], $8::text[], $9)
  ON CONFLICT (id) DO UPDATE SET last_heartbeat_at = now()
  RETURNING w.id
), mine AS (
  -- The held jobs that are still this worker's, read without locking: the others were lost.
  SELECT j.id, j.cancel_requested_at IS NOT NULL AS cancel_requested
    FROM unnest($2::bigint[], $3::integer[]) AS held(id, attempt)
    JOIN ${q}.jobs j ON j.id = held.id AND j.attempt = held.attempt AND ${stillRunning('j')} AND j.worker_id = $1
), extended AS (
  -- Rows another statement holds right now (this worker's own finish, a cancel) are skipped and
  -- extended at the next beat: the heartbeat never waits for a row lock, so it cannot deadlock
  -- with a finish whose plan visits rows in another order (seen once the hot table was small
  -- and freshly analyzed: a hash join in physical order).
  UPDATE ${q}.jobs j
     SET lease_expires_at = now() + $4 * interval '1 millisecond'
   WHERE j.id IN (SELECT l.id FROM ${q}.jobs l WHERE l.id IN (SELECT id FROM mine) FOR UPDATE SKIP LOCKED)
     AND ${stillRunning('j')} AND j.worker_id = $1
  RETURNING j.id
)
-- extended is not read: a data-modifying CTE runs to completion anyway.
SELECT mine.id, mine.cancel_requested, (SELECT count(*) FROM registered) AS registered FROM mine`;
}

/** Removes a stopping worker's row. $1 worker id. */
export function unregisterSql(q: string): string {
  return `DELETE FROM ${q}.workers WHERE id = $1`;
}
