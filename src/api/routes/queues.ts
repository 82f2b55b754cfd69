import type { Hono } from 'hono';
import type { ApiContext, ApiEnv } from '../app.js';
import { scoped } from '../tenancy.js';

/** GET /queues, POST /queues/:queue/pause, POST /queues/:queue/resume. */
export function registerQueueRoutes(app: Hono<ApiEnv>, ctx: ApiContext): void {
  // A tenant-bound key sees its own jobs' queues and counts only.
  app.get('/queues', async (c) => c.json({ queues: await scoped(c, ctx, (scope) => ctx.spool.queueStats(scope)) }));

  app.post('/queues/:queue/pause', async (c) => {
    const queue = c.req.param('queue');
    await ctx.spool.pauseQueue(queue);
    return c.json({ queue, paused: true });
  });

  app.post('/queues/:queue/resume', async (c) => {
    const queue = c.req.param('queue');
    await ctx.spool.resumeQueue(queue);
    return c.json({ queue, paused: false });
  });
}
