import type { Executor } from '../db/executor.js';
import { EVENT_RESULT_MAX_BYTES, type EventCursor, type SpoolEvent } from './event.js';
import type { EventType } from '../queries/events.js';

/** Event rows (statements) read per page, and at most this many events of them. */
export const EVENT_PAGE_ROWS = 200;
export const EVENT_PAGE_EVENTS = 1_000;

/**
 * A page of events after $1-$2-$3 (xid, seq, pos), at most $4 event rows,
 * from ended transactions only (spool.events_after, sql/0013), with what a
 * subscriber wants to see: a completed job's result (when small), the
 * error of a retrying or dead attempt, a progress value, and whether the
 * job asked for a webhook. A retrying job's error is wherever the job is now.
 */
export function readEventsSql(q: string): string {
  return `
SELECT e.xid::text AS xid, e.seq::text AS seq, e.pos::text AS pos, e.at, e.type, e.job_id::text AS job_id, e.attempt,
       e.queue, e.kind, e.group_key, e.tenant, e.data, coalesce(e.hooked, false) AS hooked,
       CASE WHEN pg_column_size(e.result) <= ${EVENT_RESULT_MAX_BYTES} THEN e.result END AS result,
       coalesce(pg_column_size(e.result) > ${EVENT_RESULT_MAX_BYTES}, false) AS result_truncated,
       (SELECT x FROM jsonb_array_elements(coalesce(e.errors, r.errors)) x WHERE x ->> 'attempt' = e.attempt::text LIMIT 1) AS error,
       r.webhook_url
  FROM ${q}.events_after($1::text::xid8, $2::bigint, $3::bigint, $4::integer) e
  LEFT JOIN LATERAL (
    SELECT a.errors, a.metadata -> 'webhook' ->> 'url' AS webhook_url FROM ${q}.all_jobs a
     WHERE (e.type = 'retrying' OR e.hooked) AND a.id = e.job_id
     LIMIT 1
  ) r ON true
 ORDER BY e.xid, e.seq, e.pos
 LIMIT $5`;
}

/** The statement's snapshot as a TailPosition (columns next, running). */
export const TAIL_POSITION_COLUMNS = `pg_snapshot_xmax(pg_current_snapshot())::text AS next,
       ARRAY(SELECT pg_snapshot_xip(pg_current_snapshot())::text) AS running`;

/** Where a reader starts when it asks for no past: the oldest transaction still running; and the tail's position (TailPosition) now. */
export function streamHeadSql(): string {
  return `SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xid, ${TAIL_POSITION_COLUMNS}`;
}

interface EventRow {
  xid: string;
  seq: string;
  pos: string;
  at: Date;
  type: EventType;
  job_id: string;
  attempt: number;
  queue: string;
  kind: string;
  group_key: string | null;
  tenant: string | null;
  data: unknown;
  hooked: boolean;
  result: unknown;
  result_truncated: boolean;
  error: unknown;
  webhook_url: string | null;
}

/** An event, and for the webhook dispatcher where the job asked its end to be POSTed. */
export interface ReadEvent {
  event: SpoolEvent;
  webhookUrl: string | null;
}

function toEvent(row: EventRow): SpoolEvent {
  const event: SpoolEvent = {
    id: `${row.xid}-${row.seq}-${row.pos}`,
    type: row.type,
    at: row.at.toISOString(),
    job: { id: row.job_id, queue: row.queue, kind: row.kind, attempt: row.attempt, group: row.group_key, tenant: row.tenant },
  };
  if (row.type === 'completed') {
    event.result = row.result ?? null;
    if (row.result_truncated) event.resultTruncated = true;
  }
  if ((row.type === 'retrying' || row.type === 'dead') && row.error) event.error = row.error;
  if (row.type === 'progress') event.progress = row.data ?? null;
  return event;
}

/** One page after `cursor`: the events, the position of the last one, and whether the page was full (more may follow at once). */
export async function readEvents(
  executor: Executor,
  statement: string,
  cursor: EventCursor,
  rows = EVENT_PAGE_ROWS,
  events = EVENT_PAGE_EVENTS,
): Promise<{ read: ReadEvent[]; last: EventCursor; full: boolean }> {
  const found = await executor.query<EventRow>(statement, [cursor.xid, cursor.seq, cursor.pos, rows, events]);
  const read = found.map((row) => ({ event: toEvent(row), webhookUrl: row.hooked ? row.webhook_url : null }));
  const tail = found.at(-1);
  const last = tail ? { xid: tail.xid, seq: tail.seq, pos: tail.pos } : cursor;
  // A page ends at a statement's last job; count statements to tell a full page.
  const statements = new Set(found.map((r) => `${r.xid}-${r.seq}`)).size;
  return { read, last, full: found.length >= events || statements >= rows - 1 };
}

/**
 * Where the waiters' reader of the stream's tail has read up to: what a
 * snapshot did not yet see (transactions that were running, `running`, and
 * every one from `next` on). A transaction that commits later is one of
 * those, so reading exactly them misses none.
 */
export interface TailPosition {
  next: string;
  running: string[];
}

/**
 * The jobs that ended (completed, dead, cancelled) in transactions that
 * committed since `$1`/`$2` (a TailPosition), and the position after them.
 * Unlike the stream (readEventsSql) this does not wait for older
 * transactions to end: a waiter needs to know that its job ended, not what
 * came before, so it is woken as soon as the finish commits rather than
 * once every transaction that overlapped it has. A job can come twice
 * (read again while its transaction is running); waiters settle once.
 */
export function endedJobsSql(q: string): string {
  return `
WITH unseen AS (
  -- Two ranges of the primary key rather than an OR, each bounded on both sides: without
  -- statistics on xid (autovacuum off) the planner takes an open range for a third of the
  -- table and scans all of it; a closed one it reads by the index.
  (SELECT e.seq, e.at, e.type, e.ids
     FROM ${q}.job_events e
    WHERE e.xid >= $1::text::xid8 AND e.xid < pg_snapshot_xmax(pg_current_snapshot()) AND e.type IN ('finished', 'completed', 'dead', 'cancelled')
    ORDER BY e.xid, e.seq)
  UNION ALL
  (SELECT e.seq, e.at, e.type, e.ids
     FROM ${q}.job_events e
    WHERE e.xid = ANY($2::text::xid8[]) AND e.xid < $1::text::xid8 AND e.type IN ('finished', 'completed', 'dead', 'cancelled')
    ORDER BY e.xid, e.seq)
), ended AS (
  SELECT h.id FROM unseen e JOIN ${q}.job_history h ON h.event_seq = e.seq AND h.finished_at = e.at WHERE e.type = 'finished'
  UNION ALL
  SELECT u.id FROM unseen e CROSS JOIN unnest(e.ids) AS u(id) WHERE e.type <> 'finished'
)
SELECT ${TAIL_POSITION_COLUMNS}, ARRAY(SELECT id::text FROM ended) AS ids`;
}

/** The ids of jobs that ended after `from`, and where the next read starts. */
export async function readEndedJobs(executor: Executor, statement: string, from: TailPosition): Promise<{ ids: string[]; next: TailPosition }> {
  const [row] = await executor.query<{ next: string; running: string[]; ids: string[] }>(statement, [from.next, `{${from.running.join(',')}}`]);
  return { ids: row!.ids, next: { next: row!.next, running: row!.running } };
}
