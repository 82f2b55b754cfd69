import type { Context, Hono } from 'hono';
import { getConnInfo } from '@hono/node-server/conninfo';
import type { AuditLog } from '../audit/log.js';
import type { ApiEnv } from './app.js';

/**
 * The routes whose every call is written to the audit log, and the action
 * each is logged as: every change an operator or admin key may make.
 * Enqueues are not here (they are the producers' daily traffic, and the
 * jobs table already holds them). A test checks every operate/admin route
 * that changes state is listed.
 */
export const AUDITED_ROUTES: Record<string, string> = {
  'DELETE /jobs/:id': 'job.cancel',
  'POST /jobs/:id/retry': 'job.retry',
  'POST /queues/:queue/pause': 'queue.pause',
  'POST /queues/:queue/resume': 'queue.resume',
  'POST /dead/replay': 'dead.replay',
  'DELETE /dead': 'dead.purge',
  'POST /maintenance/prune': 'maintenance.prune',
  'PUT /schedules/:name': 'schedule.put',
  'POST /schedules/:name/pause': 'schedule.pause',
  'POST /schedules/:name/resume': 'schedule.resume',
  'POST /schedules/:name/trigger': 'schedule.trigger',
  'DELETE /schedules/:name': 'schedule.remove',
  'PUT /limits/:scope/:name': 'limit.put',
  'DELETE /limits/:scope/:name': 'limit.remove',
  'PUT /groups/:name': 'group.put',
  'DELETE /groups/:name': 'group.remove',
  'POST /keys': 'key.create',
  'DELETE /keys/:id': 'key.revoke',
  'POST /keys/:id/rotate': 'key.rotate',
  'POST /webhooks': 'webhook.create',
  'DELETE /webhooks/:id': 'webhook.remove',
  'POST /webhooks/:id/rotate': 'webhook.rotate',
  'POST /webhooks/:id/pause': 'webhook.pause',
  'POST /webhooks/:id/resume': 'webhook.resume',
  'POST /webhooks/:id/replay': 'webhook.replay',
};

/** Adds what a handler knows of its action (counts, the selection, a new key's id) to the request's audit row. */
export function auditDetails(c: Context<ApiEnv>, details: Record<string, unknown>): void {
  c.set('auditDetails', { ...c.get('auditDetails'), ...details });
}

function clientAddress(c: Context<ApiEnv>): string | null {
  try {
    return getConnInfo(c).remote.address ?? null;
  } catch {
    return null; // app.request() in tests, or another runtime: no socket
  }
}

/**
 * Registers, before the access checks, a middleware per audited route that
 * writes one row once the request is answered: who (the key, never its
 * secret), what, on what, and how it ended. A request without a usable key
 * (401) is not written: it has no one to name, and counting strangers' tries
 * would let anyone fill the table. A failed write is logged, not answered:
 * the action has happened by then.
 */
export function registerAudit(app: Hono<ApiEnv>, audit: AuditLog): void {
  for (const [route, action] of Object.entries(AUDITED_ROUTES)) {
    const [method, path] = route.split(' ') as [string, string];
    app.on(method, path, async (c, next) => {
      await next();
      const status = c.res.status;
      if (status === 401) return;
      const key = c.get('apiKey');
      const params = c.req.param() as Record<string, string>;
      const target = Object.keys(params).length > 0 ? Object.values(params).join('/') : null;
      try {
        await audit.record({
          keyId: key?.id ?? null,
          keyName: key?.name ?? null,
          role: key?.role ?? null,
          tenant: key?.tenant ?? null,
          action,
          target,
          result: status < 400 ? 'ok' : status === 403 ? 'refused' : 'failed',
          status,
          client: clientAddress(c),
          requestId: c.get('requestId') ?? null,
          details: c.get('auditDetails') ?? {},
        });
      } catch (error) {
        c.get('log').error({ err: error, action, target }, 'could not write the audit row');
      }
    });
  }
}
