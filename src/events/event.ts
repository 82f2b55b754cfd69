import { z } from 'zod';
import { EVENT_TYPES, type EventType } from '../queries/events.js';
import { ValidationError } from '../errors.js';

export { EVENT_TYPES, type EventType };

/** One change of one job, as the stream (GET /events), `spool.events()` and webhooks carry it. */
export interface SpoolEvent {
  /** Its place in the stream: `<xid>-<seq>-<pos>`; later events compare greater (compareEventIds). Give it back as Last-Event-ID. */
  id: string;
  type: EventType;
  /** When the change was made (database time, ISO 8601). */
  at: string;
  job: {
    id: string;
    queue: string;
    kind: string;
    /** The attempt the change belongs to (0 before the first start). */
    attempt: number;
    group: string | null;
    tenant: string | null;
  };
  /** completed: the handler's result, when it is at most EVENT_RESULT_MAX_BYTES (else `resultTruncated`). */
  result?: unknown;
  resultTruncated?: boolean;
  /** retrying, dead: the attempt's error (message, and stack when the handler threw one). */
  error?: unknown;
  /** progress: the value the handler reported. */
  progress?: unknown;
}

/** Larger results are left out of events (the job keeps them: GET /jobs/:id). */
export const EVENT_RESULT_MAX_BYTES = 8_192;

/** A position in the stream: the event last seen. */
export interface EventCursor {
  xid: string;
  seq: string;
  /** The place in its statement's row (1-based), or the job id for a job's end. */
  pos: string;
}

/** Before every event kept. */
export const STREAM_START: EventCursor = { xid: '0', seq: '0', pos: '0' };

const EVENT_ID = /^(\d{1,20})-(\d{1,19})-(\d{1,19})$/;
export const EVENT_ID_RULE = 'expected an event id as the stream sent it: <xid>-<seq>-<pos>, e.g. 7421-88-3';

export function eventId(cursor: EventCursor): string {
  return `${cursor.xid}-${cursor.seq}-${cursor.pos}`;
}

/** Parses an event id (Last-Event-ID); a ValidationError naming `field` when it is not one. */
export function parseEventId(text: string, field = 'Last-Event-ID'): EventCursor {
  const match = EVENT_ID.exec(text.trim());
  if (!match || BigInt(match[1]!) > 2n ** 64n - 1n || BigInt(match[2]!) > 2n ** 63n - 1n || BigInt(match[3]!) > 2n ** 63n - 1n) {
    throw new ValidationError([{ path: field, message: EVENT_ID_RULE }]);
  }
  return { xid: BigInt(match[1]!).toString(), seq: BigInt(match[2]!).toString(), pos: BigInt(match[3]!).toString() };
}

/** Stream order: negative when a is earlier than b. */
export function compareCursors(a: EventCursor, b: EventCursor): number {
  const x = BigInt(a.xid) - BigInt(b.xid);
  if (x !== 0n) return x < 0n ? -1 : 1;
  const s = BigInt(a.seq) - BigInt(b.seq);
  if (s !== 0n) return s < 0n ? -1 : 1;
  const p = BigInt(a.pos) - BigInt(b.pos);
  return p === 0n ? 0 : p < 0n ? -1 : 1;
}

/** Stream order of two event ids. */
export function compareEventIds(a: string, b: string): number {
  return compareCursors(parseEventId(a), parseEventId(b));
}

/** Which events a subscriber gets; each list matches any of its values, the lists combine with AND. */
export interface EventFilter {
  queue?: string[];
  kind?: string[];
  /** Job ids. */
  job?: string[];
  group?: string[];
  /** Event types, e.g. ['completed', 'dead']. */
  type?: EventType[];
  /** Only this tenant's jobs (the API sets it from a tenant-bound key). */
  tenant?: string;
}

export const eventTypeSchema = z.enum(EVENT_TYPES, { error: `expected one of ${EVENT_TYPES.join(', ')}` });

/** Whether an event passes a filter: the one predicate that scopes a stream (tenant included). */
export function matches(filter: EventFilter, event: SpoolEvent): boolean {
  if (filter.tenant !== undefined && event.job.tenant !== filter.tenant) return false;
  if (filter.type && !filter.type.includes(event.type)) return false;
  if (filter.queue && !filter.queue.includes(event.job.queue)) return false;
  if (filter.kind && !filter.kind.includes(event.job.kind)) return false;
  if (filter.job && !filter.job.includes(event.job.id)) return false;
  if (filter.group && (event.job.group === null || !filter.group.includes(event.job.group))) return false;
  return true;
}
