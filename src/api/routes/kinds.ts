import type { Hono } from 'hono';
import type { ApiContext, ApiEnv } from '../app.js';

/** GET /kinds: the kind registry. */
export function registerKindRoutes(app: Hono<ApiEnv>, ctx: ApiContext): void {
  app.get('/kinds', async (c) => c.json({ kinds: await ctx.spool.listKinds() }));
}
