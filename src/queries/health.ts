import { dropsAtSql, longestRetentionCte } from './prune.js';

/**
 * Storage health, for `spool doctor` and the storage gauges: one statement
 * over the catalogs and statistics views (no job rows read, except the
 * count of finished rows still in the hot table, through its partial index
 * and primary key). $1 the schema's name.
 */
export function storageHealthSql(q: string): string {
  return `
WITH hot AS (
  SELECT pg_total_relation_size(to_regclass(format('%I.jobs', $1::text))) AS bytes,
         s.n_live_tup AS live, s.n_dead_tup AS dead, s.last_vacuum, s.last_autovacuum, s.last_analyze, s.last_autoanalyze,
         coalesce((SELECT option_value::boolean FROM pg_options_to_table(c.reloptions) WHERE option_name = 'autovacuum_enabled'), true) AS table_autovacuum
    FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
   WHERE s.relid = to_regclass(format('%I.jobs', $1::text))
), leaves AS (
  SELECT c.relname::text AS name, c.oid, p.relname::text AS parent
    FROM pg_partition_tree(to_regclass(format('%I.job_history', $1::text))) t
    JOIN pg_class c ON c.oid = t.relid
    JOIN pg_class p ON p.oid = t.parentrelid
   WHERE t.isleaf
), history AS (
  SELECT coalesce(sum(pg_total_relation_size(oid)), 0)::bigint AS bytes,
         coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint AS rows,
         count(*)::int AS partitions,
         coalesce(sum(CASE WHEN l.name LIKE '%\\_default' THEN greatest(c.reltuples, 0) END), 0)::bigint AS default_rows
    FROM leaves l JOIN pg_class c USING (oid)
), ${longestRetentionCte(q)}, days AS (
  SELECT k.state, l.name, ${dropsAtSql('l.name', 'k.keep')} AS drops_at
    FROM keep k JOIN leaves l ON l.parent = 'job_history_' || k.state AND l.name ~ '_p[0-9]{8}$'
), missing AS (
  SELECT coalesce(array_agg(format('job_history_%s_p%s', s.state, to_char(d, 'YYYYMMDD')) ORDER BY 1), '{}') AS names
    FROM (VALUES ('completed'), ('dead'), ('cancelled')) AS s(state)
   CROSS JOIN generate_series((now() AT TIME ZONE 'UTC')::date, (now() AT TIME ZONE 'UTC')::date + 1, interval '1 day') AS d
   WHERE NOT EXISTS (SELECT 1 FROM leaves l WHERE l.name = format('job_history_%s_p%s', s.state, to_char(d, 'YYYYMMDD')))
), holder AS (
  SELECT pid, state, backend_type, extract(epoch FROM now() - coalesce(xact_start, backend_start))::float8 AS age_s,
         age(backend_xmin)::bigint AS xids, left(query, 200) AS query
    FROM pg_stat_activity
   WHERE backend_xmin IS NOT NULL AND pid <> pg_backend_pid()
   ORDER BY age(backend_xmin) DESC
   LIMIT 1
)
SELECT hot.bytes::bigint AS hot_bytes, hot.live::bigint AS hot_live_rows, hot.dead::bigint AS hot_dead_rows,
       hot.last_vacuum, hot.last_autovacuum, hot.last_analyze, hot.last_autoanalyze,
       current_setting('autovacuum')::boolean AND hot.table_autovacuum AS autovacuum,
       current_setting('autovacuum')::boolean AS autovacuum_server,
       (SELECT count(*)::int FROM (SELECT 1 FROM ${q}.jobs WHERE state IN ('completed', 'dead', 'cancelled') LIMIT 100000) f) AS hot_finished_rows,
       history.bytes AS history_bytes, history.rows AS history_rows, history.partitions AS history_partitions,
       history.default_rows AS history_default_rows,
       (SELECT name FROM days ORDER BY drops_at, name LIMIT 1) AS next_drop,
       (SELECT drops_at FROM days ORDER BY drops_at, name LIMIT 1) AS next_drop_at,
       missing.names AS missing_partitions,
       holder.pid AS xmin_pid, holder.state AS xmin_state, holder.backend_type AS xmin_backend, holder.age_s AS xmin_age_s,
       holder.xids AS xmin_xids, holder.query AS xmin_query
  FROM hot, history, missing
  LEFT JOIN holder ON true`;
}

/** The row of `storageHealthSql`. */
export interface StorageHealthRow {
  hot_bytes: string;
  hot_live_rows: string;
  hot_dead_rows: string;
  last_vacuum: Date | null;
  last_autovacuum: Date | null;
  last_analyze: Date | null;
  last_autoanalyze: Date | null;
  autovacuum: boolean;
  autovacuum_server: boolean;
  hot_finished_rows: number;
  history_bytes: string;
  history_rows: string;
  history_partitions: number;
  history_default_rows: string;
  next_drop: string | null;
  next_drop_at: Date | null;
  missing_partitions: string[];
  xmin_pid: number | null;
  xmin_state: string | null;
  xmin_backend: string | null;
  xmin_age_s: number | null;
  xmin_xids: string | null;
  xmin_query: string | null;
}
