import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createLogger, defineJob, defineSchedule, ValidationError, type Worker } from '../../src/index.js';
import { nextRuns } from '../../src/schedules/schedule.js';
import { useTestDatabase } from '../support/database.js';
import { waitFor } from '../support/factories.js';

const db = useTestDatabase();
const quiet = createLogger({ level: 'silent' });
let worker: Worker | undefined;

afterEach(async () => {
  await worker?.stop({ graceMs: 1_000 });
  worker = undefined;
});

const tick = defineJob({ kind: 'cron.tick', queue: 'cron', schema: z.object({}).passthrough(), handler: async () => ({ ok: true }) });
const slowTick = defineJob({
  kind: 'cron.slow',
  queue: 'cron',
  schema: z.object({}).passthrough(),
  handler: () => new Promise((resolve) => setTimeout(resolve, 2_500)),
});

async function jobsOf(schedule: string): Promise<Array<{ id: string; tick: string; state: string; created_at: Date; finished_at: Date | null; run_at: Date }>> {
  return db.sql.unsafe(`SELECT id, metadata->>'scheduledFor' AS tick, state::text, created_at, finished_at, run_at FROM spool.all_jobs
                         WHERE metadata->>'schedule' = $1 AND metadata->>'trigger' IS NULL ORDER BY tick`, [schedule]) as never;
}

/** Pretends the leader was down: the schedule's next tick is `seconds` ago. */
async function missTicks(name: string, seconds: number): Promise<Date> {
  const [row] = await db.sql`UPDATE spool.schedules SET next_run_at = date_trunc('second', now()) - make_interval(secs => ${seconds})
                               WHERE name = ${name} RETURNING now() AS now`;
  return row!.now as Date;
}

describe('defineSchedule', () => {
  it('refuses a bad cron, zone, policy or option, naming the field', () => {
    const fails = (input: Record<string, unknown>) => {
      try {
        defineSchedule({ name: 'x', cron: '* * * * *', job: 'cron.tick', ...input } as never);
      } catch (error) {
        expect(error).toBeInstanceOf(ValidationError);
        return (error as Error).message;
      }
      throw new Error('accepted');
    };
    expect(fails({ cron: 'every day' })).toMatch(/cron: .*expected a cron pattern/);
    expect(fails({ timezone: 'Mars/Olympus' })).toMatch(/timezone: unknown time zone "Mars\/Olympus"/);
    expect(fails({ catchUp: 'some' })).toMatch(/catchUp: expected none, latest or all/);
    expect(fails({ overlap: 'never' })).toMatch(/overlap: expected allow/);
    expect(fails({ options: { uniqueKey: 'k' } })).toMatch(/options.uniqueKey: is set by the schedule/);
    expect(fails({ options: { priority: 'high' } })).toMatch(/options.priority/);
    expect(fails({ name: 'has space' })).toMatch(/name:/);
    expect(() => defineSchedule({ name: 'p', cron: '* * * * *', job: defineJob({ kind: 'cron.typed', schema: z.object({ n: z.number() }), handler: () => {} }), payload: { n: 'one' } }))
      .toThrow(/payload.n/);
  });

  it('DST: 02:30 Europe/Berlin on the spring-forward day runs once, at 03:00 local (croner\'s documented behaviour), and keeps 02:30 after', () => {
    // 2026-03-29: clocks go from 02:00 to 03:00 CET→CEST, so 02:30 does not exist that day.
    const runs = nextRuns('30 2 * * *', 'Europe/Berlin', new Date('2026-03-27T12:00:00Z'), 4).map((d) => d.toISOString());
    expect(runs).toEqual(['2026-03-28T01:30:00.000Z', '2026-03-29T01:00:00.000Z', '2026-03-30T00:30:00.000Z', '2026-03-31T00:30:00.000Z']);
    // Fall back (2026-10-25, 03:00 → 02:00): 02:30 happens twice in local time; croner runs it once.
    const autumn = nextRuns('30 2 * * *', 'Europe/Berlin', new Date('2026-10-24T12:00:00Z'), 2).map((d) => d.toISOString());
    expect(autumn).toEqual(['2026-10-25T00:30:00.000Z', '2026-10-26T01:30:00.000Z']);
  });
});

describe('the scheduler', () => {
  it('enqueues one job per tick, in database time, and lists the next runs', async () => {
    worker = await db.spool.work({ jobs: [tick], schedules: [defineSchedule({ name: 'basic', cron: '* * * * * *', job: tick })], logger: quiet, handleSignals: false });
    await waitFor(async () => (await jobsOf('basic')).length >= 3, '3 ticks', 10_000);
    const jobs = await jobsOf('basic');
    expect(new Set(jobs.map((j) => j.tick)).size).toBe(jobs.length);
    for (const job of jobs) expect(job.run_at.toISOString()).toBe(job.tick);
    const shown = await db.spool.schedules.get('basic');
    expect(shown!.nextRuns).toHaveLength(5);
    expect(shown!.nextRuns[1]!.getTime() - shown!.nextRuns[0]!.getTime()).toBe(1000);
    expect(shown!.source).toBe('code');
  });

  it('pausing stops the ticks; resuming starts again from now, without the ticks it missed', async () => {
    await db.spool.schedules.pause('basic');
    worker = await db.spool.work({ jobs: [tick], logger: quiet, handleSignals: false });
    const before = (await jobsOf('basic')).length;
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    expect((await jobsOf('basic')).length).toBe(before);
    expect((await db.spool.schedules.get('basic'))!.nextRuns).toEqual([]);
    await db.spool.schedules.resume('basic');
    await waitFor(async () => (await jobsOf('basic')).length >= before + 2, 'ticking again', 10_000);
    await db.spool.schedules.pause('basic');
  });

  it('a restart keeps a paused schedule paused (the code does not resume it)', async () => {
    worker = await db.spool.work({ jobs: [tick], schedules: [defineSchedule({ name: 'basic', cron: '* * * * * *', job: tick })], logger: quiet, handleSignals: false });
    expect((await db.spool.schedules.get('basic'))!.paused).toBe(true);
  });

  it('trigger enqueues a job now, outside the ticks', async () => {
    const id = await db.spool.schedules.trigger('basic');
    const job = await db.spool.getJob(id);
    expect(job!.metadata).toMatchObject({ schedule: 'basic', trigger: 'manual' });
    await expect(db.spool.schedules.trigger('nope')).rejects.toThrow(/no schedule named "nope"/);
  });

  for (const [policy, check] of [
    ['all', (missed: number) => expect(missed).toBeGreaterThanOrEqual(90)],
    ['latest', (missed: number) => expect(missed).toBe(0)],
    ['none', (missed: number) => { expect(missed).toBeGreaterThanOrEqual(55); expect(missed).toBeLessThanOrEqual(62); }],
  ] as const) {
    it(`catchUp '${policy}' after 90 s without a leader`, async () => {
      const name = `catch-${policy}`;
      await db.spool.schedules.upsert([defineSchedule({ name, cron: '* * * * * *', job: tick, catchUp: policy })]);
      const now = await missTicks(name, 90);
      worker = await db.spool.work({ jobs: [tick], logger: quiet, handleSignals: false });
      await waitFor(async () => (await db.spool.schedules.get(name))!.nextRunAt! > now, 'caught up', 10_000);
      await db.spool.schedules.pause(name);
      const jobs = await jobsOf(name);
      const missed = jobs.filter((j) => Date.parse(j.tick) < now.getTime() - 1000).length;
      check(missed);
      // 'latest': one job for the ticks missed (the last, within a second of the scheduler's run), then the new ticks.
      if (policy === 'latest') expect(jobs.length).toBeLessThanOrEqual(4);
      expect(new Set(jobs.map((j) => j.tick)).size).toBe(jobs.length);
      if (policy === 'none') expect(jobs.every((j) => Date.parse(j.tick) >= now.getTime() - 61_000)).toBe(true);
    });
  }

  it("catchUp 'latest' after 30 minutes (1,800 missed ticks, past the walk's per-run cap for 'all'): one job, for the latest tick", async () => {
    await db.spool.schedules.upsert([defineSchedule({ name: 'long-outage', cron: '* * * * * *', job: tick, catchUp: 'latest' })]);
    // Written from SQL with microseconds: the compare-and-set must still match it.
    const [row] = await db.sql`UPDATE spool.schedules SET next_run_at = now() - interval '30 minutes 0.123456 seconds' WHERE name = 'long-outage' RETURNING now() AS now`;
    const now = row!.now as Date;
    worker = await db.spool.work({ jobs: [tick], logger: quiet, handleSignals: false });
    await waitFor(async () => (await db.spool.schedules.get('long-outage'))!.nextRunAt! > now, 'caught up', 10_000);
    await db.spool.schedules.pause('long-outage');
    const jobs = await jobsOf('long-outage');
    // One job for the 1,800 missed ticks, for the latest (a second or so before the scheduler's run), then new ticks.
    expect(jobs.length).toBeGreaterThanOrEqual(1);
    expect(jobs.length).toBeLessThanOrEqual(4);
    expect(jobs.every((j) => Date.parse(j.tick) > now.getTime() - 2_000)).toBe(true);
  });

  it("overlap 'skip': no tick's job while the previous one is unfinished", async () => {
    worker = await db.spool.work({
      jobs: [slowTick],
      schedules: [defineSchedule({ name: 'slow', cron: '* * * * * *', job: slowTick, overlap: 'skip' })],
      logger: quiet,
      handleSignals: false,
    });
    await new Promise((resolve) => setTimeout(resolve, 7_000));
    await db.spool.schedules.pause('slow');
    const jobs = await jobsOf('slow');
    expect(jobs.length).toBeGreaterThanOrEqual(2);
    expect(jobs.length).toBeLessThanOrEqual(3);
    // Each job was created only after the one before it finished.
    for (let i = 1; i < jobs.length; i++) {
      expect(jobs[i - 1]!.finished_at).not.toBeNull();
      expect(jobs[i]!.created_at.getTime()).toBeGreaterThanOrEqual(jobs[i - 1]!.finished_at!.getTime());
    }
  });

  it('a schedule inserted from SQL gets its first tick from the leader; a bad one gets last_error', async () => {
    await db.sql`INSERT INTO spool.schedules (name, cron, kind, options) VALUES ('from-sql', '* * * * * *', 'cron.tick', '{"queue":"cron"}')`;
    await db.sql`INSERT INTO spool.schedules (name, cron, kind) VALUES ('bad-sql', 'nonsense', 'cron.tick')`;
    worker = await db.spool.work({ jobs: [tick], logger: quiet, handleSignals: false });
    await waitFor(async () => (await jobsOf('from-sql')).length >= 1, 'a tick from SQL', 10_000);
    await db.spool.schedules.pause('from-sql');
    await waitFor(async () => (await db.sql`SELECT last_error FROM spool.schedules WHERE name = 'bad-sql'`)[0]!.last_error as string | null, 'last_error');
    expect(await db.spool.schedules.remove('bad-sql')).toBe(true);
  });
});
