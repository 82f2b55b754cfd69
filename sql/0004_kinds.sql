-- 0004: the kind registry. Every worker upserts the kinds it handles when it
-- starts (and producers may, with spool.registerKinds), so that a job
-- enqueued by kind name alone (HTTP, CLI, SQL, a trigger) gets the kind's
-- defaults, and the API can check its payload against the kind's schema.

CREATE TABLE :SPOOL_SCHEMA.kinds (
  kind               :SPOOL_SCHEMA.job_kind PRIMARY KEY,
  queue              :SPOOL_SCHEMA.queue_name NOT NULL DEFAULT 'default',
  priority           smallint NOT NULL DEFAULT 0,
  max_attempts       integer NOT NULL DEFAULT 25,
  -- null: no timeout.
  timeout_ms         integer,
  -- null: the worker's own setting decides.
  remove_on_complete boolean,
  tags               text[] NOT NULL DEFAULT '{}',
  -- JSON Schema (draft 2020-12) of the payload as the caller sends it, made
  -- from the kind's zod schema; null: any JSON.
  payload_schema     jsonb,
  -- Worker id, or 'client:<host>:<pid>' for spool.registerKinds().
  registered_by      text NOT NULL,
  registered_at      timestamptz NOT NULL DEFAULT now(),
  last_seen_at       timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT kinds_max_attempts_range CHECK (max_attempts >= 1),
  CONSTRAINT kinds_timeout_ms_range CHECK (timeout_ms IS NULL OR timeout_ms >= 1)
);

-- Rows from JSON, now with the kind's registered defaults where the element
-- has none (a key that is missing or null); the element's own values win.
-- Same signature as in 0001, so every caller (insert_jobs, enqueue_batch)
-- picks the defaults up. One primary-key lookup per distinct kind.
CREATE OR REPLACE FUNCTION :SPOOL_SCHEMA.jobs_from_json(p_jobs jsonb)
RETURNS TABLE (
  ord bigint, kind text, payload jsonb, queue text, priority smallint, run_at timestamptz,
  state :SPOOL_SCHEMA.job_state, max_attempts integer, timeout_ms integer, unique_key text, tags text[],
  metadata jsonb
)
LANGUAGE sql STABLE AS $$
  SELECT x.ord, x.kind, coalesce(x.payload, '{}'), coalesce(x.queue, k.queue, 'default'), coalesce(x.priority, k.priority, 0),
         coalesce(x.run_at, now() + x.delay_ms * interval '1 millisecond', now()),
         CAST(CASE WHEN coalesce(x.run_at, now() + x.delay_ms * interval '1 millisecond', now()) > now()
                   THEN 'scheduled' ELSE 'available' END AS :SPOOL_SCHEMA.job_state),
         coalesce(x.max_attempts, k.max_attempts, 25), coalesce(x.timeout_ms, k.timeout_ms), x.unique_key,
         coalesce(x.tags, k.tags, '{}'), coalesce(x.metadata, '{}')
    FROM ROWS FROM (jsonb_to_recordset(p_jobs) AS (
           kind text, payload jsonb, queue text, priority smallint, run_at timestamptz,
           delay_ms bigint, max_attempts integer, timeout_ms integer, unique_key text, tags text[], metadata jsonb
         )) WITH ORDINALITY
         AS x(kind, payload, queue, priority, run_at, delay_ms, max_attempts, timeout_ms, unique_key, tags, metadata, ord)
    LEFT JOIN :SPOOL_SCHEMA.kinds k ON k.kind = x.kind
$$;

-- The queue a batch element goes to: its own, its kind's, or 'default'
-- (for finding the holder of a unique key).
CREATE FUNCTION :SPOOL_SCHEMA.element_queue(p_job jsonb) RETURNS text
LANGUAGE sql STABLE AS $$
  SELECT coalesce(p_job->>'queue', (SELECT k.queue FROM :SPOOL_SCHEMA.kinds k WHERE k.kind = p_job->>'kind'), 'default')
$$;

-- enqueue_batch as in 0001, except that a unique key's holder is looked up
-- in the element's effective queue (its kind's queue when it names none),
-- and that each row also says the queue its job went to (the caller may not
-- have named one: the client counts enqueues by queue).
DROP FUNCTION :SPOOL_SCHEMA.enqueue(text, jsonb, text, timestamptz, integer, integer, text);
DROP FUNCTION :SPOOL_SCHEMA.enqueue_batch(jsonb, boolean);
CREATE FUNCTION :SPOOL_SCHEMA.enqueue_batch(p_jobs jsonb, p_validated boolean DEFAULT false)
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

  IF NOT p_jobs @? '$[*] ? (@.unique_key != null)' THEN
    RETURN QUERY
      WITH inserted AS (
        INSERT INTO :SPOOL_SCHEMA.jobs AS j
          (queue, kind, payload, state, priority, run_at, max_attempts, timeout_ms, unique_key, tags, metadata)
        SELECT f.queue, f.kind, f.payload, f.state, f.priority, f.run_at, f.max_attempts, f.timeout_ms, f.unique_key,
               f.tags, f.metadata
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

-- spool.enqueue() from SQL: queue and priority now default to null, so a
-- job enqueued by kind alone (psql, a trigger) takes its kind's registered
-- queue, priority, max_attempts, timeout and tags. An unknown kind is still
-- accepted (a trigger must not fail because no worker has started yet) and
-- gets the column defaults. timeout_ms and tags are new, at the end.
CREATE FUNCTION :SPOOL_SCHEMA.enqueue(
  kind text,
  payload jsonb DEFAULT '{}',
  queue text DEFAULT NULL,
  run_at timestamptz DEFAULT NULL,
  priority integer DEFAULT NULL,
  max_attempts integer DEFAULT NULL,
  unique_key text DEFAULT NULL,
  timeout_ms integer DEFAULT NULL,
  tags text[] DEFAULT NULL
) RETURNS bigint
LANGUAGE sql AS $$
  SELECT b.id FROM :SPOOL_SCHEMA.enqueue_batch(jsonb_build_array(jsonb_build_object(
    'kind', kind, 'payload', payload, 'queue', queue, 'run_at', run_at,
    'priority', priority, 'max_attempts', max_attempts, 'unique_key', unique_key,
    'timeout_ms', timeout_ms, 'tags', tags
  ))) AS b
$$;
