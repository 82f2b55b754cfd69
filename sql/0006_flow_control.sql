-- 0006: flow control and schedules (docs/flow-control.md,
-- docs/adr/0007-flow-control-in-the-claim.md).
--
-- * Jobs get an optional group (group_key: a tenant, a customer) that fair
--   queues share out by weight and that limits may apply to.
-- * limits: per queue, kind or group, at most `concurrency` running at once
--   and at most `rate_limit` starts per `rate_window_ms`, enforced by
--   claim_flow() under a row lock on each limiter, so every worker on every
--   host obeys the same count. A queue row may also turn fairness on.
-- * schedules: cron schedules the maintenance leader turns into jobs, one
--   per tick (compare-and-set on next_run_at).

CREATE DOMAIN :SPOOL_SCHEMA.group_name AS text COLLATE "C"
  CONSTRAINT group_name_format CHECK (length(VALUE) BETWEEN 1 AND 128 AND VALUE !~ '[[:cntrl:]]');

ALTER TABLE :SPOOL_SCHEMA.jobs ADD COLUMN group_key :SPOOL_SCHEMA.group_name;
ALTER TABLE :SPOOL_SCHEMA.job_history ADD COLUMN group_key text COLLATE "C";

-- The fair claim walks a queue's waiting jobs group by group: one ordered
-- scan per group. '' stands for "no group" (a group name is never empty),
-- so ungrouped jobs are found by the same index.
CREATE INDEX jobs_claim_group ON :SPOOL_SCHEMA.jobs (queue, (coalesce(group_key::text, '')), priority, run_at, id)
  WHERE state = 'available';

CREATE OR REPLACE VIEW :SPOOL_SCHEMA.all_jobs AS
SELECT id, queue::text AS queue, kind::text AS kind, payload, state, priority, run_at, attempt, max_attempts, timeout_ms,
       lease_expires_at, worker_id, unique_key, tags, result, errors::jsonb AS errors, progress, metadata::jsonb AS metadata,
       created_at, started_at, finished_at, cancel_requested_at, group_key::text AS group_key
  FROM :SPOOL_SCHEMA.jobs
UNION ALL
SELECT id, queue, kind, payload, state, priority, run_at, attempt, max_attempts, timeout_ms,
       lease_expires_at, worker_id, unique_key, tags, result, errors, progress, metadata,
       created_at, started_at, finished_at, cancel_requested_at, group_key
  FROM :SPOOL_SCHEMA.job_history;

CREATE OR REPLACE VIEW :SPOOL_SCHEMA.dead_jobs AS
SELECT id, queue, kind, payload, attempt, max_attempts, errors, errors -> -1 AS last_error,
       tags, metadata, created_at, finished_at, group_key
  FROM :SPOOL_SCHEMA.all_jobs
 WHERE state = 'dead';

-- What is wrong with one element of an enqueue batch, or NULL: the checks
-- of 0004's enqueue_batch, in a function of their own, plus the group.
CREATE FUNCTION :SPOOL_SCHEMA.job_input_problem(job jsonb) RETURNS text
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
  END
$$;

-- Rows from JSON as in 0004, with the group (key "group").
DROP FUNCTION :SPOOL_SCHEMA.jobs_from_json(jsonb);
CREATE FUNCTION :SPOOL_SCHEMA.jobs_from_json(p_jobs jsonb)
RETURNS TABLE (
  ord bigint, kind text, payload jsonb, queue text, priority smallint, run_at timestamptz,
  state :SPOOL_SCHEMA.job_state, max_attempts integer, timeout_ms integer, unique_key text, tags text[],
  metadata jsonb, group_key text
)
LANGUAGE sql STABLE AS $$
  SELECT x.ord, x.kind, coalesce(x.payload, '{}'), coalesce(x.queue, k.queue, 'default'), coalesce(x.priority, k.priority, 0),
         coalesce(x.run_at, now() + x.delay_ms * interval '1 millisecond', now()),
         CAST(CASE WHEN coalesce(x.run_at, now() + x.delay_ms * interval '1 millisecond', now()) > now()
                   THEN 'scheduled' ELSE 'available' END AS :SPOOL_SCHEMA.job_state),
         coalesce(x.max_attempts, k.max_attempts, 25), coalesce(x.timeout_ms, k.timeout_ms), x.unique_key,
         coalesce(x.tags, k.tags, '{}'), coalesce(x.metadata, '{}'), x."group"
    FROM ROWS FROM (jsonb_to_recordset(p_jobs) AS (
           kind text, payload jsonb, queue text, priority smallint, run_at timestamptz,
           delay_ms bigint, max_attempts integer, timeout_ms integer, unique_key text, tags text[], metadata jsonb,
           "group" text
         )) WITH ORDINALITY
         AS x(kind, payload, queue, priority, run_at, delay_ms, max_attempts, timeout_ms, unique_key, tags, metadata, "group", ord)
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
      (id, queue, kind, payload, state, priority, run_at, max_attempts, timeout_ms, unique_key, tags, metadata, group_key)
    OVERRIDING SYSTEM VALUE
    SELECT new_id, queue, kind, payload, state, priority, run_at, max_attempts, timeout_ms, unique_key, tags, metadata, group_key
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

-- enqueue_batch as in 0004, with the group; its checks are job_input_problem's.
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
          (queue, kind, payload, state, priority, run_at, max_attempts, timeout_ms, unique_key, tags, metadata, group_key)
        SELECT f.queue, f.kind, f.payload, f.state, f.priority, f.run_at, f.max_attempts, f.timeout_ms, f.unique_key,
               f.tags, f.metadata, f.group_key
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

-- spool.enqueue() from SQL, now with the group ("group" is a reserved word,
-- so the parameter is group_key).
DROP FUNCTION :SPOOL_SCHEMA.enqueue(text, jsonb, text, timestamptz, integer, integer, text, integer, text[]);
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
  group_key text DEFAULT NULL
) RETURNS bigint
LANGUAGE sql AS $$
  SELECT b.id FROM :SPOOL_SCHEMA.enqueue_batch(jsonb_build_array(jsonb_build_object(
    'kind', kind, 'payload', payload, 'queue', queue, 'run_at', run_at,
    'priority', priority, 'max_attempts', max_attempts, 'unique_key', unique_key,
    'timeout_ms', timeout_ms, 'tags', tags, 'group', group_key
  ))) AS b
$$;

-- Flow limits. One row per limiter: a queue, a kind or a group. A queue's
-- row may also turn on fair share across its groups; a group's row carries
-- its weight in that share. The window arrays are the rate limiter's log of
-- recent starts (bucket start in epoch ms, starts in that bucket), written
-- by claim_flow() only.
CREATE TABLE :SPOOL_SCHEMA.limits (
  scope          text COLLATE "C" NOT NULL,
  name           text COLLATE "C" NOT NULL,
  concurrency    integer,
  rate_limit     integer,
  rate_window_ms integer,
  weight         integer NOT NULL DEFAULT 1,
  fair           boolean NOT NULL DEFAULT false,
  window_at_ms   bigint[] NOT NULL DEFAULT '{}',
  window_count   integer[] NOT NULL DEFAULT '{}',
  -- 'config' (set from a config file at start), 'api', 'cli' or 'sql'.
  source         text NOT NULL DEFAULT 'sql',
  updated_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (scope, name),
  CONSTRAINT limits_scope CHECK (scope IN ('queue', 'kind', 'group')),
  CONSTRAINT limits_name_format CHECK (CASE scope
    WHEN 'queue' THEN length(name) <= 128 AND name ~ '^[A-Za-z0-9_][A-Za-z0-9_.:/-]*$'
    WHEN 'kind' THEN length(name) <= 255 AND name ~ '^[A-Za-z0-9_][A-Za-z0-9_.:/-]*$'
    ELSE length(name) BETWEEN 1 AND 128 AND name !~ '[[:cntrl:]]' END),
  CONSTRAINT limits_concurrency_range CHECK (concurrency IS NULL OR concurrency BETWEEN 1 AND 1000000),
  CONSTRAINT limits_rate_range CHECK (
    (rate_limit IS NULL) = (rate_window_ms IS NULL)
    AND (rate_limit IS NULL OR rate_limit BETWEEN 1 AND 1000000)
    AND (rate_window_ms IS NULL OR rate_window_ms BETWEEN 1 AND 86400000)),
  CONSTRAINT limits_weight_range CHECK (weight BETWEEN 1 AND 1000),
  CONSTRAINT limits_fair_on_queues CHECK (NOT fair OR scope = 'queue')
);

-- Workers keep a list of which of their queues are under flow control; any
-- change of a limit's settings tells them to reload it.
CREATE FUNCTION :SPOOL_SCHEMA.notify_flow_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify(:SPOOL_CHANNEL, '{"flow":true}');
  RETURN NULL;
END
$$;
CREATE TRIGGER limits_notify_insert_delete AFTER INSERT OR DELETE ON :SPOOL_SCHEMA.limits
  FOR EACH STATEMENT EXECUTE FUNCTION :SPOOL_SCHEMA.notify_flow_changed();
CREATE TRIGGER limits_notify_update AFTER UPDATE OF concurrency, rate_limit, rate_window_ms, weight, fair ON :SPOOL_SCHEMA.limits
  FOR EACH STATEMENT EXECUTE FUNCTION :SPOOL_SCHEMA.notify_flow_changed();

-- A rate limiter's state at p_now_ms: how many more may start now, and, when
-- none may, in how many ms one may. Starts are logged in buckets of
-- q = ceil(W / 256) ms (at most 256 entries); a start logged in bucket b
-- happened in [b, b + q), so it may still fall in a window that ends at t if
-- b > t - W - q. Counting every such bucket never lets a window of W ms hold
-- more than the limit (it may admit up to q ms late instead).
CREATE FUNCTION :SPOOL_SCHEMA.rate_state(
  p_at bigint[], p_count integer[], p_limit integer, p_window_ms integer, p_now_ms bigint,
  OUT room integer, OUT refill_in_ms bigint
)
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  v_q bigint := greatest(1, ceil(p_window_ms / 256.0)::bigint);
  v_bucket bigint := p_now_ms - p_now_ms % v_q;
  v_used integer := 0;
  v_i integer;
BEGIN
  FOR v_i IN 1 .. coalesce(array_length(p_at, 1), 0) LOOP
    IF p_at[v_i] > v_bucket - p_window_ms - v_q THEN
      v_used := v_used + p_count[v_i];
    END IF;
  END LOOP;
  room := greatest(0, p_limit - v_used);
  IF room > 0 THEN
    RETURN;
  END IF;
  -- The oldest buckets leave the window first (the log is in time order).
  FOR v_i IN 1 .. coalesce(array_length(p_at, 1), 0) LOOP
    CONTINUE WHEN p_at[v_i] <= v_bucket - p_window_ms - v_q;
    v_used := v_used - p_count[v_i];
    IF v_used <= p_limit - 1 THEN
      -- Bucket b counts until the bucket that starts at or after b + W + q.
      refill_in_ms := ((p_at[v_i] + p_window_ms + v_q + v_q - 1) / v_q) * v_q - p_now_ms;
      RETURN;
    END IF;
  END LOOP;
  refill_in_ms := v_q;
END
$$;

-- Logs p_started starts at p_now_ms in a limiter's window and drops buckets
-- that can no longer count.
CREATE FUNCTION :SPOOL_SCHEMA.rate_record(
  p_at bigint[], p_count integer[], p_window_ms integer, p_now_ms bigint, p_started integer,
  OUT at_ms bigint[], OUT counts integer[]
)
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  v_q bigint := greatest(1, ceil(p_window_ms / 256.0)::bigint);
  v_bucket bigint := p_now_ms - p_now_ms % v_q;
  v_n integer;
BEGIN
  SELECT coalesce(array_agg(a ORDER BY o), '{}'), coalesce(array_agg(c ORDER BY o), '{}') INTO at_ms, counts
    FROM unnest(p_at, p_count) WITH ORDINALITY AS u(a, c, o)
   WHERE a > v_bucket - p_window_ms - v_q;
  IF p_started <= 0 THEN
    RETURN;
  END IF;
  v_n := coalesce(array_length(at_ms, 1), 0);
  IF v_n > 0 AND at_ms[v_n] >= v_bucket THEN
    -- Same bucket (or, should the clock step back, a later one): add to it.
    counts[v_n] := counts[v_n] + p_started;
  ELSE
    at_ms := at_ms || v_bucket;
    counts := counts || p_started;
  END IF;
END
$$;

-- The limiters with a concurrency or a rate that apply to a claim in
-- p_queue of p_kinds: the queue's, the kinds', and the groups' in p_groups
-- (NULL: every group with jobs waiting in the queue).
CREATE FUNCTION :SPOOL_SCHEMA.flow_limiters(p_queue text, p_kinds text[], p_groups text[])
RETURNS SETOF :SPOOL_SCHEMA.limits
LANGUAGE sql STABLE AS $$
  SELECT l.* FROM :SPOOL_SCHEMA.limits l
   WHERE (l.concurrency IS NOT NULL OR l.rate_limit IS NOT NULL)
     AND ((l.scope = 'queue' AND l.name = p_queue)
       OR (l.scope = 'kind' AND l.name = ANY(p_kinds))
       OR (l.scope = 'group' AND CASE WHEN p_groups IS NULL
             THEN EXISTS (SELECT 1 FROM :SPOOL_SCHEMA.jobs j
                           WHERE j.state = 'available' AND j.queue = p_queue AND coalesce(j.group_key::text, '') = l.name)
             ELSE l.name = ANY(p_groups) END))
   ORDER BY l.scope, l.name
$$;

-- What each applying limiter allows now (p_now_ms): how many may start,
-- when its rate refills if it is empty, and whether its concurrency leaves
-- less room than p_limit. Counts running jobs, so run it after locking the
-- limiters for an exact answer.
CREATE FUNCTION :SPOOL_SCHEMA.flow_allowances(p_queue text, p_kinds text[], p_groups text[], p_limit integer, p_now_ms bigint)
RETURNS TABLE (scope text, name text, allow integer, refill_in_ms bigint, concurrency_cut boolean)
LANGUAGE plpgsql AS $$
DECLARE
  v_lim record;
  v_running integer;
  v_state record;
BEGIN
  FOR v_lim IN SELECT * FROM :SPOOL_SCHEMA.flow_limiters(p_queue, p_kinds, p_groups) LOOP
    scope := v_lim.scope;
    name := v_lim.name;
    allow := NULL;
    refill_in_ms := NULL;
    concurrency_cut := false;
    IF v_lim.concurrency IS NOT NULL THEN
      SELECT count(*) INTO v_running FROM :SPOOL_SCHEMA.jobs j
       WHERE j.state = 'running'
         AND CASE v_lim.scope WHEN 'queue' THEN j.queue = v_lim.name
                              WHEN 'kind' THEN j.kind = v_lim.name
                              ELSE j.group_key = v_lim.name END;
      allow := greatest(0, v_lim.concurrency - v_running);
      -- It may cut the claim: a completion anywhere makes room again.
      concurrency_cut := allow < p_limit;
    END IF;
    IF v_lim.rate_limit IS NOT NULL THEN
      v_state := :SPOOL_SCHEMA.rate_state(v_lim.window_at_ms, v_lim.window_count, v_lim.rate_limit, v_lim.rate_window_ms, p_now_ms);
      allow := least(coalesce(allow, v_state.room), v_state.room);
      IF v_state.room = 0 THEN
        refill_in_ms := v_state.refill_in_ms;
      END IF;
    END IF;
    RETURN NEXT;
  END LOOP;
END
$$;

-- The groups with jobs waiting in a queue ('' for jobs without one): a
-- skip scan over jobs_claim_group, one index descent per group.
CREATE FUNCTION :SPOOL_SCHEMA.flow_groups(p_queue text) RETURNS text[]
LANGUAGE sql STABLE AS $$
  WITH RECURSIVE g(name) AS (
    (SELECT coalesce(j.group_key::text, '') FROM :SPOOL_SCHEMA.jobs j
      WHERE j.state = 'available' AND j.queue = p_queue
      ORDER BY coalesce(j.group_key::text, '') LIMIT 1)
    UNION ALL
    SELECT (SELECT coalesce(j.group_key::text, '') FROM :SPOOL_SCHEMA.jobs j
             WHERE j.state = 'available' AND j.queue = p_queue AND coalesce(j.group_key::text, '') > g.name
             ORDER BY coalesce(j.group_key::text, '') LIMIT 1)
      FROM g WHERE g.name IS NOT NULL
  )
  SELECT coalesce(array_agg(g.name), '{}') FROM g WHERE g.name IS NOT NULL
$$;

-- The claim of a queue under flow control (a limits row for the queue, a
-- limit on one of p_kinds, or any group limit): up to p_limit available jobs
-- of p_kinds in p_queue, within every limit that applies, and in weighted
-- fair share across groups when the queue's row says fair. Same effect on
-- each job as the plain claim, except that started_at is the moment the
-- limiters were locked (clock_timestamp()), so the starts they count are in
-- the order they were admitted.
--
-- Locks: the candidate job rows (SKIP LOCKED), then the limiter rows with a
-- concurrency or a rate that apply to them (the queue's, their kinds', their
-- groups'), all in one statement in (scope, name) order, so claims never
-- deadlock; they serialise the tail of the claims those limits cover (the
-- exact count, the update, the rate log) until commit. A fairness-only queue
-- takes no limiter lock.
--
-- p_groups: the fair queue's groups with waiting jobs, as flow_groups()
-- gave them to the caller a moment ago (NULL: look them up now).
-- Returns the claimed rows; if none, one row with id NULL. retry_in_ms (on
-- every row) is the wait until a rate limit that this claim found or left
-- empty refills, -1 when a concurrency limit had less room than asked, NULL
-- when no limit stood in the way.
CREATE FUNCTION :SPOOL_SCHEMA.claim_flow(p_queue text, p_kinds text[], p_limit integer, p_worker text, p_lease_ms integer,
                                         p_groups text[] DEFAULT NULL)
RETURNS TABLE (
  id bigint, queue text, kind text, payload jsonb, priority smallint, attempt integer, max_attempts integer,
  timeout_ms integer, metadata jsonb, run_at_ms double precision, created_at_ms double precision,
  started_ms double precision, group_key text, retry_in_ms bigint
)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_now timestamptz;
  v_now_ms bigint;
  v_fair boolean := false;
  v_n integer := p_limit;
  v_retry bigint;
  v_cut_by_concurrency boolean := false;
  v_limited boolean := false;
  -- What the estimate found: the queue's room, a concurrency limit with less room than asked, a kind or group left out.
  v_n_estimate integer;
  v_concurrency_estimate boolean := false;
  v_excluded_by_concurrency boolean := false;
  v_concurrency_exact boolean := false;
  v_lim record;
  v_state record;
  v_lim_kinds text[];
  v_lim_groups text[];
  v_kinds text[] := p_kinds;
  -- Limited kinds and groups (with a concurrency or a rate) and how many of each may start now.
  v_kind_names text[] := '{}';
  v_kind_allow integer[] := '{}';
  v_group_names text[] := '{}';
  v_group_allow integer[] := '{}';
  -- Candidates: locked rows in claim order.
  v_ctids tid[] := '{}';
  v_cand_kinds text[] := '{}';
  v_cand_groups text[] := '{}';
  -- Fair share: the queue's groups with waiting jobs ('' = no group), their weights, what each may still take.
  v_groups text[];
  v_weights integer[];
  v_cap integer[];
  v_alloc integer[];
  v_last_p smallint[];
  v_last_r timestamptz[];
  v_last_id bigint[];
  v_got integer[];
  v_active boolean[];
  v_total_w bigint;
  v_cum bigint;
  v_offset double precision;
  v_lo integer;
  v_hi integer;
  v_remaining integer;
  v_pass integer;
  v_i integer;
  v_taken integer;
  v_final tid[];
  v_count integer;
BEGIN
  IF p_limit IS NULL OR p_limit < 1 OR p_kinds IS NULL OR cardinality(p_kinds) = 0 THEN
    RETURN;
  END IF;
  IF EXISTS (SELECT 1 FROM :SPOOL_SCHEMA.queues q WHERE q.name = p_queue AND q.paused) THEN
    RETURN;
  END IF;
  SELECT l.fair INTO v_fair FROM :SPOOL_SCHEMA.limits l WHERE l.scope = 'queue' AND l.name = p_queue;
  v_fair := coalesce(v_fair, false);

  -- First an estimate, without locks, of what each limit allows: it picks the
  -- candidates (locking job rows only, which never waits). The limiters are
  -- locked afterwards, for the few milliseconds that the exact count, the
  -- update and the rate log take, so claims covered by the same limiter
  -- queue behind each other only for that part.
  v_now_ms := floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint;
  FOR v_lim IN SELECT * FROM :SPOOL_SCHEMA.flow_allowances(p_queue, p_kinds, NULL, p_limit, v_now_ms) LOOP
    v_limited := true;
    CASE v_lim.scope
      WHEN 'queue' THEN v_n := least(v_n, v_lim.allow);
      WHEN 'kind' THEN
        v_kind_names := v_kind_names || v_lim.name;
        v_kind_allow := v_kind_allow || v_lim.allow;
        IF v_lim.allow = 0 THEN
          v_kinds := array_remove(v_kinds, v_lim.name);
        END IF;
      ELSE
        v_group_names := v_group_names || v_lim.name;
        v_group_allow := v_group_allow || v_lim.allow;
    END CASE;
    v_retry := least(v_retry, v_lim.refill_in_ms);
    v_concurrency_estimate := v_concurrency_estimate OR v_lim.concurrency_cut;
    -- A kind or group that may start none now (its groups here all have jobs waiting).
    v_excluded_by_concurrency := v_excluded_by_concurrency OR (v_lim.concurrency_cut AND v_lim.allow = 0 AND v_lim.scope <> 'queue');
  END LOOP;
  v_n_estimate := v_n;

  IF v_n > 0 AND cardinality(v_kinds) > 0 THEN
    IF NOT v_fair THEN
      -- Claim order across the queue, leaving out groups that may start none.
      SELECT coalesce(array_agg(c.ctid), '{}'), coalesce(array_agg(c.kind::text), '{}'),
             coalesce(array_agg(coalesce(c.group_key::text, '')), '{}')
        INTO v_ctids, v_cand_kinds, v_cand_groups
        FROM (SELECT j.ctid, j.kind, j.group_key, j.priority, j.run_at, j.id
                FROM :SPOOL_SCHEMA.jobs j
               WHERE j.state = 'available' AND j.queue = p_queue AND j.kind = ANY(v_kinds)
                 AND (j.group_key IS NULL OR NOT j.group_key = ANY(
                       SELECT g.name FROM unnest(v_group_names, v_group_allow) AS g(name, allow) WHERE g.allow = 0))
               ORDER BY j.priority, j.run_at, j.id
               LIMIT v_n
                 FOR UPDATE SKIP LOCKED) c;
    ELSE
      -- The queue's groups with waiting jobs: the caller's list (a worker keeps
      -- one until jobs are enqueued or made due in the queue, or for a second;
      -- a group that ran dry since just gives nothing), else a skip scan.
      WITH g(name) AS (SELECT DISTINCT u.name FROM unnest(coalesce(p_groups, :SPOOL_SCHEMA.flow_groups(p_queue))) AS u(name))
      SELECT array_agg(g.name ORDER BY g.name), array_agg(coalesce(w.weight, 1) ORDER BY g.name),
             array_agg(coalesce(a.allow, 2147483647) ORDER BY g.name)
        INTO v_groups, v_weights, v_cap
        FROM g
        LEFT JOIN :SPOOL_SCHEMA.limits w ON w.scope = 'group' AND w.name = g.name
        LEFT JOIN unnest(v_group_names, v_group_allow) AS a(name, allow) ON a.name = g.name
       WHERE g.name IS NOT NULL;
      v_remaining := v_n;
      v_i := coalesce(cardinality(v_groups), 0);
      v_active := array_fill(true, ARRAY[v_i]);
      v_last_p := array_fill(NULL::smallint, ARRAY[v_i]);
      v_last_r := array_fill(NULL::timestamptz, ARRAY[v_i]);
      v_last_id := array_fill(NULL::bigint, ARRAY[v_i]);
      FOR v_i IN 1 .. coalesce(cardinality(v_groups), 0) LOOP
        v_active[v_i] := v_cap[v_i] > 0;
      END LOOP;
      -- Up to three passes: each shares what is left by weight among the
      -- groups that may still take some (systematic sampling with a random
      -- offset: every group gets the floor or the ceiling of its share, and
      -- exactly its share on average); a group that gives fewer than asked is
      -- out of jobs (or they are locked) and drops out of later passes.
      FOR v_pass IN 1 .. 3 LOOP
        EXIT WHEN v_remaining <= 0;
        SELECT sum(w) INTO v_total_w FROM unnest(v_weights, v_active) AS u(w, a) WHERE a;
        EXIT WHEN v_total_w IS NULL OR v_total_w = 0;
        v_offset := random();
        v_cum := 0;
        v_alloc := array_fill(0, ARRAY[cardinality(v_groups)]);
        FOR v_i IN 1 .. cardinality(v_groups) LOOP
          CONTINUE WHEN NOT v_active[v_i];
          v_lo := floor(v_cum::double precision * v_remaining / v_total_w + v_offset);
          v_cum := v_cum + v_weights[v_i];
          v_hi := floor(v_cum::double precision * v_remaining / v_total_w + v_offset);
          v_alloc[v_i] := least(v_hi - v_lo, v_cap[v_i]);
        END LOOP;
        WITH picked AS (
          SELECT a.o, c.ctid, c.kind, c.priority, c.run_at, c.id
            FROM unnest(v_groups, v_alloc, v_last_p, v_last_r, v_last_id) WITH ORDINALITY AS a(name, n, lp, lr, lid, o)
           CROSS JOIN LATERAL (
             SELECT j.ctid, j.kind, j.priority, j.run_at, j.id
               FROM :SPOOL_SCHEMA.jobs j
              WHERE j.state = 'available' AND j.queue = p_queue AND coalesce(j.group_key::text, '') = a.name
                AND j.kind = ANY(v_kinds)
                AND (a.lid IS NULL OR (j.priority, j.run_at, j.id) > (a.lp, a.lr, a.lid))
              ORDER BY j.priority, j.run_at, j.id
              LIMIT a.n
                FOR UPDATE SKIP LOCKED
           ) c
           WHERE a.n > 0
        ), taken AS (
          SELECT array_agg(p.ctid) AS ctids, array_agg(p.kind::text) AS kinds, array_agg(v_groups[p.o]) AS groups FROM picked p
        ), last_of_group AS (
          -- Each group's last row taken (where the next pass goes on from) and how many it gave.
          SELECT DISTINCT ON (p.o) p.o, count(*) OVER (PARTITION BY p.o) AS got, p.priority, p.run_at, p.id
            FROM picked p
           ORDER BY p.o, p.priority DESC, p.run_at DESC, p.id DESC
        ), per_group AS (
          SELECT array_agg(coalesce(l.got, 0)::integer ORDER BY a.o) AS got,
                 array_agg(CASE WHEN l.o IS NULL THEN v_last_p[a.o] ELSE l.priority END ORDER BY a.o) AS lp,
                 array_agg(CASE WHEN l.o IS NULL THEN v_last_r[a.o] ELSE l.run_at END ORDER BY a.o) AS lr,
                 array_agg(CASE WHEN l.o IS NULL THEN v_last_id[a.o] ELSE l.id END ORDER BY a.o) AS lid
            FROM generate_subscripts(v_groups, 1) AS a(o) LEFT JOIN last_of_group l ON l.o = a.o
        )
        SELECT v_ctids || coalesce(t.ctids, '{}'), v_cand_kinds || coalesce(t.kinds, '{}'), v_cand_groups || coalesce(t.groups, '{}'),
               g.got, g.lp, g.lr, g.lid
          FROM taken t, per_group g
          INTO v_ctids, v_cand_kinds, v_cand_groups, v_got, v_last_p, v_last_r, v_last_id;
        v_taken := 0;
        FOR v_i IN 1 .. cardinality(v_groups) LOOP
          CONTINUE WHEN NOT v_active[v_i];
          v_taken := v_taken + v_got[v_i];
          v_cap[v_i] := v_cap[v_i] - v_got[v_i];
          IF v_got[v_i] < v_alloc[v_i] OR v_cap[v_i] <= 0 THEN
            v_active[v_i] := false;
          END IF;
        END LOOP;
        v_remaining := v_remaining - v_taken;
      END LOOP;
    END IF;
  END IF;

  -- The estimate found the queue's and the kinds' limiters whatever was waiting, but a group's only if
  -- it had jobs waiting then: one enqueued since may be among the candidates, so look again.
  IF cardinality(v_ctids) > 0 AND (v_limited OR EXISTS (
       SELECT 1 FROM :SPOOL_SCHEMA.limits l WHERE l.scope = 'group' AND (l.concurrency IS NOT NULL OR l.rate_limit IS NOT NULL))) THEN
    -- Now exactly, under the locks of the limiters these candidates fall under,
    -- taken in one statement in (scope, name) order so that claims never deadlock.
    SELECT array_agg(DISTINCT k) INTO v_lim_kinds FROM unnest(v_cand_kinds) AS k;
    SELECT array_agg(DISTINCT g) INTO v_lim_groups FROM unnest(v_cand_groups) AS g;
    PERFORM 1 FROM :SPOOL_SCHEMA.limits l
      WHERE (l.scope, l.name) IN (SELECT f.scope, f.name FROM :SPOOL_SCHEMA.flow_limiters(p_queue, v_lim_kinds, v_lim_groups) AS f)
      ORDER BY l.scope, l.name
        FOR UPDATE OF l;
    v_now := clock_timestamp();
    v_now_ms := floor(extract(epoch FROM v_now) * 1000)::bigint;
    v_n := p_limit;
    v_kind_names := '{}';
    v_kind_allow := '{}';
    v_group_names := '{}';
    v_group_allow := '{}';
    -- v_retry keeps the estimate's hints: a kind or group it left out is not among the candidates.
    FOR v_lim IN SELECT * FROM :SPOOL_SCHEMA.flow_allowances(p_queue, v_lim_kinds, v_lim_groups, p_limit, v_now_ms) LOOP
      CASE v_lim.scope
        WHEN 'queue' THEN v_n := least(v_n, v_lim.allow);
        WHEN 'kind' THEN
          v_kind_names := v_kind_names || v_lim.name;
          v_kind_allow := v_kind_allow || v_lim.allow;
        ELSE
          v_group_names := v_group_names || v_lim.name;
          v_group_allow := v_group_allow || v_lim.allow;
      END CASE;
      v_retry := least(v_retry, v_lim.refill_in_ms);
      v_concurrency_exact := v_concurrency_exact OR v_lim.concurrency_cut;
    END LOOP;
  ELSE
    v_now := clock_timestamp();
    v_now_ms := floor(extract(epoch FROM v_now) * 1000)::bigint;
  END IF;

  -- Within each limited kind and group, and the queue's limit, no more than may start.
  IF cardinality(v_kind_names) = 0 AND cardinality(v_group_names) = 0 AND cardinality(v_ctids) <= v_n THEN
    v_final := v_ctids;
  ELSE
    SELECT coalesce(array_agg(x.ctid ORDER BY x.o), '{}'),
           coalesce(array_agg(x.kind ORDER BY x.o), '{}'),
           coalesce(array_agg(x.grp ORDER BY x.o), '{}')
      INTO v_final, v_cand_kinds, v_cand_groups
      FROM (SELECT c.ctid, c.kind, c.grp, c.o,
                   row_number() OVER (PARTITION BY c.kind ORDER BY c.o) AS rk,
                   row_number() OVER (PARTITION BY c.grp ORDER BY c.o) AS rg
              FROM unnest(v_ctids, v_cand_kinds, v_cand_groups) WITH ORDINALITY AS c(ctid, kind, grp, o)) x
      LEFT JOIN unnest(v_kind_names, v_kind_allow) AS k(name, allow) ON k.name = x.kind
      LEFT JOIN unnest(v_group_names, v_group_allow) AS g(name, allow) ON g.name = x.grp
     WHERE (k.allow IS NULL OR x.rk <= k.allow) AND (g.allow IS NULL OR x.rg <= g.allow);
    v_final := v_final[1:greatest(v_n, 0)];
    v_cand_kinds := v_cand_kinds[1:greatest(v_n, 0)];
    v_cand_groups := v_cand_groups[1:greatest(v_n, 0)];
  END IF;

  -- Log the starts in every rate limiter that counts them.
  v_count := cardinality(v_final);
  IF v_count > 0 THEN
    UPDATE :SPOOL_SCHEMA.limits l
       SET (window_at_ms, window_count) = (
             SELECT r.at_ms, r.counts
               FROM :SPOOL_SCHEMA.rate_record(l.window_at_ms, l.window_count, l.rate_window_ms, v_now_ms, s.started) AS r)
      FROM (SELECT 'queue'::text AS scope, p_queue AS name, v_count AS started
            UNION ALL
            SELECT 'kind', k, count(*)::integer FROM unnest(v_cand_kinds) AS k GROUP BY k
            UNION ALL
            SELECT 'group', g, count(*)::integer FROM unnest(v_cand_groups) AS g GROUP BY g) s
     WHERE l.scope = s.scope AND l.name = s.name AND l.rate_limit IS NOT NULL;
    -- Did this claim use a rate limiter up? Then say when it refills.
    SELECT min(st.refill_in_ms) INTO v_state
      FROM :SPOOL_SCHEMA.limits l
     CROSS JOIN LATERAL :SPOOL_SCHEMA.rate_state(l.window_at_ms, l.window_count, l.rate_limit, l.rate_window_ms, v_now_ms) AS st
     WHERE l.rate_limit IS NOT NULL AND st.room = 0
       AND ((l.scope = 'queue' AND l.name = p_queue) OR (l.scope = 'kind' AND l.name = ANY(v_cand_kinds))
         OR (l.scope = 'group' AND l.name = ANY(v_cand_groups)));
    v_retry := least(v_retry, v_state.min);
  END IF;
  -- A concurrency limit cut this claim if it left a kind or group out, if the queue's room was
  -- the most that could be taken and was all taken, or if the exact count trimmed the candidates.
  -- (Not when it merely has less room than asked: an idle queue would then be polled for ever.)
  v_cut_by_concurrency := v_excluded_by_concurrency
    OR (v_concurrency_estimate AND v_n_estimate < p_limit AND cardinality(v_ctids) >= v_n_estimate)
    OR (v_concurrency_exact AND cardinality(v_final) < cardinality(v_ctids));
  IF v_retry IS NULL AND v_cut_by_concurrency THEN
    v_retry := -1;
  END IF;

  RETURN QUERY
    UPDATE :SPOOL_SCHEMA.jobs j
       SET state = 'running',
           attempt = j.attempt + 1,
           worker_id = p_worker,
           lease_expires_at = v_now + p_lease_ms * interval '1 millisecond',
           started_at = v_now
     -- Through a subquery, so the plan is a TID scan: with the array's 1,000 elements in view, the
     -- planner costed that above a sequential scan of the whole table (measured: 14 ms against 1).
     WHERE j.ctid = ANY(ARRAY(SELECT unnest(v_final)))
    RETURNING j.id, j.queue::text, j.kind::text, j.payload, j.priority, j.attempt, j.max_attempts, j.timeout_ms,
              j.metadata::jsonb, date_part('epoch', j.run_at) * 1000, date_part('epoch', j.created_at) * 1000,
              date_part('epoch', j.started_at) * 1000, j.group_key::text, v_retry;
  IF NOT FOUND THEN
    RETURN QUERY SELECT NULL::bigint, p_queue, NULL::text, NULL::jsonb, NULL::smallint, NULL::integer, NULL::integer,
                        NULL::integer, NULL::jsonb, NULL::float8, NULL::float8, NULL::float8, NULL::text, v_retry;
  END IF;
END
$$;

-- Cron schedules. The maintenance leader enqueues one job per tick: it
-- moves next_run_at from the tick to the one after with a compare-and-set
-- in the transaction that enqueues the tick's job, so two leaders (an old
-- one and its successor) cannot both enqueue a tick. A row inserted from
-- SQL with next_run_at NULL gets its first tick from the leader.
CREATE TABLE :SPOOL_SCHEMA.schedules (
  name        text COLLATE "C" PRIMARY KEY,
  cron        text NOT NULL,
  timezone    text NOT NULL DEFAULT 'UTC',
  kind        :SPOOL_SCHEMA.job_kind NOT NULL,
  payload     jsonb NOT NULL DEFAULT '{}',
  -- Job options of each tick's job, as enqueue_batch takes them (queue, priority, max_attempts, timeout_ms, tags, group, metadata).
  options     :SPOOL_SCHEMA.json_object NOT NULL DEFAULT '{}',
  jitter_ms   integer NOT NULL DEFAULT 0,
  overlap     text NOT NULL DEFAULT 'allow',
  catch_up    text NOT NULL DEFAULT 'none',
  paused      boolean NOT NULL DEFAULT false,
  next_run_at timestamptz,
  last_run_at timestamptz,
  last_job_id bigint,
  last_error  text,
  -- 'code' (defineSchedule, upserted by workers at start), 'api', 'cli' or 'sql'.
  source      text NOT NULL DEFAULT 'sql',
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT schedules_name_format CHECK (length(name) <= 128 AND name ~ '^[A-Za-z0-9_][A-Za-z0-9_.:/-]*$'),
  CONSTRAINT schedules_cron_length CHECK (length(cron) BETWEEN 1 AND 256),
  CONSTRAINT schedules_timezone_length CHECK (length(timezone) BETWEEN 1 AND 64),
  CONSTRAINT schedules_jitter_range CHECK (jitter_ms BETWEEN 0 AND 86400000),
  CONSTRAINT schedules_overlap CHECK (overlap IN ('allow', 'skip')),
  CONSTRAINT schedules_catch_up CHECK (catch_up IN ('none', 'latest', 'all'))
);
CREATE INDEX schedules_due ON :SPOOL_SCHEMA.schedules (next_run_at) WHERE NOT paused;
