-- 0013: the event record, live wake-ups for subscribers and waiters, and
-- webhook subscriptions (docs/events.md, docs/adr/0009-event-record.md).
--
-- Every statement that changes jobs' states (enqueue, claim, finish, reap,
-- cancel, progress) appends, in the same statement, one job_events row per
-- kind of change it made, with the jobs it changed as arrays: a claim of 50
-- jobs writes one row, not 50. Jobs that end (completed, dead, cancelled)
-- are recorded by the job_history rows the statement writes anyway: each
-- carries the statement's event_seq, and one `finished` row in job_events
-- places them in the stream. Either row belongs to the writing
-- transaction: it exists if and only if the change committed.
--
-- Order: events are read in (xid, seq, position in the arrays) order, and
-- only from transactions older than every transaction still running
-- (xid < pg_snapshot_xmin(pg_current_snapshot())). Such a transaction has
-- ended, so nothing can appear behind a reader's position later: a reader
-- that resumes from the last event it saw misses none and repeats none. A
-- long-running writing transaction holds the stream back until it ends.

CREATE SEQUENCE :SPOOL_SCHEMA.job_events_seq;

CREATE TABLE :SPOOL_SCHEMA.job_events (
  xid       xid8 NOT NULL DEFAULT pg_current_xact_id(),
  seq       bigint NOT NULL DEFAULT nextval(':SPOOL_SCHEMA.job_events_seq'),
  at        timestamptz NOT NULL DEFAULT now(),
  type      text COLLATE "C" NOT NULL,
  -- What the row's jobs share: a statement writes one row per combination.
  queue     text COLLATE "C",
  kind      text COLLATE "C",
  group_key text COLLATE "C",
  tenant    text COLLATE "C",
  ids       bigint[] NOT NULL,
  attempts  integer[] NOT NULL,
  -- progress: each job's value, in the order of ids.
  data      jsonb,
  -- Terminal events: the jobs among ids whose metadata asks for a webhook.
  hooked    bigint[],
  PRIMARY KEY (xid, seq),
  CONSTRAINT job_events_type CHECK (type IN ('enqueued', 'started', 'progress', 'retrying', 'released', 'completed', 'dead', 'cancelled', 'finished'))
);
-- A claim or finish of 1,000 jobs makes 12 KB of ids and attempts: stored
-- as they are (out of line past 2 KB) rather than compressed, which cost
-- the drain several per cent of its CPU (docs/adr/0009).
ALTER TABLE :SPOOL_SCHEMA.job_events ALTER COLUMN ids SET STORAGE EXTERNAL, ALTER COLUMN attempts SET STORAGE EXTERNAL;
-- The ends of jobs: their history rows, by the `finished` event row's seq.
-- Values grow with the heap (rows are appended), so a BRIN index finds a
-- statement's rows for next to nothing to maintain; small ranges keep each
-- lookup to a few pages.
ALTER TABLE :SPOOL_SCHEMA.job_history ADD COLUMN event_seq bigint;
CREATE INDEX job_history_event_seq ON :SPOOL_SCHEMA.job_history USING brin (event_seq) WITH (pages_per_range = 8);

-- The pruner's batched deletes by age (rows arrive in time order).
CREATE INDEX job_events_at ON :SPOOL_SCHEMA.job_events USING brin (at);
-- Appended to and pruned from the front: vacuum by inserts, not by the default 20 %.
ALTER TABLE :SPOOL_SCHEMA.job_events SET (
  autovacuum_vacuum_scale_factor = 0.05,
  autovacuum_vacuum_insert_scale_factor = 0.05
);
COMMENT ON TABLE :SPOOL_SCHEMA.job_events IS 'Job state changes, one row per statement and kind of change; read with spool.events_after(). docs/events.md';

-- How long events stay replayable (defaults row only): one day.
ALTER TABLE :SPOOL_SCHEMA.retention ADD COLUMN events interval;
UPDATE :SPOOL_SCHEMA.retention SET events = interval '1 day' WHERE queue = '*';
ALTER TABLE :SPOOL_SCHEMA.retention
  ADD CONSTRAINT retention_events_on_defaults CHECK (events IS NULL OR (queue = '*' AND events > interval '0'));

-- Processes with live subscribers or waiters. The statements that record
-- events NOTIFY only while one is registered, so a queue nobody watches
-- pays no NOTIFY (whose commit lock serializes the committing
-- transactions). Unlogged: after a crash the processes register again
-- within their renewal interval.
CREATE UNLOGGED TABLE :SPOOL_SCHEMA.event_listeners (
  process    text PRIMARY KEY,
  expires_at timestamptz NOT NULL
);

-- Enqueues (every path: the client, the API, spool.enqueue(), a replay or
-- retry moving a job back) record `enqueued` in the trigger that wakes the
-- workers, so jobs inserted by SQL appear in the stream too.
CREATE OR REPLACE FUNCTION :SPOOL_SCHEMA.notify_inserted_jobs() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  v_queues text[];
  v_scheduled boolean;
  v_payload text;
BEGIN
  INSERT INTO :SPOOL_SCHEMA.job_events (type, queue, kind, group_key, tenant, ids, attempts)
  SELECT 'enqueued', queue, kind, group_key, tenant, array_agg(id), array_agg(attempt)
    FROM new_jobs
   GROUP BY queue, kind, group_key, tenant;
  IF FOUND AND EXISTS (SELECT 1 FROM :SPOOL_SCHEMA.event_listeners WHERE expires_at > now()) THEN
    PERFORM pg_notify(:SPOOL_CHANNEL, '{"events":true}');
  END IF;
  -- Jobs that ask for a webhook wake the dispatcher up (it skips the stream while nobody wants events).
  IF EXISTS (SELECT 1 FROM new_jobs WHERE metadata ? 'webhook') THEN
    UPDATE :SPOOL_SCHEMA.webhooks SET last_used_at = now() WHERE id = 'job' AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute');
  END IF;
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

-- The events after a position, one row per job and change, in stream order,
-- from ended transactions only (see the top of this file). p_xid, p_seq,
-- p_pos: the last event seen (0, 0, 0: from the oldest kept). At most
-- p_limit event rows (statements) are read, so a page may hold more events.
-- A job's end comes from its history row: pos is then the job's id, and
-- result, errors and metadata come along.
CREATE FUNCTION :SPOOL_SCHEMA.events_after(p_xid xid8, p_seq bigint, p_pos bigint, p_limit integer DEFAULT 100)
RETURNS TABLE (xid xid8, seq bigint, pos bigint, at timestamptz, type text, job_id bigint, attempt integer,
               queue text, kind text, group_key text, tenant text, data jsonb, hooked boolean,
               result jsonb, errors jsonb)
LANGUAGE sql STABLE AS $$
  SELECT e.xid, e.seq, u.pos, e.at, u.type, u.id, u.attempt, u.queue, u.kind, u.group_key, u.tenant, u.data, u.hooked,
         u.result, u.errors
    FROM (SELECT * FROM :SPOOL_SCHEMA.job_events
           WHERE (job_events.xid, job_events.seq) >= (p_xid, p_seq)
             AND job_events.xid < pg_snapshot_xmin(pg_current_snapshot())
           ORDER BY job_events.xid, job_events.seq
           LIMIT p_limit) e
   CROSS JOIN LATERAL (
     SELECT a.id, a.attempt, a.pos, e.type, e.queue, e.kind, e.group_key, e.tenant,
            e.data -> (a.pos::integer - 1) AS data, a.id = ANY(e.hooked) AS hooked, NULL::jsonb AS result, NULL::jsonb AS errors
       FROM unnest(e.ids, e.attempts) WITH ORDINALITY AS a(id, attempt, pos)
      WHERE e.type <> 'finished'
     UNION ALL
     SELECT h.id, h.attempt, h.id, h.state::text, h.queue, h.kind, h.group_key, h.tenant,
            NULL, h.metadata ? 'webhook', h.result, h.errors
       FROM :SPOOL_SCHEMA.job_history h
      WHERE e.type = 'finished' AND h.event_seq = e.seq AND h.finished_at = e.at
   ) u
   WHERE (e.xid, e.seq, u.pos) > (p_xid, p_seq, p_pos)
   ORDER BY e.xid, e.seq, u.pos
$$;

-- Outgoing webhooks: where matching events are POSTed, signed with the
-- subscription's secret (docs/events.md, "Webhooks"). The row `job` signs
-- the deliveries to per-job webhook URLs (the `webhook` job option).
CREATE TABLE :SPOOL_SCHEMA.webhooks (
  id                  text COLLATE "C" PRIMARY KEY,
  url                 text,
  events              text[] NOT NULL,
  queue               text COLLATE "C",
  kind                text COLLATE "C",
  tenant              text COLLATE "C",
  secret              text NOT NULL,
  -- The secret before the last rotation, still signed with until this time.
  previous_secret     text,
  previous_expires_at timestamptz,
  allow_private       boolean NOT NULL DEFAULT false,
  paused              boolean NOT NULL DEFAULT false,
  -- `job`: when a job asking for a webhook was last enqueued (the dispatcher reads events only while someone may want them).
  last_used_at        timestamptz,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT webhooks_id_format CHECK (id ~ '^[a-z0-9_]{1,40}$'),
  CONSTRAINT webhooks_url CHECK ((id = 'job') = (url IS NULL) AND (url IS NULL OR (length(url) <= 2048 AND url ~ '^https?://'))),
  CONSTRAINT webhooks_events CHECK (cardinality(events) > 0 AND events <@ ARRAY['enqueued', 'started', 'progress', 'retrying', 'released', 'completed', 'dead', 'cancelled'])
);
COMMENT ON TABLE :SPOOL_SCHEMA.webhooks IS 'Webhook subscriptions: spool webhooks, /webhooks. docs/events.md';

INSERT INTO :SPOOL_SCHEMA.webhooks (id, url, events, secret)
VALUES ('job', NULL, ARRAY['completed', 'dead', 'cancelled'],
        'whsec_' || replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''));

-- Where the webhook dispatcher (maintenance leader) has read job_events up
-- to; moved in the transaction that enqueues the deliveries, so each event
-- is dispatched once. Starts at the migration: no deliveries for the past.
CREATE TABLE :SPOOL_SCHEMA.webhook_cursor (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  xid       xid8 NOT NULL,
  seq       bigint NOT NULL,
  pos       bigint NOT NULL,
  at        timestamptz NOT NULL DEFAULT now()
);
INSERT INTO :SPOOL_SCHEMA.webhook_cursor (xid, seq, pos) VALUES (pg_snapshot_xmin(pg_current_snapshot()), 0, 0);

-- Tenant requests (SET LOCAL ROLE spool_tenant) write events too.
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'spool_tenant') THEN
    GRANT INSERT ON :SPOOL_SCHEMA.job_events TO spool_tenant;
    GRANT USAGE ON SEQUENCE :SPOOL_SCHEMA.job_events_seq TO spool_tenant;
    GRANT SELECT ON :SPOOL_SCHEMA.event_listeners TO spool_tenant;
    GRANT SELECT (id, last_used_at), UPDATE (last_used_at) ON :SPOOL_SCHEMA.webhooks TO spool_tenant;
  END IF;
EXCEPTION WHEN insufficient_privilege THEN
  RAISE NOTICE 'spool: cannot grant the event tables to spool_tenant';
END
$$;
