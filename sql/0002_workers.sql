-- 0002: what workers and maintenance need: queue pause flags, the live
-- worker registry, and the leader lease.

-- One row per queue that has settings. A queue without a row is active.
CREATE TABLE :SPOOL_SCHEMA.queues (
  name       text COLLATE "C" PRIMARY KEY,
  paused     boolean NOT NULL DEFAULT false,
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT queues_name_format CHECK (length(name) <= 128 AND name ~ '^[A-Za-z0-9_][A-Za-z0-9_.:/-]*$')
);

-- Live workers, refreshed by each worker's heartbeat; the leader removes
-- rows whose heartbeat stopped.
CREATE TABLE :SPOOL_SCHEMA.workers (
  id                text PRIMARY KEY,
  hostname          text NOT NULL,
  pid               integer NOT NULL,
  queues            text[] NOT NULL,
  kinds             text[] NOT NULL,
  concurrency       integer NOT NULL,
  started_at        timestamptz NOT NULL DEFAULT now(),
  last_heartbeat_at timestamptz NOT NULL DEFAULT now()
);

-- The maintenance leader: one row per role, held by one worker until
-- expires_at; it renews well before that and others take over after it.
-- A row, not an advisory lock, so it also works behind a transaction-mode
-- connection pooler.
CREATE TABLE :SPOOL_SCHEMA.leader (
  name       text PRIMARY KEY,
  worker_id  text NOT NULL,
  elected_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL
);
