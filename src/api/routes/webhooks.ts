import type { Hono } from 'hono';
import { z } from 'zod';
import { jsonBody, queryOf, type ApiContext, type ApiEnv } from '../app.js';
import { auditDetails } from '../audit.js';
import { ApiProblem } from '../problems.js';
import { createWebhookSchema, webhookIdSchema, WebhookNotFoundError } from '../../webhooks/store.js';
import { WEBHOOK_QUEUE } from '../../webhooks/delivery.js';
import { JOB_STATES } from '../../job.js';
import { issuesOf, ValidationError } from '../../errors.js';

export const deliveriesQuery = z.strictObject({
  state: z
    .string()
    .transform((text) => text.split(','))
    .pipe(z.array(z.enum(JOB_STATES, { error: `expected ${JOB_STATES.join(', ')} (comma-separated for several)` })))
    .optional()
    .describe('deliveries in these states, e.g. dead (the webhook\'s dead-letter queue)'),
  cursor: z.string().optional().describe('nextCursor of the previous page'),
});

function webhookId(id: string): string {
  const issues = issuesOf(webhookIdSchema, id, 'id');
  if (issues.length > 0) throw new ValidationError(issues);
  return id;
}

/**
 * /webhooks (admin keys): subscriptions, their secrets (shown once, at
 * creation and rotation), their deliveries (jobs of kind spool.webhook,
 * grouped by webhook id) and the replay of their dead-letter queue.
 */
export function registerWebhookRoutes(app: Hono<ApiEnv>, ctx: ApiContext): void {
  const store = ctx.spool.webhooks;
  const existing = async (id: string) => {
    const webhook = await store.get(webhookId(id));
    if (!webhook) throw new WebhookNotFoundError(id);
    return webhook;
  };

  app.get('/webhooks', async (c) => c.json({ webhooks: await store.list() }));

  app.post('/webhooks', async (c) => {
    const created = await store.create(await jsonBody(c, createWebhookSchema));
    auditDetails(c, { webhookId: created.webhook.id, url: created.webhook.url, events: created.webhook.events });
    return c.json(created, 201);
  });

  app.get('/webhooks/:id', async (c) => c.json({ webhook: await existing(c.req.param('id')) }));

  app.delete('/webhooks/:id', async (c) => {
    if (!(await store.remove(webhookId(c.req.param('id'))))) throw new WebhookNotFoundError(c.req.param('id'));
    return c.json({ removed: true });
  });

  app.post('/webhooks/:id/rotate', async (c) => c.json(await store.rotate(webhookId(c.req.param('id')))));
  app.post('/webhooks/:id/pause', async (c) => c.json({ webhook: await store.setPaused(webhookId(c.req.param('id')), true) }));
  app.post('/webhooks/:id/resume', async (c) => c.json({ webhook: await store.setPaused(webhookId(c.req.param('id')), false) }));

  app.get('/webhooks/:id/deliveries', async (c) => {
    const webhook = await existing(c.req.param('id'));
    const q = queryOf(c, deliveriesQuery);
    return c.json(await ctx.spool.listJobs({ queue: WEBHOOK_QUEUE, group: webhook.id, state: q.state, cursor: q.cursor, maxBytes: ctx.pageMaxBytes }));
  });

  app.post('/webhooks/:id/replay', async (c) => {
    const webhook = await existing(c.req.param('id'));
    const { ids } = await ctx.spool.replayDead({ queue: WEBHOOK_QUEUE, group: webhook.id });
    auditDetails(c, { replayed: ids.length });
    if (ids.length === 0) throw new ApiProblem(404, 'not_found', `webhook ${webhook.id} has no dead deliveries`);
    return c.json({ replayed: ids.length, ids });
  });
}
