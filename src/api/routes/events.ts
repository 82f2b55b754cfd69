import type { Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import { queryOf, type ApiContext, type ApiEnv } from '../app.js';
import { eventsQuery } from '../schemas.js';
import { parseEventId, type EventFilter } from '../../events/event.js';
import { requestTenant } from '../tenancy.js';

/** A comment line this often keeps proxies from closing an idle stream (15 s). */
export const SSE_HEARTBEAT_MS = 15_000;
/** What EventSource waits before it reconnects (the `retry:` field). */
const SSE_RETRY_MS = 2_000;

/**
 * GET /events: Server-Sent Events, one per job change matching the query,
 * each with its id; a client that reconnects with Last-Event-ID (or
 * ?after=) gets everything after it, in order, within the events retention.
 * A tenant-bound key's stream carries only its tenant's jobs (the filter's
 * tenant: one predicate). A subscriber that falls too far behind gets an
 * `event: dropped` and the stream ends; it reconnects from its last id.
 */
export function registerEventRoutes(app: Hono<ApiEnv>, ctx: ApiContext): void {
  app.get('/events', async (c) => {
    const q = queryOf(c, eventsQuery);
    const lastEventId = c.req.header('last-event-id');
    const afterText = lastEventId !== undefined && lastEventId !== '' ? lastEventId : q.after;
    const after = afterText === undefined ? undefined : parseEventId(afterText, lastEventId ? 'Last-Event-ID' : 'after');
    const filter: EventFilter = { queue: q.queue, kind: q.kind, job: q.job, group: q.group, type: q.state, tenant: requestTenant(c) };
    // Listening before the response starts: a database that is down is a 503 now, not a broken stream.
    await ctx.spool.eventHub.ready();
    const subscription = ctx.spool.eventHub.subscribe(filter, { after, maxBuffer: ctx.eventBufferMax });
    c.header('Cache-Control', 'no-cache, no-transform');
    c.header('X-Accel-Buffering', 'no');
    return streamSSE(c, async (stream) => {
      stream.onAbort(() => subscription.close());
      const heartbeat = setInterval(() => void stream.write(': ping\n\n').catch(() => subscription.close()), SSE_HEARTBEAT_MS);
      try {
        await stream.write(`retry: ${SSE_RETRY_MS}\n\n`);
        for await (const event of subscription) {
          await stream.writeSSE({ id: event.id, event: event.type, data: JSON.stringify(event) });
        }
        if (subscription.dropped) {
          await stream.writeSSE({ event: 'dropped', data: JSON.stringify({ reason: subscription.dropped }) });
        }
      } finally {
        clearInterval(heartbeat);
        subscription.close();
      }
    });
  });
}
