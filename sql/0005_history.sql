-- 0005: finished jobs leave the hot table. spool.jobs keeps only unfinished
-- jobs (scheduled, available, running); a job that completes, dies or is
-- cancelled moves, in the statement that finishes it, into job_history:
-- list-partitioned by its final state, each state range-partitioned by day
-- of finished_at (UTC), never updated in place, and pruned by dropping whole
-- partitions (docs/adr/0006-hot-table-and-history.md).
--
-- Finished rows already in spool.jobs stay readable (spool.all_jobs reads
-- both tables) and are moved over by the maintenance leader in small batches
-- after the upgrade, so the migration itself is quick and blocks no worker.

-- History columns are the hot table's, in the same order, but with base
-- types instead of the domains: the values were checked when they entered
-- the hot table, and a domain's check runs on every row a move inserts.
CREATE TABLE :SPOOL_SCHEMA.job_history (
  id                  bigint NOT NULL,
  queue               text COLLATE "C" NOT NULL,
  kind                text COLLATE "C" NOT NULL,
  payload             jsonb NOT NULL,
  state               :SPOOL_SCHEMA.job_state NOT NULL,
  priority            smallint NOT NULL,
  run_at              timestamptz NOT NULL,
  attempt             integer NOT NULL,
  max_attempts        integer NOT NULL,
  timeout_ms          integer,
  lease_expires_at    timestamptz,
  worker_id           text,
  unique_key          text COLLATE "C",
  tags                text[] NOT NULL,
  result              jsonb,
  errors              jsonb NOT NULL,
  progress            jsonb,
  metadata            jsonb NOT NULL,
  created_at          timestamptz NOT NULL,
  started_at          timestamptz,
  finished_at         timestamptz NOT NULL,
  cancel_requested_at timestamptz,
  CONSTRAINT job_history_finished CHECK (state IN ('completed', 'dead', 'cancelled'))
) PARTITION BY LIST (state);

CREATE TABLE :SPOOL_SCHEMA.job_history_completed PARTITION OF :SPOOL_SCHEMA.job_history
  FOR VALUES IN ('completed') PARTITION BY RANGE (finished_at);
CREATE TABLE :SPOOL_SCHEMA.job_history_dead PARTITION OF :SPOOL_SCHEMA.job_history
  FOR VALUES IN ('dead') PARTITION BY RANGE (finished_at);
CREATE TABLE :SPOOL_SCHEMA.job_history_cancelled PARTITION OF :SPOOL_SCHEMA.job_history
  FOR VALUES IN ('cancelled') PARTITION BY RANGE (finished_at);
-- A safety net: rows of a day whose partition does not exist yet (the leader
-- creates them days ahead) land here instead of failing the finish; the
-- pruner deletes them in batches once they expire.
CREATE TABLE :SPOOL_SCHEMA.job_history_completed_default PARTITION OF :SPOOL_SCHEMA.job_history_completed DEFAULT;
CREATE TABLE :SPOOL_SCHEMA.job_history_dead_default PARTITION OF :SPOOL_SCHEMA.job_history_dead DEFAULT;
CREATE TABLE :SPOOL_SCHEMA.job_history_cancelled_default PARTITION OF :SPOOL_SCHEMA.job_history_cancelled DEFAULT;

-- getJob and listing by id (newest first): one B-tree per partition. And a
-- BRIN index on finished_at, which rows arrive in order of, for the pruner's
-- batched deletes (a few pages per partition, next to nothing to maintain).
CREATE INDEX job_history_id ON :SPOOL_SCHEMA.job_history (id);
CREATE INDEX job_history_finished_at ON :SPOOL_SCHEMA.job_history USING brin (finished_at);

-- Creates the day partitions of each state from today (UTC) to p_days_ahead
-- days ahead; returns the names it created. A day that already has rows in
-- the default partition is skipped (PostgreSQL would refuse the partition);
-- those rows go by batched deletes. Run by the migration and the leader.
CREATE FUNCTION :SPOOL_SCHEMA.create_history_partitions(p_days_ahead integer DEFAULT 3)
RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
  v_state text;
  v_day date;
  v_name text;
  v_schema text := (SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE c.oid = ':SPOOL_SCHEMA.job_history'::regclass);
BEGIN
  FOREACH v_state IN ARRAY ARRAY['completed', 'dead', 'cancelled'] LOOP
    FOR v_day IN SELECT generate_series((now() AT TIME ZONE 'UTC')::date, (now() AT TIME ZONE 'UTC')::date + p_days_ahead, interval '1 day')::date LOOP
      v_name := format('job_history_%s_p%s', v_state, to_char(v_day, 'YYYYMMDD'));
      CONTINUE WHEN to_regclass(format('%I.%I', v_schema, v_name)) IS NOT NULL;
      BEGIN
        EXECUTE format(
          'CREATE TABLE %I.%I PARTITION OF %I.%I FOR VALUES FROM (%L) TO (%L)',
          v_schema, v_name, v_schema, 'job_history_' || v_state,
          (v_day::timestamp AT TIME ZONE 'UTC'), ((v_day + 1)::timestamp AT TIME ZONE 'UTC'));
        RETURN NEXT v_name;
      EXCEPTION WHEN check_violation THEN
        -- Rows of this day are in the default partition already.
        NULL;
      END;
    END LOOP;
  END LOOP;
END
$$;

SELECT :SPOOL_SCHEMA.create_history_partitions(3);

-- Drops one day partition of history (the pruner's, and `spool prune`'s).
-- Dropping a partition locks its parent for a moment, so it waits at most
-- 2 s for statements in flight and otherwise gives up (false) until the next
-- run, rather than queue every finish behind it. Refuses anything but a day
-- partition of job_history.
CREATE FUNCTION :SPOOL_SCHEMA.drop_history_partition(p_name text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  v_schema text := (SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE c.oid = ':SPOOL_SCHEMA.job_history'::regclass);
BEGIN
  IF p_name !~ '^job_history_(completed|dead|cancelled)_p[0-9]{8}$' THEN
    RAISE EXCEPTION 'spool.drop_history_partition: % is not a day partition of job_history', p_name USING ERRCODE = '22023';
  END IF;
  IF to_regclass(format('%I.%I', v_schema, p_name)) IS NULL THEN
    RETURN false;
  END IF;
  PERFORM set_config('lock_timeout', '2s', true);
  EXECUTE format('DROP TABLE %I.%I', v_schema, p_name);
  RETURN true;
EXCEPTION WHEN lock_not_available OR undefined_table THEN
  -- Busy, or dropped meanwhile by another prune.
  RETURN false;
END
$$;

-- Every job, unfinished and finished, for reading: getJob, listing, the API,
-- the CLI and SQL users. Write to spool.jobs (the hot table); history is
-- written by Spool's own statements only.
CREATE VIEW :SPOOL_SCHEMA.all_jobs AS
SELECT id, queue::text AS queue, kind::text AS kind, payload, state, priority, run_at, attempt, max_attempts, timeout_ms,
       lease_expires_at, worker_id, unique_key, tags, result, errors::jsonb AS errors, progress, metadata::jsonb AS metadata,
       created_at, started_at, finished_at, cancel_requested_at
  FROM :SPOOL_SCHEMA.jobs
UNION ALL
SELECT id, queue, kind, payload, state, priority, run_at, attempt, max_attempts, timeout_ms,
       lease_expires_at, worker_id, unique_key, tags, result, errors, progress, metadata,
       created_at, started_at, finished_at, cancel_requested_at
  FROM :SPOOL_SCHEMA.job_history;

-- The views read both tables now.
DROP VIEW :SPOOL_SCHEMA.queue_stats;
DROP VIEW :SPOOL_SCHEMA.dead_jobs;

CREATE VIEW :SPOOL_SCHEMA.queue_stats AS
SELECT queue,
       count(*) FILTER (WHERE state = 'scheduled') AS scheduled,
       count(*) FILTER (WHERE state = 'available') AS available,
       count(*) FILTER (WHERE state = 'running')   AS running,
       count(*) FILTER (WHERE state = 'completed') AS completed,
       count(*) FILTER (WHERE state = 'dead')      AS dead,
       count(*) FILTER (WHERE state = 'cancelled') AS cancelled,
       coalesce(extract(epoch FROM now() - min(run_at) FILTER (WHERE state = 'available')), 0)::double precision
         AS oldest_available_age_seconds
  FROM :SPOOL_SCHEMA.all_jobs
 GROUP BY queue;

CREATE VIEW :SPOOL_SCHEMA.dead_jobs AS
SELECT id, queue, kind, payload, attempt, max_attempts, errors, errors -> -1 AS last_error,
       tags, metadata, created_at, finished_at
  FROM :SPOOL_SCHEMA.all_jobs
 WHERE state = 'dead';

-- The hot table only ever holds the backlog, and every job's row there is
-- deleted when it finishes: it churns. Vacuum it after 1,000 dead rows plus
-- 1 % of its size (the defaults, 50 + 20 %, let a big backlog's dead rows
-- pile up), and analyze it as often, so the claim's plan follows the backlog.
-- Unthrottled (cost delay 0): at ~23,000 jobs/s a throttled autovacuum fell
-- behind and the drain slowed to 14-16 k jobs/s within two minutes; without
-- the delay it caught up by the fourth minute (docs/performance.md).
-- No fillfactor: its updates cannot be HOT (state is in the partial indexes'
-- predicates), so free space on the page would not be used by them.
ALTER TABLE :SPOOL_SCHEMA.jobs SET (
  autovacuum_vacuum_cost_delay = 0,
  autovacuum_vacuum_scale_factor = 0.01,
  autovacuum_vacuum_threshold = 1000,
  autovacuum_vacuum_insert_scale_factor = 0.05,
  autovacuum_analyze_scale_factor = 0.02,
  autovacuum_analyze_threshold = 1000
);

-- Retention of finished jobs per state, with per-queue overrides; the row
-- with queue '*' holds the defaults. History older than its retention is
-- dropped by partition where a whole day has expired, and deleted in small
-- batches otherwise (a queue whose retention is shorter than its state's).
CREATE TABLE :SPOOL_SCHEMA.retention (
  queue      text COLLATE "C" PRIMARY KEY,
  completed  interval,
  cancelled  interval,
  dead       interval,
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT retention_queue_format CHECK (queue = '*' OR (length(queue) <= 128 AND queue ~ '^[A-Za-z0-9_][A-Za-z0-9_.:/-]*$')),
  CONSTRAINT retention_defaults_complete CHECK (queue <> '*' OR (completed IS NOT NULL AND cancelled IS NOT NULL AND dead IS NOT NULL)),
  CONSTRAINT retention_positive CHECK (
    (completed IS NULL OR completed > interval '0') AND (cancelled IS NULL OR cancelled > interval '0') AND (dead IS NULL OR dead > interval '0')
  )
);
INSERT INTO :SPOOL_SCHEMA.retention (queue, completed, cancelled, dead) VALUES ('*', interval '1 day', interval '7 days', interval '30 days');
