import type postgres from 'postgres';
import type { Spool, EnqueueItem } from '../client.js';
import { postgresExecutor } from '../db/executor.js';
import { compareCursors, type EventCursor, type SpoolEvent } from '../events/event.js';
import { readEvents, readEventsSql } from '../events/reader.js';
import { Service } from '../maintenance/service.js';
import type { Logger } from '../observability/logger.js';
import { TERMINAL_EVENT_TYPES, type EventType } from '../queries/events.js';
import { WEBHOOK_KIND, WEBHOOK_QUEUE, type DeliveryPayload } from './delivery.js';
import { JOB_WEBHOOK_ID } from './store.js';

/** How often the dispatcher looks for new events (250 ms). */
export const DISPATCH_INTERVAL_MS_DEFAULT = 250;
/** Event rows (statements) read per transaction. */
const PAGE_ROWS = 100;
/** A job that asked for a webhook keeps the dispatcher reading the stream this long after its enqueue (7 days: past any retry). */
const PER_JOB_WINDOW = '7 days';

interface Subscription {
  id: string;
  url: string;
  events: EventType[];
  queue: string | null;
  kind: string | null;
  tenant: string | null;
  created_at: Date;
}

/**
 * Turns recorded events into webhook deliveries (maintenance leader only).
 * job_events is the outbox: its rows exist exactly when their change
 * committed. In one transaction the dispatcher reads the next events after
 * its cursor, enqueues a `spool.webhook` job per matching subscription and
 * event (and per job end that asked for a webhook), and moves the cursor:
 * each event is dispatched once, none for a change that rolled back.
 */
export class WebhookDispatcher extends Service {
  /** Deliveries enqueued since start. */
  dispatched = 0;
  readonly #spool: Spool;
  readonly #sql: postgres.Sql;
  readonly #statement: string;

  constructor(options: { spool: Spool; sql: postgres.Sql; intervalMs?: number; log: Logger }) {
    super('webhooks', { intervalMs: options.intervalMs ?? DISPATCH_INTERVAL_MS_DEFAULT, log: options.log });
    this.#spool = options.spool;
    this.#sql = options.sql;
    this.#statement = readEventsSql(options.spool.quotedSchema);
  }

  protected async runOnce(): Promise<number | undefined> {
    const q = this.#spool.quotedSchema;
    return (await this.#sql.begin(async (tx) => {
      const executor = postgresExecutor(tx, true);
      // SKIP LOCKED: a leader that lost its lease may still be finishing a run; the next run goes on from its cursor.
      const [cursorRow] = await executor.query<{ xid: string; seq: string; pos: string }>(
        `SELECT xid::text AS xid, seq::text AS seq, pos::text AS pos FROM ${q}.webhook_cursor FOR UPDATE SKIP LOCKED`,
        [],
      );
      if (!cursorRow) return undefined;
      const cursor: EventCursor = cursorRow;
      const webhooks = await executor.query<Subscription & { recent: boolean }>(
        `SELECT id, url, events, queue, kind, tenant, created_at, coalesce(last_used_at > now() - interval '${PER_JOB_WINDOW}', false) AS recent
           FROM ${q}.webhooks WHERE NOT paused OR id = '${JOB_WEBHOOK_ID}'`,
        [],
      );
      const subscriptions = webhooks.filter((w) => w.url !== null && w.id !== JOB_WEBHOOK_ID);
      const perJob = webhooks.find((w) => w.id === JOB_WEBHOOK_ID);
      if (subscriptions.length === 0 && !perJob?.recent) {
        // Nobody wants events: skip the stream up to the oldest open transaction (all before it has ended).
        await executor.query(
          `UPDATE ${q}.webhook_cursor c SET xid = x.head, seq = 0, pos = 0, at = now()
             FROM (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS head) x WHERE c.xid < x.head`,
          [],
        );
        return undefined;
      }
      const page = await readEvents(executor, this.#statement, cursor, PAGE_ROWS);
      const items: EnqueueItem[] = [];
      const deliver = (webhook: string, url: string, event: SpoolEvent) =>
        items.push({ job: WEBHOOK_KIND, queue: WEBHOOK_QUEUE, group: webhook, payload: { webhook, url, event } as unknown as DeliveryPayload });
      for (const { event, webhookUrl } of page.read) {
        // A webhook's own deliveries would feed one that asks for everything, without end.
        if (event.job.kind === WEBHOOK_KIND) continue;
        for (const s of subscriptions) {
          if (s.events.includes(event.type) && (s.queue === null || s.queue === event.job.queue) && (s.kind === null || s.kind === event.job.kind)
            && (s.tenant === null || s.tenant === event.job.tenant) && new Date(event.at) >= s.created_at) {
            deliver(s.id, s.url, event);
          }
        }
        if (webhookUrl && TERMINAL_EVENT_TYPES.includes(event.type)) deliver(JOB_WEBHOOK_ID, webhookUrl, event);
      }
      for (let i = 0; i < items.length; i += 1_000) await this.#spool.enqueueMany(items.slice(i, i + 1_000), { tx });
      this.dispatched += items.length;
      if (compareCursors(page.last, cursor) !== 0) {
        await executor.query(`UPDATE ${q}.webhook_cursor SET xid = $1::text::xid8, seq = $2::bigint, pos = $3::bigint, at = now()`, [page.last.xid, page.last.seq, page.last.pos]);
      }
      return page.full ? 0 : undefined;
    })) as number | undefined;
  }
}
