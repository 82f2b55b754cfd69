import type { Hono } from 'hono';
import { limitSettingsSchema, LIMIT_SCOPES, type LimitScope } from '../../flow/limits.js';
import { defineSchedule } from '../../schedules/schedule.js';
import { ScheduleNotFoundError } from '../../schedules/store.js';
import { ValidationError } from '../../errors.js';
import { jsonBody, queryOf, type ApiContext, type ApiEnv } from '../app.js';
import { limitsQuery, scheduleBody } from '../schemas.js';

/**
 * Schedules and flow limits: /schedules, /limits, /groups
 * (docs/flow-control.md). Every write here is the same call the library and
 * the CLI make.
 */
export function registerFlowRoutes(app: Hono<ApiEnv>, ctx: ApiContext): void {
  const schedules = ctx.spool.schedules;
  const limits = ctx.spool.limits;

  app.get('/schedules', async (c) => c.json({ schedules: await schedules.list() }));

  app.get('/schedules/:name', async (c) => {
    const schedule = await schedules.get(c.req.param('name'));
    if (!schedule) throw new ScheduleNotFoundError(c.req.param('name'));
    return c.json({ schedule });
  });

  app.put('/schedules/:name', async (c) => {
    const { kind, ...body } = await jsonBody(c, scheduleBody);
    const definition = defineSchedule({ ...body, name: c.req.param('name'), job: kind });
    // As POST /jobs: an unknown kind (unless allowed) or a payload its registered schema refuses is a 400.
    const issues = await ctx.kinds.check([{ kind, payload: definition.payload, at: '' }], ctx.unknownKinds);
    if (issues.length > 0) throw new ValidationError(issues);
    const [schedule] = await schedules.upsert([definition], 'api');
    return c.json({ schedule: await schedules.get(schedule!.name) });
  });

  app.post('/schedules/:name/pause', async (c) => c.json({ schedule: await schedules.pause(c.req.param('name')) }));
  app.post('/schedules/:name/resume', async (c) => c.json({ schedule: await schedules.resume(c.req.param('name')) }));
  app.post('/schedules/:name/trigger', async (c) => c.json({ jobId: await schedules.trigger(c.req.param('name')) }, 201));

  app.delete('/schedules/:name', async (c) => {
    const name = c.req.param('name');
    if (!(await schedules.remove(name))) throw new ScheduleNotFoundError(name);
    return c.json({ removed: true });
  });

  app.get('/limits', async (c) => c.json({ limits: await limits.list(queryOf(c, limitsQuery).scope) }));

  app.put('/limits/:scope/:name', async (c) => {
    const scope = scopeOf(c.req.param('scope'));
    return c.json({ limit: await limits.set(scope, c.req.param('name'), await jsonBody(c, limitSettingsSchema), { source: 'api' }) });
  });

  app.delete('/limits/:scope/:name', async (c) => c.json({ removed: await limits.remove(scopeOf(c.req.param('scope')), c.req.param('name')) }));

  app.get('/groups', async (c) => c.json({ groups: await limits.groups() }));

  app.put('/groups/:name', async (c) => c.json({ limit: await limits.set('group', c.req.param('name'), await jsonBody(c, limitSettingsSchema), { source: 'api' }) }));

  app.delete('/groups/:name', async (c) => c.json({ removed: await limits.remove('group', c.req.param('name')) }));
}

function scopeOf(scope: string): LimitScope {
  if (!LIMIT_SCOPES.includes(scope as LimitScope)) {
    throw new ValidationError([{ path: 'scope', message: `expected ${LIMIT_SCOPES.join(', ')} in /limits/{scope}/{name} (got ${JSON.stringify(scope)})` }]);
  }
  return scope as LimitScope;
}
