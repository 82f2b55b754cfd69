import type { Hono } from 'hono';
import type { DeadFilter } from '../../queries/dead.js';
import { jsonBody, queryOf, type ApiContext, type ApiEnv } from '../app.js';
import { deadListQuery, deadPurgeQuery, deadSelection } from '../schemas.js';
import type { z } from 'zod';
import { auditDetails } from '../audit.js';
import { scoped } from '../tenancy.js';

/** The dead-letter queue: GET /dead, POST /dead/replay, DELETE /dead. */
export function registerDeadRoutes(app: Hono<ApiEnv>, ctx: ApiContext): void {
  app.get('/dead', async (c) => {
    const q = queryOf(c, deadListQuery);
    return c.json(await scoped(c, ctx, ({ tx, tenant }) => ctx.spool.listJobs({ ...q, state: 'dead', tenant, maxBytes: ctx.pageMaxBytes }, { tx })));
  });

  app.post('/dead/replay', async (c) => {
    const selection = await jsonBody(c, deadSelection);
    const { ids } = await scoped(c, ctx, ({ tx, tenant }) => ctx.spool.replayDead({ ...toFilter(selection), tenant }, { tx }));
    auditDetails(c, { selection: summary(selection), replayed: ids.length });
    return c.json({ replayed: ids.length, ids });
  });

  app.delete('/dead', async (c) => {
    // The query string says which, with the same rules as a replay's body.
    const selection = queryOf(c, deadPurgeQuery.pipe(deadSelection));
    const deleted = await scoped(c, ctx, ({ tx, tenant }) => ctx.spool.purgeDead({ ...toFilter(selection), tenant }, { tx }));
    auditDetails(c, { selection: summary(selection), deleted });
    return c.json({ deleted });
  });
}

/** The selection as the audit row keeps it: ids counted past 20, not all listed. */
function summary(selection: z.output<typeof deadSelection>): Record<string, unknown> {
  const { ids, ...rest } = selection;
  return ids === undefined ? rest : { ...rest, ids: ids.length > 20 ? `${ids.length} ids` : ids };
}

function toFilter({ ids, queue, kind, finishedBefore }: z.output<typeof deadSelection>): DeadFilter {
  return { ids, queue, kind, finishedBefore: finishedBefore === undefined ? undefined : new Date(finishedBefore) };
}
