import type { Hono } from 'hono';
import { jsonBody, type ApiContext, type ApiEnv } from '../app.js';
import { pruneBody } from '../schemas.js';

/** POST /maintenance/prune: `spool prune` over HTTP. */
export function registerMaintenanceRoutes(app: Hono<ApiEnv>, ctx: ApiContext): void {
  app.post('/maintenance/prune', async (c) => {
    // The body is optional: a bare POST (no body, or Content-Length: 0) prunes.
    const length = c.req.header('content-length');
    const hasBody = c.req.header('transfer-encoding') !== undefined || (length !== undefined ? Number(length) > 0 : c.req.header('content-type') !== undefined);
    const { dryRun } = hasBody ? await jsonBody(c, pruneBody) : { dryRun: false };
    return c.json(await ctx.spool.prune({ dryRun }));
  });
}
