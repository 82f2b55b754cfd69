import type { Hono } from 'hono';
import type { ApiContext, ApiEnv } from '../app.js';

/** GET /queues, POST /queues/:queue/pause, POST /queues/:queue/resume. */
export function registerQueueRoutes(app: Hono<ApiEnv>, ctx: ApiContext): void {
  app.get('/queues', async (c) => c.json({ queues: await ctx.spool.queueStats() }));

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
