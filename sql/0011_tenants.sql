-- 0011: tenants (docs/security.md, "Tenants").
--
-- A job may belong to a tenant (null: single-tenant installs). An API key
-- bound to a tenant reaches only that tenant's jobs: every statement the
-- API runs for it filters on `tenant` (the first wall), inside a
-- transaction with `spool.tenant` set, as the role `spool_tenant` where it
-- exists, which row-level security binds (the second: a forgotten WHERE
-- returns nothing of another tenant's).
--
-- The policy lets a statement without `spool.tenant` see every row, so
-- nothing changes for workers and single-tenant installs. RLS is ENABLEd,
-- not FORCEd: the tables' owner, which Spool's own processes run as, pays
-- nothing for it at each claim, and superusers bypass it whatever is set.
-- Unique keys become per tenant: two tenants' Idempotency-Keys never meet.

CREATE DOMAIN :SPOOL_SCHEMA.tenant_name AS text COLLATE "C"
  CONSTRAINT tenant_name_format CHECK (length(VALUE) BETWEEN 1 AND 128 AND VALUE !~ '[[:cntrl:]]');

DROP VIEW :SPOOL_SCHEMA.queue_stats;
DROP VIEW :SPOOL_SCHEMA.dead_jobs;
DROP VIEW :SPOOL_SCHEMA.all_jobs;

ALTER TABLE :SPOOL_SCHEMA.jobs ADD COLUMN tenant :SPOOL_SCHEMA.tenant_name;
ALTER TABLE :SPOOL_SCHEMA.job_history ADD COLUMN tenant text COLLATE "C";

-- A tenant's jobs by id (its listings), only where there are tenants.
CREATE INDEX jobs_tenant ON :SPOOL_SCHEMA.jobs (tenant, id) WHERE tenant IS NOT NULL;
CREATE INDEX job_history_tenant ON :SPOOL_SCHEMA.job_history (tenant, id) WHERE tenant IS NOT NULL;

-- One unfinished job per (queue, tenant, unique key).
CREATE UNIQUE INDEX jobs_unique_key_tenant ON :SPOOL_SCHEMA.jobs (queue, (coalesce(tenant::text, '')), unique_key)
  WHERE unique_key IS NOT NULL AND state IN ('scheduled', 'available', 'running');
DROP INDEX :SPOOL_SCHEMA.jobs_unique_key;

-- The views as 0005 and 0006 made them, with the tenant.
CREATE VIEW :SPOOL_SCHEMA.all_jobs AS
SELECT id, queue::text AS queue, kind::text AS kind, payload, state, priority, run_at, attempt, max_attempts, timeout_ms,
       lease_expires_at, worker_id, unique_key, tags, result, errors::jsonb AS errors, progress, metadata::jsonb AS metadata,
       created_at, started_at, finished_at, cancel_requested_at, group_key::text AS group_key, tenant::text AS tenant
  FROM :SPOOL_SCHEMA.jobs
UNION ALL
SELECT id, queue, kind, payload, state, priority, run_at, attempt, max_attempts, timeout_ms,
       lease_expires_at, worker_id, unique_key, tags, result, errors, progress, metadata,
       created_at, started_at, finished_at, cancel_requested_at, group_key, tenant
  FROM :SPOOL_SCHEMA.job_history;

CREATE VIEW :SPOOL_SCHEMA.dead_jobs AS
SELECT id, queue, kind, payload, attempt, max_attempts, errors, errors -> -1 AS last_error,
       tags, metadata, created_at, finished_at, group_key, tenant
  FROM :SPOOL_SCHEMA.all_jobs
 WHERE state = 'dead';

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

-- Through the views, row-level security binds the caller, not the views' owner (PostgreSQL 15 and later).
DO $$
BEGIN
  IF current_setting('server_version_num')::int >= 150000 THEN
    EXECUTE 'ALTER VIEW :SPOOL_SCHEMA.all_jobs SET (security_invoker = true)';
    EXECUTE 'ALTER VIEW :SPOOL_SCHEMA.dead_jobs SET (security_invoker = true)';
    EXECUTE 'ALTER VIEW :SPOOL_SCHEMA.queue_stats SET (security_invoker = true)';
  END IF;
END
$$;

-- Enqueue with each element's "tenant" (the functions as 0006 and 0009 made them).
DROP FUNCTION :SPOOL_SCHEMA.jobs_from_json(jsonb);
CREATE FUNCTION :SPOOL_SCHEMA.jobs_from_json(p_jobs jsonb)
RETURNS TABLE (
  ord bigint, kind text, payload jsonb, queue text, priority smallint, run_at timestamptz,
  state :SPOOL_SCHEMA.job_state, max_attempts integer, timeout_ms integer, unique_key text, tags text[],
  metadata jsonb, group_key text, tenant text
)
LANGUAGE sql STABLE AS $$
  SELECT x.ord, x.kind, coalesce(x.payload, '{}'), coalesce(x.queue, k.queue, 'default'), coalesce(x.priority, k.priority, 0),
         coalesce(x.run_at, now() + x.delay_ms * interval '1 millisecond', now()),
         CAST(CASE WHEN coalesce(x.run_at, now() + x.delay_ms * interval '1 millisecond', now()) > now()
                   THEN 'scheduled' ELSE 'available' END AS :SPOOL_SCHEMA.job_state),
         coalesce(x.max_attempts, k.max_attempts, 25), coalesce(x.timeout_ms, k.timeout_ms), x.unique_key,
         coalesce(x.tags, k.tags, '{}'), coalesce(x.metadata, '{}'), x."group", x.tenant
    FROM ROWS FROM (jsonb_to_recordset(p_jobs) AS (
           kind text, payload jsonb, queue text, priority smallint, run_at timestamptz,
           delay_ms bigint, max_attempts integer, timeout_ms integer, unique_key text, tags text[], metadata jsonb,
           "group" text, tenant text
         )) WITH ORDINALITY
         AS x(kind, payload, queue, priority, run_at, delay_ms, max_attempts, timeout_ms, unique_key, tags, metadata, "group", tenant, ord)
    LEFT JOIN :SPOOL_SCHEMA.kinds k ON k.kind = x.kind
$$;

CREATE OR REPLACE FUNCTION :SPOOL_SCHEMA.insert_jobs(p_jobs jsonb)
RETURNS TABLE (ord bigint, id bigint)
LANGUAGE sql AS $$
  WITH input AS (
    SELECT nextval(':SPOOL_SCHEMA.jobs_id_seq') AS new_id, f.*
      FROM :SPOOL_SCHEMA.jobs_from_json(p_jobs) AS f
  ), inserted AS (
    INSERT INTO :SPOOL_SCHEMA.jobs AS j
      (id, queue, kind, payload, state, priority, run_at, max_attempts, timeout_ms, unique_key, tags, metadata, group_key, tenant)
    OVERRIDING SYSTEM VALUE
    SELECT new_id, queue, kind, payload, state, priority, run_at, max_attempts, timeout_ms, unique_key, tags, metadata, group_key, tenant
      FROM input
     ORDER BY ord
    ON CONFLICT (queue, (coalesce(tenant::text, '')), unique_key)
      WHERE unique_key IS NOT NULL AND state IN ('scheduled', 'available', 'running')
      DO NOTHING
    RETURNING j.id
  )
  SELECT input.ord, inserted.id
    FROM input LEFT JOIN inserted ON inserted.id = input.new_id
   ORDER BY input.ord
$$;

CREATE OR REPLACE FUNCTION :SPOOL_SCHEMA.enqueue_batch(p_jobs jsonb, p_validated boolean DEFAULT false)
RETURNS TABLE (id bigint, duplicate boolean, queue text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_bad record;
  v_ids bigint[];
  v_dup boolean[];
  v_job jsonb;
  v_existing bigint;
  v_tries integer;
BEGIN
  IF p_jobs IS NULL OR jsonb_typeof(p_jobs) <> 'array' THEN
    RAISE EXCEPTION 'spool.enqueue: jobs must be a JSON array of job objects'
      USING ERRCODE = '22023';
  END IF;
  IF jsonb_array_length(p_jobs) = 0 THEN
    RETURN;
  END IF;

  IF NOT p_validated THEN
    SELECT e.ord, :SPOOL_SCHEMA.job_input_problem(e.job) AS message INTO v_bad
      FROM jsonb_array_elements(p_jobs) WITH ORDINALITY AS e(job, ord)
     WHERE :SPOOL_SCHEMA.job_input_problem(e.job) IS NOT NULL
     ORDER BY e.ord
     LIMIT 1;
    IF FOUND THEN
      IF jsonb_array_length(p_jobs) = 1 THEN
        RAISE EXCEPTION 'spool.enqueue: %', v_bad.message USING ERRCODE = '22023';
      END IF;
      RAISE EXCEPTION 'spool.enqueue: job % of the batch (index %): %', v_bad.ord, v_bad.ord - 1, v_bad.message
        USING ERRCODE = '22023';
    END IF;
  END IF;

  IF NOT p_jobs @? '$[*] ? (@.unique_key != null)' THEN
    RETURN QUERY
      WITH inserted AS (
        INSERT INTO :SPOOL_SCHEMA.jobs AS j
          (queue, kind, payload, state, priority, run_at, max_attempts, timeout_ms, unique_key, tags, metadata, group_key, tenant)
        SELECT f.queue, f.kind, f.payload, f.state, f.priority, f.run_at, f.max_attempts, f.timeout_ms, f.unique_key,
               f.tags, f.metadata, f.group_key, f.tenant
          FROM :SPOOL_SCHEMA.jobs_from_json(p_jobs) AS f
         ORDER BY f.ord
        RETURNING j.id, j.queue
      )
      SELECT inserted.id, false, inserted.queue::text FROM inserted;
    RETURN;
  END IF;

  SELECT array_agg(i.id ORDER BY i.ord), array_agg(false ORDER BY i.ord)
    INTO v_ids, v_dup
    FROM :SPOOL_SCHEMA.insert_jobs(p_jobs) AS i;

  FOR i IN 1 .. array_length(v_ids, 1) LOOP
    CONTINUE WHEN v_ids[i] IS NOT NULL;
    v_job := p_jobs -> (i - 1);
    v_tries := 0;
    LOOP
      SELECT j.id INTO v_existing
        FROM :SPOOL_SCHEMA.jobs j
       WHERE j.queue = :SPOOL_SCHEMA.element_queue(v_job)
         AND j.unique_key = v_job->>'unique_key'
         AND coalesce(j.tenant::text, '') = coalesce(v_job->>'tenant', '')
         AND j.state IN ('scheduled', 'available', 'running');
      IF FOUND THEN
        v_ids[i] := v_existing;
        v_dup[i] := true;
        EXIT;
      END IF;
      SELECT r.id INTO v_existing FROM :SPOOL_SCHEMA.insert_jobs(jsonb_build_array(v_job)) AS r;
      IF v_existing IS NOT NULL THEN
        v_ids[i] := v_existing;
        EXIT;
      END IF;
      v_tries := v_tries + 1;
      IF v_tries >= 10 THEN
        RAISE EXCEPTION 'spool.enqueue: unique key % in queue % is contended; retry the enqueue',
          v_job->>'unique_key', :SPOOL_SCHEMA.element_queue(v_job) USING ERRCODE = '40001';
      END IF;
    END LOOP;
  END LOOP;

  RETURN QUERY
    SELECT u.id, u.duplicate, :SPOOL_SCHEMA.element_queue(p_jobs -> (u.ord::integer - 1))
      FROM unnest(v_ids, v_dup) WITH ORDINALITY AS u(id, duplicate, ord)
     ORDER BY u.ord;
END
$$;

CREATE OR REPLACE FUNCTION :SPOOL_SCHEMA.job_input_problem(job jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE
    WHEN jsonb_typeof(job) <> 'object'
      THEN 'must be an object with at least a "kind"'
    WHEN job->>'kind' IS NULL OR job->>'kind' = ''
      THEN 'kind must not be empty: name the handler, e.g. ''email.send'''
    WHEN length(job->>'kind') > 255 OR job->>'kind' !~ '^[A-Za-z0-9_][A-Za-z0-9_.:/-]*$'
      THEN format('kind %L is invalid: use 1-255 letters, digits and _ . : / - (starting with a letter, digit or _)', job->>'kind')
    WHEN job->>'queue' IS NOT NULL
         AND (length(job->>'queue') > 128 OR job->>'queue' !~ '^[A-Za-z0-9_][A-Za-z0-9_.:/-]*$')
      THEN format('queue %L is invalid: use 1-128 letters, digits and _ . : / - (starting with a letter, digit or _)', job->>'queue')
    WHEN job ? 'max_attempts' AND jsonb_typeof(job->'max_attempts') <> 'null'
         AND (jsonb_typeof(job->'max_attempts') <> 'number' OR (job->>'max_attempts')::numeric < 1
              OR (job->>'max_attempts')::numeric > 2147483647
              OR (job->>'max_attempts')::numeric <> trunc((job->>'max_attempts')::numeric))
      THEN format('max_attempts must be a whole number of at least 1 (got %s)', job->'max_attempts')
    WHEN job ? 'timeout_ms' AND jsonb_typeof(job->'timeout_ms') <> 'null'
         AND (jsonb_typeof(job->'timeout_ms') <> 'number' OR (job->>'timeout_ms')::numeric < 1
              OR (job->>'timeout_ms')::numeric > 2147483647
              OR (job->>'timeout_ms')::numeric <> trunc((job->>'timeout_ms')::numeric))
      THEN format('timeout_ms must be a whole number of milliseconds >= 1, or null for none (got %s)', job->'timeout_ms')
    WHEN job ? 'priority' AND jsonb_typeof(job->'priority') <> 'null'
         AND (jsonb_typeof(job->'priority') <> 'number' OR (job->>'priority')::numeric NOT BETWEEN -32768 AND 32767
              OR (job->>'priority')::numeric <> trunc((job->>'priority')::numeric))
      THEN format('priority must be a whole number from -32768 to 32767, lower runs first (got %s)', job->'priority')
    WHEN job ? 'unique_key' AND jsonb_typeof(job->'unique_key') <> 'null'
         AND (jsonb_typeof(job->'unique_key') <> 'string' OR length(job->>'unique_key') NOT BETWEEN 1 AND 512)
      THEN 'unique_key must be a string of 1-512 characters, or null for no uniqueness'
    WHEN job ? 'group' AND jsonb_typeof(job->'group') <> 'null'
         AND (jsonb_typeof(job->'group') <> 'string' OR length(job->>'group') NOT BETWEEN 1 AND 128
              OR job->>'group' ~ '[[:cntrl:]]')
      THEN 'group must be a string of 1-128 characters without control characters, or null for none'
    WHEN job ? 'tenant' AND jsonb_typeof(job->'tenant') <> 'null'
         AND (jsonb_typeof(job->'tenant') <> 'string' OR length(job->>'tenant') NOT BETWEEN 1 AND 128
              OR job->>'tenant' ~ '[[:cntrl:]]')
      THEN 'tenant must be a string of 1-128 characters without control characters, or null for none'
    WHEN jsonb_typeof(job->'run_at') = 'string' AND jsonb_typeof(job->'delay_ms') = 'number'
      THEN 'give either run_at or delay_ms, not both'
    WHEN job ? 'delay_ms' AND jsonb_typeof(job->'delay_ms') <> 'null'
         AND (jsonb_typeof(job->'delay_ms') <> 'number' OR (job->>'delay_ms')::numeric < 0)
      THEN format('delay_ms must be a number of milliseconds >= 0 (got %s)', job->'delay_ms')
    WHEN job ? 'tags' AND jsonb_typeof(job->'tags') <> 'null'
         AND (jsonb_typeof(job->'tags') <> 'array' OR jsonb_array_length(job->'tags') > 64
              OR EXISTS (SELECT 1 FROM jsonb_array_elements(job->'tags') t
                          WHERE jsonb_typeof(t) <> 'string' OR length(t #>> '{}') NOT BETWEEN 1 AND 128))
      THEN 'tags must be an array of at most 64 strings of 1-128 characters'
    WHEN job ? 'metadata' AND jsonb_typeof(job->'metadata') NOT IN ('object', 'null')
      THEN 'metadata must be a JSON object'
    WHEN octet_length((job->'payload')::text) > 1048576
      THEN format('payload is %s bytes as JSON, over the 1048576: store large data elsewhere and pass a reference',
                  octet_length((job->'payload')::text))
    WHEN job->'payload' @? 'strict $.**{64}'
      THEN 'payload nests deeper than 64 levels: flatten it'
    WHEN job->'metadata' @? 'strict $.**{64}'
      THEN 'metadata nests deeper than 64 levels: flatten it'
  END
$$;

DROP FUNCTION :SPOOL_SCHEMA.enqueue(text, jsonb, text, timestamptz, integer, integer, text, integer, text[], text);
CREATE FUNCTION :SPOOL_SCHEMA.enqueue(
  kind text,
  payload jsonb DEFAULT '{}',
  queue text DEFAULT NULL,
  run_at timestamptz DEFAULT NULL,
  priority integer DEFAULT NULL,
  max_attempts integer DEFAULT NULL,
  unique_key text DEFAULT NULL,
  timeout_ms integer DEFAULT NULL,
  tags text[] DEFAULT NULL,
  group_key text DEFAULT NULL,
  tenant text DEFAULT NULL
) RETURNS bigint
LANGUAGE sql AS $$
  SELECT b.id FROM :SPOOL_SCHEMA.enqueue_batch(jsonb_build_array(jsonb_build_object(
    'kind', kind, 'payload', payload, 'queue', queue, 'run_at', run_at,
    'priority', priority, 'max_attempts', max_attempts, 'unique_key', unique_key,
    'timeout_ms', timeout_ms, 'tags', tags, 'group', group_key, 'tenant', tenant
  ))) AS b
$$;

-- Row-level security keyed on the transaction's spool.tenant.
CREATE FUNCTION :SPOOL_SCHEMA.tenant_visible(p_tenant text) RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT coalesce(nullif(current_setting('spool.tenant', true), ''), p_tenant) IS NOT DISTINCT FROM p_tenant
$$;
ALTER TABLE :SPOOL_SCHEMA.jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE :SPOOL_SCHEMA.job_history ENABLE ROW LEVEL SECURITY;
CREATE POLICY jobs_tenant ON :SPOOL_SCHEMA.jobs
  USING (:SPOOL_SCHEMA.tenant_visible(tenant)) WITH CHECK (:SPOOL_SCHEMA.tenant_visible(tenant));
CREATE POLICY job_history_tenant ON :SPOOL_SCHEMA.job_history
  USING (:SPOOL_SCHEMA.tenant_visible(tenant)) WITH CHECK (:SPOOL_SCHEMA.tenant_visible(tenant));

-- The role the API becomes for a tenant-bound key (SET LOCAL ROLE): no
-- login, no superuser, no BYPASSRLS, only what those requests need. Roles
-- belong to the whole server: it is made by the first migration whose user
-- may create roles. Without it, tenant requests rely on the SQL filters
-- alone, and the API says so when it starts.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'spool_tenant') THEN
    BEGIN
      CREATE ROLE spool_tenant NOLOGIN NOSUPERUSER NOBYPASSRLS;
    EXCEPTION WHEN insufficient_privilege THEN
      RAISE NOTICE 'spool: cannot create the role spool_tenant (no CREATEROLE): tenant requests will not run under row-level security';
      RETURN;
    END;
  END IF;
  BEGIN
    EXECUTE format('GRANT spool_tenant TO %I', current_user);
  EXCEPTION WHEN insufficient_privilege OR invalid_grant_operation THEN
    RAISE NOTICE 'spool: cannot grant spool_tenant to %: tenant requests will not run under row-level security', current_user;
  END;
  GRANT USAGE ON SCHEMA :SPOOL_SCHEMA TO spool_tenant;
  GRANT SELECT, INSERT, UPDATE, DELETE ON :SPOOL_SCHEMA.jobs, :SPOOL_SCHEMA.job_history TO spool_tenant;
  GRANT SELECT ON :SPOOL_SCHEMA.all_jobs, :SPOOL_SCHEMA.dead_jobs, :SPOOL_SCHEMA.queue_stats, :SPOOL_SCHEMA.queues TO spool_tenant;
END
$$;
