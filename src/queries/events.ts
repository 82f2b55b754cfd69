/**
 * The event record (sql/0013, docs/adr/0009): the statements that change
 * jobs' states append, in the same statement, one job_events row per kind
 * of change, the changed jobs as arrays. These build that INSERT.
 */

/** An event's type: the change it records. */
export const EVENT_TYPES = ['enqueued', 'started', 'progress', 'retrying', 'released', 'completed', 'dead', 'cancelled'] as const;
export type EventType = (typeof EVENT_TYPES)[number];
/** The types that end a job. */
export const TERMINAL_EVENT_TYPES: readonly EventType[] = ['completed', 'dead', 'cancelled'];

export interface RecordOptions {
  /** Progress: each row's value (SQL, jsonb). */
  data?: string;
  /** Terminal changes: whether the row's job asks for a webhook (SQL, boolean). */
  hooked?: string;
}

/**
 * `INSERT INTO job_events …` from `source`, whose rows have id, attempt,
 * queue, kind, group_key and tenant: one row per distinct `type` (an SQL
 * expression over the source's row) and queue, kind, group and tenant, with
 * the jobs' ids and attempts as arrays; none when the source is empty.
 */
export function recordEventsSql(q: string, source: string, type: string, options: RecordOptions = {}): string {
  const columns = ['type', 'queue', 'kind', 'group_key', 'tenant', 'ids', 'attempts'];
  const values = ['r.event_type', 'r.queue', 'r.kind', 'r.group_key', 'r.tenant', 'array_agg(r.id)', 'array_agg(r.attempt)'];
  if (options.data) {
    columns.push('data');
    values.push('jsonb_agg(r.event_data)');
  }
  if (options.hooked) {
    columns.push('hooked');
    values.push('array_agg(r.id) FILTER (WHERE r.event_hooked)');
  }
  const extra = `${options.data ? `, ${options.data} AS event_data` : ''}${options.hooked ? `, ${options.hooked} AS event_hooked` : ''}`;
  return `INSERT INTO ${q}.job_events (${columns.join(', ')})
  SELECT ${values.join(', ')}
    FROM (SELECT ${source}.id, ${source}.attempt, ${source}.queue::text AS queue, ${source}.kind::text AS kind,
                 ${source}.group_key::text AS group_key, ${source}.tenant::text AS tenant, ${type} AS event_type${extra}
            FROM ${source}) r
   GROUP BY r.event_type, r.queue, r.kind, r.group_key, r.tenant
  RETURNING ${notifyListenersSql(q)}`;
}

/**
 * The end of jobs (completed, dead, cancelled) is recorded by the history
 * rows the statement writes anyway, not by arrays: the statement draws one
 * sequence value (CTE `event_marker`), stores it in each history row it
 * writes (event_seq, B-tree-indexed since 0014), and appends one `finished` row to
 * job_events under it, which gives those events their place in the stream.
 * Per job that costs one column; building arrays cost the drain 7 %
 * (docs/adr/0009). `archives` is a query that returns a row when the
 * statement writes history. Returns two CTEs to put before and after the
 * history INSERT, and the event_seq value for it.
 */
export function historyEventSql(q: string, archives: string): { before: string; after: string; eventSeq: string } {
  return {
    before: `event_marker AS MATERIALIZED (SELECT nextval('${q}.job_events_seq') AS seq)`,
    after: `finished_marker AS (
  INSERT INTO ${q}.job_events (seq, type, ids, attempts)
  SELECT m.seq, 'finished', '{}', '{}' FROM event_marker m WHERE EXISTS (${archives})
  RETURNING ${notifyListenersSql(q)}
)`,
    eventSeq: '(SELECT seq FROM event_marker)',
  };
}

/**
 * Tells live subscribers and waiters that events were recorded, only while
 * a process is registered in event_listeners: a NOTIFY takes a lock at
 * commit that serializes the committing transactions, which nobody should
 * pay for a stream nobody reads. In RETURNING, which PostgreSQL evaluates
 * for every row a data-modifying CTE writes, read or not (cheaper than a
 * statement trigger). The channel is the schema's (`<schema>_jobs`).
 */
export function notifyListenersSql(q: string): string {
  const channel = `${q.slice(1, -1)}_jobs`;
  return `(SELECT pg_notify('${channel}', '{"events":true}') WHERE EXISTS (SELECT 1 FROM ${q}.event_listeners WHERE expires_at > now()))`;
}
