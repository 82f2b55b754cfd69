import { beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineJob } from '../../src/index.js';
import { waitFor } from '../support/factories.js';
import { createApp } from '../../src/api/app.js';
import { createLogger } from '../../src/observability/logger.js';
import { useTestDatabase } from '../support/database.js';
import { api, type ApiCall } from '../support/api.js';

const db = useTestDatabase();
let call: ApiCall;
beforeAll(() => {
  call = api(createApp({ auth: 'off', spool: db.spool, logger: createLogger({ level: 'silent' }), unknownKinds: 'allow' }));
});

describe('/schedules', () => {
  it('PUT creates, GET shows the next 5 runs, pause/resume/trigger act, DELETE removes', async () => {
    const put = await call('PUT', '/schedules/hourly', { cron: '0 * * * *', kind: 'report.build', payload: { full: true }, options: { queue: 'reports', group: 'initech' }, catchUp: 'latest' });
    expect(put.status).toBe(200);
    expect(put.body.schedule).toMatchObject({ name: 'hourly', cron: '0 * * * *', timezone: 'UTC', kind: 'report.build', catchUp: 'latest', source: 'api', paused: false });
    expect(put.body.schedule.nextRuns).toHaveLength(5);
    expect(new Date(put.body.schedule.nextRuns[0]).getUTCMinutes()).toBe(0);
    expect((await call('GET', '/schedules')).body.schedules.map((s: { name: string }) => s.name)).toEqual(['hourly']);

    expect((await call('POST', '/schedules/hourly/pause')).body.schedule.paused).toBe(true);
    expect((await call('GET', '/schedules/hourly')).body.schedule.nextRuns).toEqual([]);
    expect((await call('POST', '/schedules/hourly/resume')).body.schedule.paused).toBe(false);
    // Resuming through PUT starts from the next tick after now too, not from a tick missed while paused.
    await call('POST', '/schedules/hourly/pause');
    await db.sql`UPDATE spool.schedules SET next_run_at = now() - interval '3 hours' WHERE name = 'hourly'`;
    const resumed = await call('PUT', '/schedules/hourly', { cron: '0 * * * *', kind: 'report.build', payload: { full: true }, options: { queue: 'reports', group: 'initech' }, catchUp: 'latest', paused: false });
    expect(new Date(resumed.body.schedule.nextRunAt).getTime()).toBeGreaterThan(Date.now() - 60_000);

    const trigger = await call('POST', '/schedules/hourly/trigger');
    expect(trigger.status).toBe(201);
    const job = (await call('GET', `/jobs/${trigger.body.jobId}`)).body.job;
    expect(job).toMatchObject({ kind: 'report.build', queue: 'reports', group: 'initech', payload: { full: true } });

    expect((await call('DELETE', '/schedules/hourly')).body).toEqual({ removed: true });
    expect((await call('GET', '/schedules/hourly')).status).toBe(404);
    expect((await call('DELETE', '/schedules/hourly')).status).toBe(404);
    expect((await call('POST', '/schedules/nope/pause')).body.error.code).toBe('not_found');
  });

  it('checks the kind and its payload as POST /jobs does', async () => {
    const strict = api(createApp({ auth: 'off', spool: db.spool, logger: createLogger({ level: 'silent' }) }));
    await db.spool.registerKinds([defineJob({ kind: 'report.typed', schema: z.object({ day: z.string() }) })]);
    await waitFor(async () => (await strict('PUT', '/schedules/typed', { cron: '0 * * * *', kind: 'report.typed', payload: { day: 'mon' } })).status === 200, 'kind registered');
    const bad = await strict('PUT', '/schedules/typed', { cron: '0 * * * *', kind: 'report.typed', payload: { day: 1 } });
    expect(bad.status).toBe(400);
    expect(bad.body.error.details[0].path).toMatch(/^payload/);
    const unknown = await strict('PUT', '/schedules/nokind', { cron: '0 * * * *', kind: 'no.such.kind' });
    expect(unknown.status).toBe(400);
    expect((await strict('GET', '/schedules/nokind')).status).toBe(404);
    await strict('DELETE', '/schedules/typed');
  });

  it('refuses a bad schedule with 400 naming each field', async () => {
    const res = await call('PUT', '/schedules/bad', { cron: 'often', kind: 'x', timezone: 'Nowhere/Land', overlap: 'maybe' });
    expect(res.status).toBe(400);
    const paths = res.body.error.details.map((d: { path: string }) => d.path);
    expect(paths).toContain('overlap');
    const second = await call('PUT', '/schedules/bad', { cron: 'often', kind: 'x', timezone: 'Nowhere/Land' });
    expect(second.body.error.details.map((d: { path: string }) => d.path)).toEqual(['timezone']);
    const third = await call('PUT', '/schedules/bad', { cron: 'often', kind: 'x' });
    expect(third.body.error.details[0]).toMatchObject({ path: 'cron' });
    expect((await call('PUT', '/schedules/bad', { cron: '* * * * *' })).body.error.details[0].path).toBe('kind');
    expect((await call('GET', '/schedules/bad')).status).toBe(404);
  });
});

describe('/limits and /groups', () => {
  it('PUT sets a limiter, GET lists it, DELETE removes it', async () => {
    const res = await call('PUT', '/limits/queue/mail', { concurrency: 5, rate: '20/1s', fair: true });
    expect(res.status).toBe(200);
    expect(res.body.limit).toMatchObject({ scope: 'queue', name: 'mail', concurrency: 5, rate: { limit: 20, windowMs: 1000 }, fair: true, source: 'api' });
    expect((await call('GET', '/limits?scope=queue')).body.limits).toHaveLength(1);
    expect((await call('GET', '/limits?scope=tenant')).status).toBe(400);
    expect((await call('DELETE', '/limits/queue/mail')).body).toEqual({ removed: true });
    expect((await call('GET', '/limits')).body.limits).toEqual([]);
  });

  it('groups: weights and limits, with their jobs waiting', async () => {
    await call('POST', '/jobs/batch', { jobs: [{ kind: 'g.job', group: 'acme' }, { kind: 'g.job', group: 'acme' }, { kind: 'g.job', group: 'globex' }] });
    expect((await call('PUT', '/groups/acme', { weight: 3, concurrency: 2 })).body.limit).toMatchObject({ scope: 'group', name: 'acme', weight: 3, concurrency: 2 });
    const groups = (await call('GET', '/groups')).body.groups;
    expect(groups).toEqual([
      { group: 'acme', waiting: 2, scheduled: 0, running: 0, weight: 3, concurrency: 2, rate: null, configured: true },
      { group: 'globex', waiting: 1, scheduled: 0, running: 0, weight: 1, concurrency: null, rate: null, configured: false },
      { group: 'initech', waiting: 1, scheduled: 0, running: 0, weight: 1, concurrency: null, rate: null, configured: false },
    ]);
    expect((await call('DELETE', '/groups/acme')).body).toEqual({ removed: true });
  });

  it('refuses bad settings with 400 naming the field', async () => {
    const bad = async (path: string, body: unknown) => (await call('PUT', path, body)).body.error.details.map((d: { path: string }) => d.path);
    expect(await bad('/limits/queue/q', { concurrency: -1 })).toEqual(['concurrency']);
    expect(await bad('/limits/queue/q', { rate: { limit: 5 } })).toEqual(['rate']);
    expect(await bad('/limits/kind/k', { weight: 2 })).toEqual(['weight']);
    expect(await bad('/limits/tenant/q', {})).toEqual(['scope']);
    expect(await bad('/groups/acme', { weight: 0 })).toEqual(['weight']);
    expect(await bad('/limits/queue/q', { extra: 1 })).toEqual(['extra']);
    expect((await call('GET', '/limits')).body.limits).toEqual([]);
  });

  it('enqueue takes a group; a bad one is a 400 naming it', async () => {
    const ok = await call('POST', '/jobs', { kind: 'g.job', group: 'tenant-7' });
    expect(ok.body.job.group).toBe('tenant-7');
    const bad = await call('POST', '/jobs', { kind: 'g.job', group: '' });
    expect(bad.status).toBe(400);
    expect(bad.body.error.details[0].path).toBe('group');
  });
});
