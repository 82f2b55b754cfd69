import type { Hono } from 'hono';
import type { DeadFilter } from '../../queries/dead.js';
import { jsonBody, queryOf, type ApiContext, type ApiEnv } from '../app.js';
import { deadListQuery, deadPurgeQuery, deadSelection } from '../schemas.js';
import type { z } from 'zod';

/** The dead-letter queue: GET /dead, POST /dead/replay, DELETE /dead. */
export function registerDeadRoutes(app: Hono<ApiEnv>, ctx: ApiContext): void {
  app.get('/dead', async (c) => c.json(await ctx.spool.listJobs({ ...queryOf(c, deadListQuery), state: 'dead' })));

  app.post('/dead/replay', async (c) => {
    const { ids } = await ctx.spool.replayDead(toFilter(await jsonBody(c, deadSelection)));
    return c.json({ replayed: ids.length, ids });
  });

  app.delete('/dead', async (c) => {
    // The query string says which, with the same rules as a replay's body.
    const selection = queryOf(c, deadPurgeQuery.pipe(deadSelection));
    return c.json({ deleted: await ctx.spool.purgeDead(toFilter(selection)) });
  });
}

function toFilter({ ids, queue, kind, finishedBefore }: z.output<typeof deadSelection>): DeadFilter {
  return { ids, queue, kind, finishedBefore: finishedBefore === undefined ? undefined : new Date(finishedBefore) };
}
