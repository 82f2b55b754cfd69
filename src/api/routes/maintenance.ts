import type { Hono } from 'hono';
import { jsonBody, type ApiContext, type ApiEnv } from '../app.js';
import { pruneBody } from '../schemas.js';

/** POST /maintenance/prune: `spool prune` over HTTP. */
export function registerMaintenanceRoutes(app: Hono<ApiEnv>, ctx: ApiContext): void {
  app.post('/maintenance/prune', async (c) => {
    // The body is optional: a bare POST prunes.
    const { dryRun } = c.req.header('content-type') || c.req.header('content-length') ? await jsonBody(c, pruneBody) : { dryRun: false };
    return c.json(await ctx.spool.prune({ dryRun }));
  });
}
