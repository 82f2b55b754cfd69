-- 0001: the jobs table, its state model, enqueue functions and the wake-up NOTIFY.
--
-- :SPOOL_SCHEMA is replaced by the quoted schema name and :SPOOL_CHANNEL by the
-- quoted NOTIFY channel ('<schema>_jobs') when the migration runs; the checksum
-- is taken over this text before the substitution.

CREATE TYPE :SPOOL_SCHEMA.job_state AS ENUM (
  'scheduled',  -- waits for run_at (new future job, or a retry in backoff)
  'available',  -- due: may be claimed
  'running',    -- claimed by worker_id until lease_expires_at
  'completed',  -- finished ok
  'dead',       -- attempts exhausted or a permanent error: the dead-letter queue
  'cancelled'   -- cancelled before or while running
);

CREATE TABLE :SPOOL_SCHEMA.jobs (
  id                  bigint GENERATED ALWAYS AS IDENTITY (SEQUENCE NAME :SPOOL_SCHEMA.jobs_id_seq) PRIMARY KEY,
  queue               text COLLATE "C" NOT NULL DEFAULT 'default',
  kind                text COLLATE "C" NOT NULL,
  payload             jsonb NOT NULL DEFAULT '{}',
  state               :SPOOL_SCHEMA.job_state NOT NULL DEFAULT 'available',
  priority            smallint NOT NULL DEFAULT 0,
  run_at              timestamptz NOT NULL DEFAULT now(),
  attempt             integer NOT NULL DEFAULT 0,
  max_attempts        integer NOT NULL DEFAULT 25,
  timeout_ms          integer,
  lease_expires_at    timestamptz,
  worker_id           text,
  unique_key          text COLLATE "C",
  tags                text[] NOT NULL DEFAULT '{}',
  result              jsonb,
  errors              jsonb NOT NULL DEFAULT '[]',
  progress            jsonb,
  metadata            jsonb NOT NULL DEFAULT '{}',
  created_at          timestamptz NOT NULL DEFAULT now(),
  started_at          timestamptz,
  finished_at         timestamptz,
  cancel_requested_at timestamptz,

  -- The last line of defence for raw INSERTs; spool.enqueue() and the client
  -- validate first and give friendlier messages.
  -- (Length and pattern are checked apart: a bounded repetition like {0,254}
  -- makes PostgreSQL's regex engine ~40x slower, measured on 10,000-row batches.)
  CONSTRAINT jobs_kind_format CHECK (length(kind) <= 255 AND kind ~ '^[A-Za-z0-9_][A-Za-z0-9_.:/-]*$'),
  CONSTRAINT jobs_queue_format CHECK (length(queue) <= 128 AND queue ~ '^[A-Za-z0-9_][A-Za-z0-9_.:/-]*$'),
  CONSTRAINT jobs_attempt_range CHECK (attempt >= 0),
  CONSTRAINT jobs_max_attempts_range CHECK (max_attempts >= 1),
  CONSTRAINT jobs_timeout_ms_range CHECK (timeout_ms IS NULL OR timeout_ms >= 1),
  CONSTRAINT jobs_unique_key_length CHECK (unique_key IS NULL OR length(unique_key) BETWEEN 1 AND 512),
  CONSTRAINT jobs_metadata_object CHECK (jsonb_typeof(metadata) = 'object'),
  CONSTRAINT jobs_errors_array CHECK (jsonb_typeof(errors) = 'array'),
  CONSTRAINT jobs_running_has_lease CHECK (
    state <> 'running' OR (worker_id IS NOT NULL AND lease_expires_at IS NOT NULL)
  ),
  CONSTRAINT jobs_finished_has_time CHECK (
    (state IN ('completed', 'dead', 'cancelled')) = (finished_at IS NOT NULL)
  )
);

-- The claim: only runnable rows, in claim order within a queue, so its size
-- tracks the backlog and not the history.
CREATE INDEX jobs_claim ON :SPOOL_SCHEMA.jobs (queue, priority, run_at, id)
  WHERE state = 'available';

-- The promoter: due scheduled jobs, and the earliest next run_at.
CREATE INDEX jobs_scheduled ON :SPOOL_SCHEMA.jobs (run_at)
  WHERE state = 'scheduled';

-- The reaper: running jobs whose lease expired.
CREATE INDEX jobs_lease ON :SPOOL_SCHEMA.jobs (lease_expires_at)
  WHERE state = 'running';

-- The pruner: finished jobs by age.
CREATE INDEX jobs_finished ON :SPOOL_SCHEMA.jobs (finished_at)
  WHERE state IN ('completed', 'dead', 'cancelled');

-- Unique jobs: one unfinished job per (queue, unique_key). Race-free because
-- the index, not a SELECT, decides.
CREATE UNIQUE INDEX jobs_unique_key ON :SPOOL_SCHEMA.jobs (queue, unique_key)
  WHERE unique_key IS NOT NULL AND state IN ('scheduled', 'available', 'running');

-- One NOTIFY per INSERT statement (not per row), naming the queues that got
-- available jobs and whether any job was scheduled for later. Identical
-- payloads in one transaction are folded into one by PostgreSQL, so
-- SELECT spool.enqueue(...) FROM generate_series(...) also wakes workers once.
CREATE FUNCTION :SPOOL_SCHEMA.notify_inserted_jobs() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  v_queues text[];
  v_scheduled boolean;
  v_payload text;
BEGIN
  SELECT array_agg(DISTINCT queue ORDER BY queue) FILTER (WHERE state = 'available'),
         coalesce(bool_or(state = 'scheduled'), false)
    INTO v_queues, v_scheduled
    FROM new_jobs;
  IF v_queues IS NULL AND NOT v_scheduled THEN
    RETURN NULL;
  END IF;
  v_payload := json_build_object('queues', v_queues, 'scheduled', v_scheduled)::text;
  IF length(v_payload) > 7900 THEN
    -- NOTIFY payloads stop at 8000 bytes: "queues": null means "any queue".
    v_payload := json_build_object('queues', NULL, 'scheduled', v_scheduled)::text;
  END IF;
  PERFORM pg_notify(:SPOOL_CHANNEL, v_payload);
  RETURN NULL;
END
$$;

CREATE TRIGGER jobs_notify_insert
  AFTER INSERT ON :SPOOL_SCHEMA.jobs
  REFERENCING NEW TABLE AS new_jobs
  FOR EACH STATEMENT EXECUTE FUNCTION :SPOOL_SCHEMA.notify_inserted_jobs();

-- A batch of jobs given as a JSON array of objects, as rows ready to insert.
-- Keys: kind, payload, queue, priority, run_at, delay_ms, max_attempts,
-- timeout_ms, unique_key, tags, metadata; a missing key takes the column's default.
-- run_at and the state come from the database clock. Inlined by the planner.
CREATE FUNCTION :SPOOL_SCHEMA.jobs_from_json(p_jobs jsonb)
RETURNS TABLE (
  ord bigint, kind text, payload jsonb, queue text, priority smallint, run_at timestamptz,
  state :SPOOL_SCHEMA.job_state, max_attempts integer, timeout_ms integer, unique_key text, tags text[],
  metadata jsonb
)
LANGUAGE sql STABLE AS $$
  SELECT x.ord, x.kind, coalesce(x.payload, '{}'), coalesce(x.queue, 'default'), coalesce(x.priority, 0),
         coalesce(x.run_at, now() + x.delay_ms * interval '1 millisecond', now()),
         CAST(CASE WHEN coalesce(x.run_at, now() + x.delay_ms * interval '1 millisecond', now()) > now()
                   THEN 'scheduled' ELSE 'available' END AS :SPOOL_SCHEMA.job_state),
         coalesce(x.max_attempts, 25), x.timeout_ms, x.unique_key, coalesce(x.tags, '{}'), coalesce(x.metadata, '{}')
    FROM ROWS FROM (jsonb_to_recordset(p_jobs) AS (
           kind text, payload jsonb, queue text, priority smallint, run_at timestamptz,
           delay_ms bigint, max_attempts integer, timeout_ms integer, unique_key text, tags text[], metadata jsonb
         )) WITH ORDINALITY
         AS x(kind, payload, queue, priority, run_at, delay_ms, max_attempts, timeout_ms, unique_key, tags, metadata, ord)
$$;

-- Inserts a batch that may hold unique keys. Returns one row per element in
-- input order: the new job's id, or NULL where an unfinished job with the
-- same (queue, unique_key) exists (ids are drawn first so that each result
-- maps to its element). Internal: enqueue_batch() resolves the NULLs.
CREATE FUNCTION :SPOOL_SCHEMA.insert_jobs(p_jobs jsonb)
RETURNS TABLE (ord bigint, id bigint)
LANGUAGE sql AS $$
  WITH input AS (
    SELECT nextval(':SPOOL_SCHEMA.jobs_id_seq') AS new_id, f.*
      FROM :SPOOL_SCHEMA.jobs_from_json(p_jobs) AS f
  ), inserted AS (
    INSERT INTO :SPOOL_SCHEMA.jobs AS j
      (id, queue, kind, payload, state, priority, run_at, max_attempts, timeout_ms, unique_key, tags, metadata)
    OVERRIDING SYSTEM VALUE
    SELECT new_id, queue, kind, payload, state, priority, run_at, max_attempts, timeout_ms, unique_key, tags, metadata
      FROM input
     ORDER BY ord
    ON CONFLICT (queue, unique_key)
      WHERE unique_key IS NOT NULL AND state IN ('scheduled', 'available', 'running')
      DO NOTHING
    RETURNING j.id
  )
  SELECT input.ord, inserted.id
    FROM input LEFT JOIN inserted ON inserted.id = input.new_id
   ORDER BY input.ord
$$;

-- Validates a batch (one set-based pass, raising on the first bad element)
-- and inserts it. Returns (id, duplicate) per element in input order; a
-- duplicate names the unfinished job that already holds its unique key.
-- p_validated => true skips the validation pass (the TypeScript client has
-- validated with zod already; it costs ~40% of a 10,000-job batch); the
-- table's CHECK constraints apply either way.
CREATE FUNCTION :SPOOL_SCHEMA.enqueue_batch(p_jobs jsonb, p_validated boolean DEFAULT false)
RETURNS TABLE (id bigint, duplicate boolean)
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
    SELECT e.ord, problem.message INTO v_bad
      FROM jsonb_array_elements(p_jobs) WITH ORDINALITY AS e(job, ord)
      CROSS JOIN LATERAL (SELECT CASE
        WHEN jsonb_typeof(e.job) <> 'object'
          THEN 'must be an object with at least a "kind"'
        WHEN e.job->>'kind' IS NULL OR e.job->>'kind' = ''
          THEN 'kind must not be empty: name the handler, e.g. ''email.send'''
        WHEN length(e.job->>'kind') > 255 OR e.job->>'kind' !~ '^[A-Za-z0-9_][A-Za-z0-9_.:/-]*$'
          THEN format('kind %L is invalid: use 1-255 letters, digits and _ . : / - (starting with a letter, digit or _)', e.job->>'kind')
        WHEN e.job->>'queue' IS NOT NULL
             AND (length(e.job->>'queue') > 128 OR e.job->>'queue' !~ '^[A-Za-z0-9_][A-Za-z0-9_.:/-]*$')
          THEN format('queue %L is invalid: use 1-128 letters, digits and _ . : / - (starting with a letter, digit or _)', e.job->>'queue')
        WHEN e.job ? 'max_attempts' AND jsonb_typeof(e.job->'max_attempts') <> 'null'
             AND (jsonb_typeof(e.job->'max_attempts') <> 'number' OR (e.job->>'max_attempts')::numeric < 1
                  OR (e.job->>'max_attempts')::numeric > 2147483647
                  OR (e.job->>'max_attempts')::numeric <> trunc((e.job->>'max_attempts')::numeric))
          THEN format('max_attempts must be a whole number of at least 1 (got %s)', e.job->'max_attempts')
        WHEN e.job ? 'timeout_ms' AND jsonb_typeof(e.job->'timeout_ms') <> 'null'
           AND (jsonb_typeof(e.job->'timeout_ms') <> 'number' OR (e.job->>'timeout_ms')::numeric < 1
                OR (e.job->>'timeout_ms')::numeric > 2147483647
                OR (e.job->>'timeout_ms')::numeric <> trunc((e.job->>'timeout_ms')::numeric))
        THEN format('timeout_ms must be a whole number of milliseconds >= 1, or null for none (got %s)', e.job->'timeout_ms')
      WHEN e.job ? 'priority' AND jsonb_typeof(e.job->'priority') <> 'null'
             AND (jsonb_typeof(e.job->'priority') <> 'number' OR (e.job->>'priority')::numeric NOT BETWEEN -32768 AND 32767
                  OR (e.job->>'priority')::numeric <> trunc((e.job->>'priority')::numeric))
          THEN format('priority must be a whole number from -32768 to 32767, lower runs first (got %s)', e.job->'priority')
        WHEN e.job ? 'unique_key' AND jsonb_typeof(e.job->'unique_key') <> 'null'
             AND (jsonb_typeof(e.job->'unique_key') <> 'string' OR length(e.job->>'unique_key') NOT BETWEEN 1 AND 512)
          THEN 'unique_key must be a string of 1-512 characters, or null for no uniqueness'
        WHEN jsonb_typeof(e.job->'run_at') = 'string' AND jsonb_typeof(e.job->'delay_ms') = 'number'
          THEN 'give either run_at or delay_ms, not both'
        WHEN e.job ? 'delay_ms' AND jsonb_typeof(e.job->'delay_ms') <> 'null'
             AND (jsonb_typeof(e.job->'delay_ms') <> 'number' OR (e.job->>'delay_ms')::numeric < 0)
          THEN format('delay_ms must be a number of milliseconds >= 0 (got %s)', e.job->'delay_ms')
        WHEN e.job ? 'tags' AND jsonb_typeof(e.job->'tags') <> 'null'
             AND (jsonb_typeof(e.job->'tags') <> 'array' OR jsonb_array_length(e.job->'tags') > 64
                  OR EXISTS (SELECT 1 FROM jsonb_array_elements(e.job->'tags') t
                              WHERE jsonb_typeof(t) <> 'string' OR length(t #>> '{}') NOT BETWEEN 1 AND 128))
          THEN 'tags must be an array of at most 64 strings of 1-128 characters'
        WHEN e.job ? 'metadata' AND jsonb_typeof(e.job->'metadata') NOT IN ('object', 'null')
          THEN 'metadata must be a JSON object'
        END AS message) AS problem
     WHERE problem.message IS NOT NULL
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

  -- Fast path, no unique keys: every element is inserted, and RETURNING
  -- follows the ORDER BY, so ids come back in input order.
  IF NOT p_jobs @? '$[*] ? (@.unique_key != null)' THEN
    RETURN QUERY
      WITH inserted AS (
        INSERT INTO :SPOOL_SCHEMA.jobs AS j
          (queue, kind, payload, state, priority, run_at, max_attempts, timeout_ms, unique_key, tags, metadata)
        SELECT f.queue, f.kind, f.payload, f.state, f.priority, f.run_at, f.max_attempts, f.timeout_ms, f.unique_key,
               f.tags, f.metadata
          FROM :SPOOL_SCHEMA.jobs_from_json(p_jobs) AS f
         ORDER BY f.ord
        RETURNING j.id
      )
      SELECT inserted.id, false FROM inserted;
    RETURN;
  END IF;

  SELECT array_agg(i.id ORDER BY i.ord), array_agg(false ORDER BY i.ord)
    INTO v_ids, v_dup
    FROM :SPOOL_SCHEMA.insert_jobs(p_jobs) AS i;

  -- Elements that hit the unique index: find the job holding the key. Each
  -- statement here sees a fresh snapshot, so a holder committed after the
  -- INSERT began is visible; if the holder finished meanwhile, insert again.
  FOR i IN 1 .. array_length(v_ids, 1) LOOP
    CONTINUE WHEN v_ids[i] IS NOT NULL;
    v_job := p_jobs -> (i - 1);
    v_tries := 0;
    LOOP
      SELECT j.id INTO v_existing
        FROM :SPOOL_SCHEMA.jobs j
       WHERE j.queue = coalesce(v_job->>'queue', 'default')
         AND j.unique_key = v_job->>'unique_key'
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
          v_job->>'unique_key', coalesce(v_job->>'queue', 'default') USING ERRCODE = '40001';
      END IF;
    END LOOP;
  END LOOP;

  RETURN QUERY SELECT u.id, u.duplicate FROM unnest(v_ids, v_dup) AS u(id, duplicate);
END
$$;

-- Enqueue one job from SQL (psql, a trigger, another language):
--   SELECT spool.enqueue('email.send', '{"to":"a@b.c"}', run_at => now() + interval '1 hour');
-- Returns the job's id, or the id of the unfinished job already holding
-- unique_key in that queue. priority is integer here (stored as smallint,
-- range-checked) so that a plain literal like priority => 5 resolves.
CREATE FUNCTION :SPOOL_SCHEMA.enqueue(
  kind text,
  payload jsonb DEFAULT '{}',
  queue text DEFAULT 'default',
  run_at timestamptz DEFAULT NULL,
  priority integer DEFAULT 0,
  max_attempts integer DEFAULT NULL,
  unique_key text DEFAULT NULL
) RETURNS bigint
LANGUAGE sql AS $$
  SELECT b.id FROM :SPOOL_SCHEMA.enqueue_batch(jsonb_build_array(jsonb_build_object(
    'kind', kind, 'payload', payload, 'queue', queue, 'run_at', run_at,
    'priority', priority, 'max_attempts', max_attempts, 'unique_key', unique_key
  ))) AS b
$$;

-- Per queue: jobs by state and the age of the oldest available job.
-- Scans the table: fine for psql and dashboards, not for a tight loop.
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
  FROM :SPOOL_SCHEMA.jobs
 GROUP BY queue;

-- The dead-letter queue: jobs that will not run again unless replayed.
CREATE VIEW :SPOOL_SCHEMA.dead_jobs AS
SELECT id, queue, kind, payload, attempt, max_attempts, errors, errors -> -1 AS last_error,
       tags, metadata, created_at, finished_at
  FROM :SPOOL_SCHEMA.jobs
 WHERE state = 'dead';
