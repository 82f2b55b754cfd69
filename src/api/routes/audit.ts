import type { Hono } from 'hono';
import { queryOf, type ApiContext, type ApiEnv } from '../app.js';
import { auditQuery } from '../schemas.js';
import { parseSince } from '../../audit/log.js';

/** GET /audit (admin keys only): the audit log, newest first. */
export function registerAuditRoutes(app: Hono<ApiEnv>, ctx: ApiContext): void {
  app.get('/audit', async (c) => {
    const q = queryOf(c, auditQuery);
    const page = await ctx.spool.audit.list({ ...q, since: q.since === undefined ? undefined : parseSince(q.since) });
    return c.json(page);
  });
}
