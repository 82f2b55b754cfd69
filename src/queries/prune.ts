/**
 * Keeping history in shape (sql/0005): day partitions created ahead,
 * finished rows from before the upgrade moved out of the hot table, and
 * expired history removed, by dropping whole day partitions where every row
 * in them has expired, and in small batches where a retention is shorter
 * than that allows. Run by the maintenance leader's pruner and by
 * `spool prune`. Database time throughout.
 */
import { archiveSql } from './history.js';

/** Creates the day partitions of today and the next $1 days (UTC); returns the new ones' names. */
export function createPartitionsSql(q: string): string {
  return `SELECT name FROM ${q}.create_history_partitions($1) AS name`;
}

/**
 * Moves up to $2 finished rows left in the hot table (from before sql/0005,
 * or written by an older Spool during a rolling upgrade) with ids above $1
 * into history, in id order, skipping rows other statements hold. Returns
 * how many moved and the last id, for the next batch. Locks: the moved rows.
 * Index: the primary key.
 */
export function backfillSql(q: string): string {
  return `
WITH moved AS (
  DELETE FROM ${q}.jobs j
   WHERE j.id IN (SELECT id FROM ${q}.jobs
                   WHERE state IN ('completed', 'dead', 'cancelled') AND id > $1::bigint
                   ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
  RETURNING j.*
), archived AS (
  ${archiveSql(q, 'moved', { worker_id: 'NULL', lease_expires_at: 'NULL' })}
)
SELECT count(*)::int AS moved, max(id)::text AS last_id FROM moved`;
}

/**
 * The retention each state keeps history for, per queue and by default,
 * and whether any row needs batched deletes: a queue's retention shorter
 * than its state's longest (its rows would otherwise wait for the
 * partition), or a retention under a day (shorter than a partition).
 */
export function retentionSql(q: string): string {
  return `
SELECT s.state,
       extract(epoch FROM max(r.keep))::float8 AS keep_s,
       bool_or(r.keep < interval '1 day') OR count(DISTINCT r.keep) > 1 AS needs_batches
  FROM (VALUES ('completed'), ('cancelled'), ('dead')) AS s(state)
  JOIN LATERAL (
    SELECT CASE s.state WHEN 'completed' THEN completed WHEN 'cancelled' THEN cancelled ELSE dead END AS keep
      FROM ${q}.retention
  ) r ON r.keep IS NOT NULL
 GROUP BY s.state
 ORDER BY s.state`;
}

/** Per state, the longest retention of the default and every queue's override: how long its day partitions stay. */
export function longestRetentionCte(q: string): string {
  return `keep AS (
  SELECT 'completed' AS state, max(completed) AS keep FROM ${q}.retention
  UNION ALL SELECT 'cancelled', max(cancelled) FROM ${q}.retention
  UNION ALL SELECT 'dead', max(dead) FROM ${q}.retention
)`;
}

/** When the day partition named `partition` (…_pYYYYMMDD) may be dropped: the end of its day plus `keep`. */
export function dropsAtSql(partition: string, keep: string): string {
  return `((to_date(right(${partition}, 8), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC') + ${keep}`;
}

/**
 * Day partitions every row of which is past the longest retention of its
 * state: they can be dropped. With the estimated row count (reltuples: a
 * count would read the partition). $1 the schema's name.
 */
export function expiredPartitionsSql(q: string): string {
  return `
WITH ${longestRetentionCte(q)}
SELECT c.relname::text AS partition, k.state, greatest(c.reltuples, 0)::bigint AS rows
  FROM keep k
  JOIN pg_inherits i ON i.inhparent = to_regclass(format('%I.%I', $1::text, 'job_history_' || k.state))
  JOIN pg_class c ON c.oid = i.inhrelid
 WHERE c.relname ~ '_p[0-9]{8}$'
   AND ${dropsAtSql('c.relname', 'k.keep')} < now()
 ORDER BY c.relname`;
}

/** Drops one expired day partition; false when its lock could not be had within 2 s. $1 partition name. */
export function dropPartitionSql(q: string): string {
  return `SELECT ${q}.drop_history_partition($1) AS dropped`;
}

// A history row is expired once it is older than its queue's retention for its state, else the default's.
const EXPIRED = (q: string) => `
  h.finished_at < now() - (CASE h.state
    WHEN 'completed' THEN coalesce(r.completed, d.completed)
    WHEN 'cancelled' THEN coalesce(r.cancelled, d.cancelled)
    ELSE coalesce(r.dead, d.dead) END)
  AND h.finished_at < now() - (SELECT least(min(completed), min(cancelled), min(dead)) FROM ${q}.retention)`;

/**
 * Where batched deletes look: every history row (`all`: some retention is
 * shorter than partitions allow), or only the default partitions (rows of a
 * day whose partition was missing, or from before the upgrade, never go by
 * partition drop).
 */
export type PruneScope = 'all' | 'defaults';

function scopeSql(q: string, scope: PruneScope): string {
  // Each row with the partition it is in (tableoid, as "part").
  const from = (table: string) => `SELECT t.*, t.tableoid AS part FROM ${q}.${table} t`;
  return scope === 'all'
    ? `(${from('job_history')})`
    : `(${from('job_history_completed_default')} UNION ALL ${from('job_history_dead_default')} UNION ALL ${from('job_history_cancelled_default')})`;
}

/**
 * Deletes up to $1 expired history rows in `scope`. The second condition on
 * finished_at is a bound every expired row meets, which lets the BRIN index
 * skip the young pages. Locks: the deleted rows.
 */
export function pruneBatchSql(q: string, scope: PruneScope): string {
  return `
WITH victims AS (
  SELECT h.id, h.state
    FROM ${scopeSql(q, scope)} h
    LEFT JOIN ${q}.retention r ON r.queue = h.queue
    CROSS JOIN (SELECT * FROM ${q}.retention WHERE queue = '*') d
   WHERE ${EXPIRED(q)}
   LIMIT $1
), deleted AS (
  DELETE FROM ${q}.job_history h USING victims v WHERE h.id = v.id AND h.state = v.state RETURNING 1
)
SELECT count(*)::int AS deleted FROM deleted`;
}

/**
 * How many history rows in `scope` are expired now, outside the partitions
 * named in $1 (those a dry run would drop): what batches would delete.
 */
export function expiredRowsSql(q: string, scope: PruneScope): string {
  return `
SELECT count(*)::bigint AS expired
  FROM ${scopeSql(q, scope)} h
  LEFT JOIN ${q}.retention r ON r.queue = h.queue
  CROSS JOIN (SELECT * FROM ${q}.retention WHERE queue = '*') d
 WHERE ${EXPIRED(q)}
   AND (SELECT relname::text FROM pg_class WHERE oid = h.part) <> ALL($1::text[])`;
}
