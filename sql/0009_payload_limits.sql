-- 0009: bounds on what a job may carry (docs/security.md, "Resource limits").
--
-- The client and the API refuse a payload over 1 MiB as JSON, or nested 64
-- levels deep, before it is sent; spool.enqueue() and enqueue_batch() from
-- SQL now refuse the same (a payload nested 10,000 deep stored through SQL
-- made every GET /jobs fail). Whatever writes a job, a raw INSERT too, the
-- table refuses a payload whose stored jsonb is over 8 MiB.
--
-- The size is a table CHECK, which runs on every new row version (each
-- claim and finish), because it is O(1): pg_column_size reads the datum's
-- header, and on an UPDATE that leaves the payload alone the stored, toasted
-- value's, never the payload itself. The depth is not: it has to read the
-- whole payload, at every claim. A domain (as in 0003) would check it on
-- writes only, but a domain column is a type of its own to every function
-- and client that reads it (RETURN QUERY refuses it where jsonb is declared).
-- NOT VALID: rows stored before this upgrade are not read.

ALTER TABLE :SPOOL_SCHEMA.jobs
  ADD CONSTRAINT jobs_payload_size CHECK (pg_column_size(payload) <= 8388608) NOT VALID;

-- job_input_problem as in 0006, plus the payload's size and depth and the metadata's depth.
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
