import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineJob } from '../../src/index.js';
import { runBuiltCli } from '../support/cli.js';
import { useTestDatabase } from '../support/database.js';
import { waitFor } from '../support/factories.js';

const db = useTestDatabase();


/** Runs the built `spool <args>` on this file's database to its end. */
async function spool(args: string[], env: Record<string, string | undefined> = {}) {
  const run = runBuiltCli(args, { DATABASE_URL: db.url, SPOOL_CONFIG: undefined, ...env });
  const code = await run.exited;
  return { code, ...run.output() };
}

/** `--json` output: exactly one JSON document on stdout. */
function parsed<T = any>(out: { stdout: string }): T {
  return JSON.parse(out.stdout) as T;
}

/** Turns a job into a dead one that died `diedAgo` (a PostgreSQL interval) ago, with two failed attempts. */
async function makeDead(id: string, diedAgo = '1 hour'): Promise<void> {
  const errors = [
    { attempt: 1, at: '2025-01-01T00:00:00Z', message: 'boom one' },
    { attempt: 2, at: '2025-01-01T00:01:00Z', message: 'boom two', stack: 'Error: boom two\n    at handler (tasks/report.js:3:9)' },
  ];
  await db.sql`
    UPDATE spool.jobs
       SET state = 'dead', attempt = 2, max_attempts = 2, errors = ${db.sql.json(errors)},
           finished_at = now() - ${diedAgo}::interval
     WHERE id = ${id}`;
}

async function stateOf(id: string): Promise<string | undefined> {
  return (await db.spool.getJob(id))?.state;
}

describe('spool stats', () => {
  it('prints each queue\'s jobs by state and paused flag, as a table or JSON', async () => {
    await db.spool.enqueue('stats.k', {}, { queue: 'stats.q' });
    await db.spool.enqueue('stats.k', {}, { queue: 'stats.q' });
    await db.spool.enqueue('stats.k', {}, { queue: 'stats.q', delayMs: 3_600_000 });
    await db.spool.pauseQueue('stats.paused');

    const human = await spool(['stats']);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^QUEUE\s+SCHEDULED\s+AVAILABLE\s+RUNNING\s+COMPLETED\s+DEAD\s+CANCELLED\s+OLDEST\s+PAUSED$/m);
    expect(human.stdout).toMatch(/^stats\.q\s+1\s+2\s+0\s+0\s+0\s+0\s+\S+\s+no$/m);
    expect(human.stdout).toMatch(/^stats\.paused\s+0\s+0\s+0\s+0\s+0\s+0\s+-\s+yes$/m);

    const json = await spool(['stats', '--json']);
    expect(json.code).toBe(0);
    const { queues } = parsed<{ queues: Array<{ queue: string; counts: Record<string, number>; paused: boolean }> }>(json);
    expect(queues.find((q) => q.queue === 'stats.q')).toMatchObject({
      counts: { scheduled: 1, available: 2, running: 0, completed: 0, dead: 0, cancelled: 0 },
      paused: false,
    });
    expect(queues.find((q) => q.queue === 'stats.paused')?.paused).toBe(true);
  });

  it('fails with exit code 1 and says how to give the database when DATABASE_URL is unset', async () => {
    const out = await spool(['stats'], { DATABASE_URL: '' });
    expect(out.code).toBe(1);
    expect(out.stderr).toMatch(/^spool: config_invalid: DATABASE_URL: is not set/);
    expect(out.stdout).toBe('');
  });
});

describe('spool peek', () => {
  it('lists the newest jobs filtered by queue, state and kind', async () => {
    const one = await db.spool.enqueue('peek.one', { n: 1 }, { queue: 'peek.q' });
    const two = await db.spool.enqueue('peek.two', { n: 2 }, { queue: 'peek.q' });
    const three = await db.spool.enqueue('peek.two', { n: 3 }, { queue: 'peek.q' });
    await db.spool.cancelJob(one.id);

    const human = await spool(['peek', '--queue', 'peek.q']);
    expect(human.code).toBe(0);
    const lines = human.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^ID\s+STATE\s+QUEUE\s+KIND\s+ATTEMPT/);
    expect(lines.slice(1).map((line) => line.trim().split(/\s+/).slice(0, 4))).toEqual([
      [three.id, 'available', 'peek.q', 'peek.two'],
      [two.id, 'available', 'peek.q', 'peek.two'],
      [one.id, 'cancelled', 'peek.q', 'peek.one'],
    ]);

    const cancelled = parsed(await spool(['peek', '--queue', 'peek.q', '--state', 'cancelled', '--json']));
    expect(cancelled.jobs.map((j: { id: string }) => j.id)).toEqual([one.id]);

    const page = parsed(await spool(['peek', '--queue', 'peek.q', '--kind', 'peek.two', '--limit', '1', '--json']));
    expect(page.jobs.map((j: { id: string; payload: unknown }) => [j.id, j.payload])).toEqual([[three.id, { n: 3 }]]);
    const next = parsed(await spool(['peek', '--queue', 'peek.q', '--kind', 'peek.two', '--limit', '1', '--cursor', page.nextCursor, '--json']));
    expect(next.jobs.map((j: { id: string }) => j.id)).toEqual([two.id]);
  });

  it('refuses a bad --state, naming the flag and the states there are', async () => {
    const out = await spool(['peek', '--state', 'done']);
    expect(out.code).toBe(1);
    expect(out.stderr).toContain('--state: expected one of scheduled, available, running, completed, dead, cancelled, got "done"');

    const limit = await spool(['peek', '--limit', 'lots']);
    expect(limit.code).toBe(1);
    expect(limit.stderr).toContain('--limit: expected a whole number from 1 to 1000, got "lots"');
  });
});

describe('spool job', () => {
  it('show prints every field of a job, or the job as JSON', async () => {
    const { id } = await db.spool.enqueue('job.show', { to: 'a@b.c' }, { queue: 'job.q', priority: 4, tags: ['t1'] });
    const human = await spool(['job', 'show', id]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(new RegExp(`^id\\s+${id}$`, 'm'));
    expect(human.stdout).toMatch(/^kind\s+job\.show$/m);
    expect(human.stdout).toMatch(/^state\s+available$/m);
    expect(human.stdout).toMatch(/^priority\s+4$/m);
    expect(human.stdout).toMatch(/^payload\s+\{"to":"a@b\.c"\}$/m);

    const json = await spool(['job', 'show', id, '--json']);
    expect(json.code).toBe(0);
    expect(parsed(json)).toMatchObject({ id, kind: 'job.show', queue: 'job.q', state: 'available', priority: 4, tags: ['t1'], payload: { to: 'a@b.c' } });
  });

  it('show of an unknown id exits 1 saying the job does not exist', async () => {
    const out = await spool(['job', 'show', '999999999']);
    expect(out.code).toBe(1);
    expect(out.stderr).toBe('spool: not_found: job 999999999 does not exist\n');
  });

  it('cancel cancels an available job; cancelling it again exits 1 with the illegal transition', async () => {
    const first = await db.spool.enqueue('job.cancel', {}, { queue: 'job.q' });
    const human = await spool(['job', 'cancel', first.id]);
    expect(human.code).toBe(0);
    expect(human.stdout).toBe(`job ${first.id} cancelled\n`);
    expect(await stateOf(first.id)).toBe('cancelled');

    const second = await db.spool.enqueue('job.cancel', {}, { queue: 'job.q' });
    const json = await spool(['job', 'cancel', second.id, '--json']);
    expect(json.code).toBe(0);
    expect(parsed(json)).toMatchObject({ id: second.id, state: 'cancelled' });

    const again = await spool(['job', 'cancel', first.id]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`spool: illegal_transition: cannot cancel job ${first.id}: it is cancelled`);
  });

  it('retry makes a finished job available again; retrying an unfinished one exits 1', async () => {
    const dead = await db.spool.enqueue('job.retry', {}, { queue: 'job.q' });
    await makeDead(dead.id);
    const human = await spool(['job', 'retry', dead.id]);
    expect(human.code).toBe(0);
    expect(human.stdout).toBe(`job ${dead.id} is available again: attempt 3 of 3 next\n`);
    expect(await stateOf(dead.id)).toBe('available');

    const cancelled = await db.spool.enqueue('job.retry', {}, { queue: 'job.q' });
    await db.spool.cancelJob(cancelled.id);
    const json = await spool(['job', 'retry', cancelled.id, '--json']);
    expect(json.code).toBe(0);
    expect(parsed(json)).toMatchObject({ id: cancelled.id, state: 'available', finishedAt: null });

    const unfinished = await spool(['job', 'retry', dead.id]);
    expect(unfinished.code).toBe(1);
    expect(unfinished.stderr).toContain(`cannot retry job ${dead.id}: it is available`);
  });
});

describe('spool dlq', () => {
  it('list shows dead jobs only, with their last error', async () => {
    const dead = await db.spool.enqueue('dlq.list', {}, { queue: 'dlq.list' });
    await db.spool.enqueue('dlq.list', {}, { queue: 'dlq.list' });
    await makeDead(dead.id);

    const human = await spool(['dlq', 'list', '--queue', 'dlq.list']);
    expect(human.code).toBe(0);
    const lines = human.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^ID\s+QUEUE\s+KIND\s+ATTEMPTS\s+DIED\s+LAST ERROR$/);
    expect(lines.slice(1)).toHaveLength(1);
    expect(lines[1]).toMatch(new RegExp(`^\\s*${dead.id}\\s+dlq\\.list\\s+dlq\\.list\\s+2\\s+\\S+\\s+boom two$`));

    const json = await spool(['dlq', 'list', '--queue', 'dlq.list', '--json']);
    expect(json.code).toBe(0);
    expect(parsed(json).jobs.map((j: { id: string; state: string }) => [j.id, j.state])).toEqual([[dead.id, 'dead']]);
  });

  it('show prints a dead job\'s failed attempts; a job that is not dead exits 1', async () => {
    const dead = await db.spool.enqueue('dlq.show', {}, { queue: 'dlq.show' });
    await makeDead(dead.id);
    const human = await spool(['dlq', 'show', dead.id]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^state\s+dead$/m);
    expect(human.stdout).toContain('attempt 1 at 2025-01-01T00:00:00Z: boom one\n');
    expect(human.stdout).toContain('attempt 2 at 2025-01-01T00:01:00Z: boom two\n');
    expect(human.stdout).toContain('at handler (tasks/report.js:3:9)');

    const json = await spool(['dlq', 'show', dead.id, '--json']);
    expect(parsed(json).errors.map((e: { message: string }) => e.message)).toEqual(['boom one', 'boom two']);

    const alive = await db.spool.enqueue('dlq.show', {}, { queue: 'dlq.show' });
    const out = await spool(['dlq', 'show', alive.id]);
    expect(out.code).toBe(1);
    expect(out.stderr).toContain(`spool: not_found: job ${alive.id} is not in the dead-letter queue: it is available`);
  });

  it('replay runs the given dead jobs again and reports those it could not; --all takes filters', async () => {
    const [a, b, alive] = await db.spool.enqueueMany([
      { job: 'dlq.replay', queue: 'dlq.replay' },
      { job: 'dlq.replay', queue: 'dlq.replay' },
      { job: 'dlq.replay', queue: 'dlq.replay' },
    ]);
    await makeDead(a!.id);
    await makeDead(b!.id);

    const human = await spool(['dlq', 'replay', a!.id, alive!.id]);
    expect(human.code).toBe(0);
    expect(human.stdout).toBe(`replayed 1 dead job: ${a!.id}\nnot replayed: ${alive!.id} (not dead, or an unfinished job holds its unique key)\n`);
    expect(await stateOf(a!.id)).toBe('available');

    const json = await spool(['dlq', 'replay', '--all', '--queue', 'dlq.replay', '--json']);
    expect(json.code).toBe(0);
    expect(parsed(json)).toEqual({ replayed: [b!.id], skipped: [] });
    expect(await stateOf(b!.id)).toBe('available');
  });

  it('replay refuses to run with neither ids nor --all, or with both', async () => {
    const neither = await spool(['dlq', 'replay']);
    expect(neither.code).toBe(1);
    expect(neither.stderr).toContain('give the ids of the dead jobs to replay, or --all for every dead job');

    const both = await spool(['dlq', 'replay', '1', '--all']);
    expect(both.code).toBe(1);
    expect(both.stderr).toContain('--all: give either job ids or --all, not both');
  });

  it('purge needs --yes, and deletes only the dead jobs older than --older-than', async () => {
    const old = await db.spool.enqueue('dlq.purge', {}, { queue: 'dlq.purge' });
    const recent = await db.spool.enqueue('dlq.purge', {}, { queue: 'dlq.purge' });
    const other = await db.spool.enqueue('dlq.purge', {}, { queue: 'dlq.purge.other' });
    await makeDead(old.id, '10 days');
    await makeDead(recent.id, '1 hour');
    await makeDead(other.id, '10 days');

    const unconfirmed = await spool(['dlq', 'purge', '--queue', 'dlq.purge']);
    expect(unconfirmed.code).toBe(1);
    expect(unconfirmed.stderr).toContain('--yes: is required: purge deletes dead jobs for good');
    expect(await stateOf(old.id)).toBe('dead');

    const human = await spool(['dlq', 'purge', '--older-than', '7d', '--queue', 'dlq.purge', '--yes']);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^purged 1 dead job that died before \S+Z$/m);
    expect(await stateOf(old.id)).toBeUndefined();
    expect(await stateOf(recent.id)).toBe('dead');
    expect(await stateOf(other.id)).toBe('dead');

    const json = await spool(['dlq', 'purge', '--older-than', '30m', '--queue', 'dlq.purge', '--yes', '--json']);
    expect(json.code).toBe(0);
    expect(parsed(json)).toMatchObject({ purged: 1 });
    expect(await stateOf(recent.id)).toBeUndefined();
    expect(await stateOf(other.id)).toBe('dead');
  });

  it('purge refuses a duration it cannot read, naming --older-than', async () => {
    const out = await spool(['dlq', 'purge', '--older-than', '7 days', '--yes']);
    expect(out.code).toBe(1);
    expect(out.stderr).toContain('--older-than: expected a duration such as 30s, 30m, 12h or 7d');
  });
});

describe('spool queue', () => {
  it('pause and resume set the queue\'s paused flag', async () => {
    const human = await spool(['queue', 'pause', 'queue.p']);
    expect(human.code).toBe(0);
    expect(human.stdout).toBe('queue queue.p paused: workers finish running jobs and claim no more\n');
    expect((await db.spool.queueStats()).find((q) => q.queue === 'queue.p')?.paused).toBe(true);

    const json = await spool(['queue', 'resume', 'queue.p', '--json']);
    expect(json.code).toBe(0);
    expect(parsed(json)).toEqual({ queue: 'queue.p', paused: false });
    expect((await db.spool.queueStats()).find((q) => q.queue === 'queue.p')?.paused).toBe(false);
  });

  it('pause refuses a queue name the schema would refuse', async () => {
    const out = await spool(['queue', 'pause', 'no spaces']);
    expect(out.code).toBe(1);
    expect(out.stderr).toMatch(/^spool: invalid_input: queue: use only letters, digits/);
  });

  it('drain waits until the queue has nothing available or running', async () => {
    const { id } = await db.spool.enqueue('queue.drain', {}, { queue: 'queue.drain' });
    const run = runBuiltCli(['queue', 'drain', 'queue.drain', '--timeout', '10m'], { DATABASE_URL: db.url });
    await waitFor(() => run.output().stderr.includes('waiting for queue queue.drain: 1 available, 0 running'), 'drain to report the waiting job', 30_000);
    await db.spool.cancelJob(id);
    expect(await run.exited).toBe(0);
    expect(run.output().stdout).toBe('queue queue.drain drained: nothing available or running\n');

    const json = await spool(['queue', 'drain', 'queue.drain', '--json']);
    expect(json.code).toBe(0);
    expect(parsed(json)).toMatchObject({ queue: 'queue.drain', drained: true, counts: { available: 0, running: 0, cancelled: 1 } });
  });

  it('drain exits 1 after --timeout naming what is still there', async () => {
    await db.spool.enqueue('queue.stuck', {}, { queue: 'queue.stuck' });
    const out = await spool(['queue', 'drain', 'queue.stuck', '--timeout', '500ms']);
    expect(out.code).toBe(1);
    expect(out.stderr).toContain('spool: timeout: queue queue.stuck did not drain within 500ms: 1 available, 0 running');
  });
});

describe('spool enqueue', () => {
  it('enqueues one job with a JSON payload and prints its id', async () => {
    await db.spool.registerKinds([defineJob({ kind: 'cli.enqueue', schema: z.record(z.string(), z.unknown()) })]);
    const human = await spool(['enqueue', 'cli.enqueue', '{"to":"a@b.c"}', '--queue', 'enqueue.q', '--priority', '-3', '--run-at', '2030-01-01T09:00:00Z']);
    expect(human.code).toBe(0);
    const id = human.stdout.trim();
    expect(id).toMatch(/^[1-9][0-9]*$/);
    expect(await db.spool.getJob(id)).toMatchObject({
      kind: 'cli.enqueue',
      queue: 'enqueue.q',
      priority: -3,
      state: 'scheduled',
      payload: { to: 'a@b.c' },
      runAt: new Date('2030-01-01T09:00:00Z'),
    });

    const json = await spool(['enqueue', 'cli.enqueue', '--json']);
    expect(json.code).toBe(0);
    const result = parsed(json);
    expect(result).toEqual({ id: expect.stringMatching(/^[1-9][0-9]*$/), duplicate: false, queue: 'default' });
    expect(await db.spool.getJob(result.id)).toMatchObject({ queue: 'default', payload: {} });
  });

  it('refuses a payload that is not JSON, naming the argument', async () => {
    const out = await spool(['enqueue', 'cli.enqueue', '{to: 1}']);
    expect(out.code).toBe(1);
    expect(out.stderr).toMatch(/^spool: invalid_input: payload: is not valid JSON/);
    expect(out.stdout).toBe('');
  });
});

describe('spool config check', () => {
  it('prints each setting with its source, the password masked', async () => {
    const folder = await mkdtemp(join(tmpdir(), 'spool-config-'));
    const file = join(folder, 'spool.json');
    await writeFile(file, JSON.stringify({ concurrency: 7 }));
    const env = { DATABASE_URL: 'postgres://app:s3cret@db.internal:5432/jobs', SPOOL_PORT: '9000', SPOOL_SCHEMA: undefined, SPOOL_CONCURRENCY: undefined };
    try {
      const human = await spool(['config', 'check', '--config', file], env);
      expect(human.code).toBe(0);
      expect(human.stdout).toContain(`config file: ${file}`);
      expect(human.stdout).toMatch(/^databaseUrl\s+DATABASE_URL\s+postgres:\/\/app:\*\*\*@db\.internal:5432\/jobs\s+env$/m);
      expect(human.stdout).toMatch(/^concurrency\s+SPOOL_CONCURRENCY\s+7\s+file$/m);
      expect(human.stdout).toMatch(/^port\s+SPOOL_PORT\s+9000\s+env$/m);
      expect(human.stdout).toMatch(/^schema\s+SPOOL_SCHEMA\s+spool\s+default$/m);
      expect(human.stdout).not.toContain('s3cret');

      const json = await spool(['config', 'check', '--json'], { ...env, SPOOL_CONFIG: file });
      expect(json.code).toBe(0);
      const { file: from, settings } = parsed(json);
      expect(from).toBe(file);
      expect(settings.databaseUrl).toEqual({ env: 'DATABASE_URL', value: 'postgres://app:***@db.internal:5432/jobs', source: 'env' });
      expect(settings.concurrency).toEqual({ env: 'SPOOL_CONCURRENCY', value: 7, source: 'file' });
      expect(settings.port).toMatchObject({ value: 9000, source: 'env' });
      expect(json.stdout).not.toContain('s3cret');
    } finally {
      await rm(folder, { recursive: true });
    }
  });

  it('exits 1 naming the setting that is invalid', async () => {
    const out = await spool(['config', 'check'], { SPOOL_CONCURRENCY: 'many' });
    expect(out.code).toBe(1);
    expect(out.stderr).toBe('spool: config_invalid: SPOOL_CONCURRENCY: expected a positive integer, got "many"\n');
  });
});
