import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBuiltCli, runCli } from '../support/cli.js';
import { useTestDatabase } from '../support/database.js';
import { waitFor } from '../support/factories.js';

const db = useTestDatabase();

async function spool(args: string[], env: Record<string, string | undefined> = {}) {
  const run = runBuiltCli(args, { DATABASE_URL: db.url, SPOOL_CONFIG: undefined, ...env });
  const code = await run.exited;
  return { code, ...run.output() };
}

describe('spool schedules', () => {
  it('set, list, show (the next 5 runs), pause, resume, trigger, remove', async () => {
    const setArgs = ['schedules', 'set', 'nightly', '--cron', '30 2 * * *', '--timezone', 'Europe/Berlin', '--kind', 'report.build', '--payload', '{"full":true}', '--catch-up', 'latest'];
    // As `spool enqueue`: a kind no worker registered is refused unless SPOOL_UNKNOWN_KINDS=allow.
    const refused = await spool(setArgs);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/report\.build/);
    const set = await spool(setArgs, { SPOOL_UNKNOWN_KINDS: 'allow' });
    expect(set.stderr).toBe('');
    expect(set.code).toBe(0);
    expect(set.stdout).toMatch(/^schedule nightly set: next run \d{4}-\d\d-\d\dT0[01]:30:00Z/);
    const list = await spool(['schedules', 'list']);
    expect(list.stdout).toMatch(/NAME\s+CRON\s+TIMEZONE\s+KIND\s+STATE/);
    expect(list.stdout).toMatch(/nightly\s+30 2 \* \* \*\s+Europe\/Berlin\s+report.build\s+active/);
    const show = await spool(['schedules', 'show', 'nightly', '--json']);
    const shown = JSON.parse(show.stdout).schedule;
    expect(shown.nextRuns).toHaveLength(5);
    expect(shown).toMatchObject({ catchUp: 'latest', source: 'cli', payload: { full: true } });
    const text = await spool(['schedules', 'show', 'nightly']);
    expect(text.stdout.match(/\d{4}-\d\d-\d\dT\d\d:30:00Z/g)!.length).toBeGreaterThanOrEqual(5);

    expect((await spool(['schedules', 'pause', 'nightly'])).stdout).toBe('schedule nightly paused\n');
    expect(JSON.parse((await spool(['schedules', 'show', 'nightly', '--json'])).stdout).schedule.nextRuns).toEqual([]);
    expect((await spool(['schedules', 'resume', 'nightly'])).stdout).toMatch(/^schedule nightly resumed: next run /);
    const trigger = await spool(['schedules', 'trigger', 'nightly']);
    expect(trigger.stdout).toMatch(/^\d+\n$/);
    expect((await db.spool.getJob(trigger.stdout.trim()))!.kind).toBe('report.build');
    expect((await spool(['schedules', 'remove', 'nightly'])).stdout).toBe('schedule nightly removed\n');
    const missing = await spool(['schedules', 'show', 'nightly']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^spool: not_found: no schedule named "nightly"/);
  });

  it('refuses a bad cron naming the flag, and changes nothing', async () => {
    const bad = await spool(['schedules', 'set', 'bad', '--cron', 'often', '--kind', 'x'], { SPOOL_UNKNOWN_KINDS: 'allow' });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/cron/);
    const payload = await spool(['schedules', 'set', 'bad', '--cron', '* * * * *', '--kind', 'x', '--payload', '{nope'], { SPOOL_UNKNOWN_KINDS: 'allow' });
    expect(payload.stderr).toMatch(/--payload: not valid JSON/);
    expect((await db.spool.schedules.list()).map((s) => s.name)).not.toContain('bad');
  });
});

describe('spool limits and spool groups', () => {
  it('set merges with what is there, list shows it, remove clears it', async () => {
    expect((await spool(['limits', 'set', 'queue', 'mail', '--concurrency', '5'])).stdout).toBe('queue mail: concurrency 5, rate -, fair false\n');
    expect((await spool(['limits', 'set', 'queue', 'mail', '--rate', '20/1s', '--fair'])).stdout).toBe('queue mail: concurrency 5, rate 20/1000ms, fair true\n');
    expect((await spool(['limits', 'set', 'queue', 'mail', '--concurrency', 'none'])).stdout).toBe('queue mail: concurrency -, rate 20/1000ms, fair true\n');
    const list = await spool(['limits', 'list']);
    expect(list.stdout).toMatch(/queue\s+mail\s+-\s+20\/1000ms\s+-\s+true\s+cli/);
    expect((await spool(['groups', 'set', 'acme', '--weight', '3', '--concurrency', '2'])).stdout).toBe('group acme: concurrency 2, rate -, weight 3\n');
    await db.spool.enqueue('g.job', {}, { group: 'acme' });
    const groups = await spool(['groups', 'list', '--json']);
    expect(JSON.parse(groups.stdout).groups).toEqual([{ group: 'acme', waiting: 1, scheduled: 0, running: 0, weight: 3, concurrency: 2, rate: null, configured: true }]);
    expect((await spool(['groups', 'remove', 'acme'])).stdout).toBe('group acme: limits removed\n');
    expect((await spool(['limits', 'remove', 'queue', 'mail'])).stdout).toBe('queue mail: limits removed\n');
    expect(await db.spool.limits.list()).toEqual([]);
  });

  it('refuses bad values naming the flag', async () => {
    const rate = await spool(['limits', 'set', 'queue', 'mail', '--rate', 'fast']);
    expect(rate.code).toBe(1);
    expect(rate.stderr).toMatch(/rate: expected "<starts>\/<window>"/);
    const scope = await spool(['limits', 'set', 'tenant', 'x', '--concurrency', '1']);
    expect(scope.stderr).toMatch(/scope: expected queue, kind, group/);
    const count = await spool(['limits', 'set', 'queue', 'mail', '--concurrency', 'lots']);
    expect(count.stderr).toMatch(/--concurrency: expected a whole number/);
    expect(await db.spool.limits.list()).toEqual([]);
  });
});

describe('spool work with a tasks folder', () => {
  it('applies config limits and registers the folder\'s schedules, which then tick', async () => {
    const dir = await mkdtemp(join(process.cwd(), '.tmp-flow-'));
    try {
      await writeFile(join(dir, 'tick.mjs'), `
import { defineSchedule } from '${process.cwd()}/src/index.ts';
export default async () => ({ ok: true });
export const schedules = defineSchedule({ name: 'folder-tick', cron: '* * * * * *', job: 'tick' });
`);
      await writeFile(join(dir, 'config.json'), JSON.stringify({ limits: { queues: { default: { concurrency: 4 } } } }));
      const run = runCli(['work', '--tasks', dir, '--config', join(dir, 'config.json')], { DATABASE_URL: db.url, SPOOL_METRICS: 'false', SPOOL_LOG_LEVEL: 'warn' });
      await waitFor(async () => (await db.sql`SELECT count(*)::int AS n FROM spool.all_jobs WHERE metadata->>'schedule' = 'folder-tick' AND state = 'completed'`)[0]!.n >= 2, 'two ticks done', 30_000);
      expect(await db.spool.limits.get('queue', 'default')).toMatchObject({ concurrency: 4, source: 'config' });
      expect((await db.spool.schedules.get('folder-tick'))!.source).toBe('code');
      run.child.kill('SIGTERM');
      expect(await run.exited).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
