import type { Hono } from 'hono';
import { createKeySchema } from '../../auth/keys.js';
import { jsonBody, queryOf, type ApiContext, type ApiEnv } from '../app.js';
import { ApiProblem } from '../problems.js';
import { keysQuery } from '../schemas.js';
import { auditDetails } from '../audit.js';

const notFound = (ref: string) => new ApiProblem(404, 'not_found', `no API key ${JSON.stringify(ref)}: GET /keys lists them`);

/** GET /keys, POST /keys, DELETE /keys/:id, POST /keys/:id/rotate (admin keys only). */
export function registerKeyRoutes(app: Hono<ApiEnv>, ctx: ApiContext): void {
  app.get('/keys', async (c) => c.json({ keys: await ctx.spool.keys.list({ includeRevoked: queryOf(c, keysQuery).includeRevoked === 'true' }) }));

  app.post('/keys', async (c) => {
    const body = await jsonBody(c, createKeySchema);
    const created = await ctx.spool.keys.create(body);
    auditDetails(c, { keyId: created.apiKey.id, role: created.apiKey.role, name: created.apiKey.name });
    return c.json(created, 201);
  });

  app.delete('/keys/:id', async (c) => {
    const revoked = await ctx.spool.keys.revoke(c.req.param('id'));
    if (!revoked) throw notFound(c.req.param('id'));
    return c.json({ apiKey: revoked });
  });

  app.post('/keys/:id/rotate', async (c) => {
    const rotated = await ctx.spool.keys.rotate(c.req.param('id'));
    if (!rotated) throw notFound(c.req.param('id'));
    auditDetails(c, { newKeyId: rotated.apiKey.id });
    return c.json(rotated, 201);
  });
}
