/**
 * The kind registry (sql/0004): each kind's defaults and payload schema,
 * written by workers at start and by `spool.registerKinds()`, read by the
 * enqueue paths (the SQL applies the defaults) and the API (the schema).
 */

/** One kind as it is registered: the columns of `kinds` that a registration sets. */
export interface KindRegistration {
  kind: string;
  queue: string;
  priority: number;
  max_attempts: number;
  timeout_ms: number | null;
  remove_on_complete: boolean | null;
  tags: string[];
  /** JSON Schema of the payload; null: any JSON. */
  payload_schema: unknown;
}

/**
 * Registers kinds: one upsert for the whole list, so a worker with fifty
 * kinds costs one statement at start. A registration replaces the kind's
 * defaults and schema (the latest deploy wins) and refreshes last_seen_at;
 * registered_at stays the first registration's.
 * Locks: the kinds' rows. Index: the primary key.
 * $1 registrations (JSON array of KindRegistration), $2 registered_by.
 */
export function registerKindsSql(q: string): string {
  return `
INSERT INTO ${q}.kinds AS k (kind, queue, priority, max_attempts, timeout_ms, remove_on_complete, tags, payload_schema, registered_by)
SELECT r.kind, r.queue, r.priority, r.max_attempts, r.timeout_ms, r.remove_on_complete, r.tags, r.payload_schema, $2
  FROM jsonb_to_recordset($1::text::jsonb) AS r(
         kind text, queue text, priority smallint, max_attempts integer, timeout_ms integer,
         remove_on_complete boolean, tags text[], payload_schema jsonb)
ON CONFLICT (kind) DO UPDATE
   SET queue = EXCLUDED.queue, priority = EXCLUDED.priority, max_attempts = EXCLUDED.max_attempts,
       timeout_ms = EXCLUDED.timeout_ms, remove_on_complete = EXCLUDED.remove_on_complete, tags = EXCLUDED.tags,
       payload_schema = EXCLUDED.payload_schema, registered_by = EXCLUDED.registered_by, last_seen_at = now()`;
}

/** What the API and CLI validate enqueues with: every kind's payload schema. Reads the kinds table only. */
export function kindSchemasSql(q: string): string {
  return `SELECT kind::text AS kind, payload_schema FROM ${q}.kinds`;
}

/**
 * Every registered kind with its defaults, how many of its jobs wait
 * (scheduled or available), how many live workers handle it, and when a
 * worker last had it (its last registration or a live worker's heartbeat).
 * Counts waiting jobs by kind: an admin query, not a tight loop.
 */
export function listKindsSql(q: string): string {
  return `
SELECT k.kind::text AS kind, k.queue::text AS queue, k.priority, k.max_attempts, k.timeout_ms, k.remove_on_complete, k.tags,
       k.payload_schema, k.registered_by, k.registered_at,
       greatest(k.last_seen_at, w.last_heartbeat_at) AS last_seen_at,
       coalesce(w.workers, 0)::int AS workers,
       coalesce(j.waiting, 0)::int AS waiting
  FROM ${q}.kinds k
  LEFT JOIN LATERAL (
    SELECT count(*) AS workers, max(last_heartbeat_at) AS last_heartbeat_at
      FROM ${q}.workers WHERE k.kind = ANY(kinds)
  ) w ON true
  LEFT JOIN (
    SELECT kind, count(*) AS waiting FROM ${q}.jobs WHERE state IN ('scheduled', 'available') GROUP BY kind
  ) j ON j.kind = k.kind
 ORDER BY k.kind`;
}

/** A row of `listKindsSql`. */
export interface KindRow extends KindRegistration {
  registered_by: string;
  registered_at: Date;
  last_seen_at: Date;
  workers: number;
  waiting: number;
}
