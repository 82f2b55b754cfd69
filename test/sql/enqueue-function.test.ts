import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from '../support/database.js';

const db = useTestDatabase();

const hasPsql = spawnSync('psql', ['--version']).status === 0;

async function sqlError(text: string): Promise<{ message: string; code: string }> {
  const error = (await db.sql.unsafe(text).catch((e: unknown) => e)) as { message: string; code: string };
  expect(error).toBeInstanceOf(Error);
  return error;
}

describe('spool.enqueue() in SQL', () => {
  it('enqueues with positional and named arguments and returns the id', async () => {
    const [row] = await db.sql.unsafe(
      `SELECT spool.enqueue('email.send', '{"to":"a@b.c"}', run_at => now() + interval '1 hour') AS id`,
    );
    const job = await db.spool.getJob(row!.id as string);
    expect(job).toMatchObject({ kind: 'email.send', payload: { to: 'a@b.c' }, state: 'scheduled', queue: 'default', maxAttempts: 25 });

    const [row2] = await db.sql.unsafe(
      `SELECT spool.enqueue('report.build', '{}', 'reports', NULL, 3, 2, 'daily') AS id`,
    );
    expect(await db.spool.getJob(row2!.id as string)).toMatchObject({
      queue: 'reports',
      priority: 3,
      maxAttempts: 2,
      uniqueKey: 'daily',
      state: 'available',
    });
    const [again] = await db.sql.unsafe(`SELECT spool.enqueue('report.build', queue => 'reports', unique_key => 'daily') AS id`);
    expect(again!.id).toBe(row2!.id);
  });

  it.runIf(hasPsql)('works from psql', async () => {
    const result = spawnSync(
      'psql',
      [db.url, '-X', '-q', '-t', '-A', '-v', 'ON_ERROR_STOP=1', '-c', `SELECT spool.enqueue('from.psql', '{"n":1}', priority => 7)`],
      { encoding: 'utf8' },
    );
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    const id = result.stdout.trim();
    expect(await db.spool.getJob(id)).toMatchObject({ kind: 'from.psql', priority: 7, payload: { n: 1 } });
  });

  it('refuses bad input with a message naming the argument', async () => {
    const before = await db.sql`SELECT count(*)::int AS n FROM spool.all_jobs`;
    expect((await sqlError(`SELECT spool.enqueue('')`)).message).toMatch(/^spool\.enqueue: kind must not be empty/);
    expect((await sqlError(`SELECT spool.enqueue(NULL)`)).message).toMatch(/kind must not be empty/);
    expect((await sqlError(`SELECT spool.enqueue('a b')`)).message).toMatch(/kind 'a b' is invalid/);
    const negative = await sqlError(`SELECT spool.enqueue('x', max_attempts => -1)`);
    expect(negative.message).toMatch(/max_attempts must be a whole number of at least 1 \(got -1\)/);
    expect(negative.code).toBe('22023');
    expect((await sqlError(`SELECT spool.enqueue('x', max_attempts => 0)`)).message).toMatch(/max_attempts/);
    expect((await sqlError(`SELECT spool.enqueue('x', priority => 40000)`)).message).toMatch(/priority must be a whole number from -32768 to 32767/);
    expect((await sqlError(`SELECT spool.enqueue('x', queue => '')`)).message).toMatch(/queue '' is invalid/);
    expect((await sqlError(`SELECT spool.enqueue('x', unique_key => '')`)).message).toMatch(/unique_key must be a string of 1-512/);
    const after = await db.sql`SELECT count(*)::int AS n FROM spool.all_jobs`;
    expect(after[0]!.n).toBe(before[0]!.n);
  });

  it('names the bad element of a batch', async () => {
    const error = await sqlError(`SELECT * FROM spool.enqueue_batch('[{"kind":"ok"},{"kind":"ok","max_attempts":0}]')`);
    expect(error.message).toMatch(/job 2 of the batch \(index 1\): max_attempts/);
  });

  it('works from an AFTER INSERT trigger on a user table, and joins its transaction', async () => {
    await db.sql.unsafe(`
      CREATE TABLE public.users (id serial PRIMARY KEY, email text NOT NULL);
      CREATE FUNCTION public.enqueue_welcome() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM spool.enqueue('email.welcome', jsonb_build_object('user_id', NEW.id, 'to', NEW.email), queue => 'mail');
        RETURN NEW;
      END $$;
      CREATE TRIGGER users_welcome AFTER INSERT ON public.users FOR EACH ROW EXECUTE FUNCTION public.enqueue_welcome();
    `).simple();

    await db.sql`INSERT INTO public.users (email) VALUES ('a@x.io'), ('b@x.io'), ('c@x.io')`;
    const jobs = await db.sql`SELECT payload->>'to' AS recipient, queue, state FROM spool.all_jobs WHERE kind = 'email.welcome' ORDER BY id`;
    expect(jobs.map((j) => ({ ...j }))).toEqual([
      { recipient: 'a@x.io', queue: 'mail', state: 'available' },
      { recipient: 'b@x.io', queue: 'mail', state: 'available' },
      { recipient: 'c@x.io', queue: 'mail', state: 'available' },
    ]);

    await db.sql
      .begin(async (tx) => {
        await tx`INSERT INTO public.users (email) VALUES ('rolled@x.io')`;
        throw new Error('roll back');
      })
      .catch(() => {});
    const [{ n }] = (await db.sql`SELECT count(*)::int AS n FROM spool.all_jobs WHERE payload->>'to' = 'rolled@x.io'`) as unknown as [
      { n: number },
    ];
    expect(n).toBe(0);
  });
});

describe('views', () => {
  it('queue_stats counts jobs by state per queue with the oldest available age', async () => {
    await db.sql`SELECT spool.enqueue('v', queue => 'stats') FROM generate_series(1, 3)`;
    await db.sql`SELECT spool.enqueue('v', queue => 'stats', run_at => now() + interval '1 day')`;
    await db.sql`UPDATE spool.jobs SET run_at = now() - interval '90 seconds' WHERE queue = 'stats' AND state = 'available'`;
    const [stats] = await db.sql`SELECT * FROM spool.queue_stats WHERE queue = 'stats'`;
    expect(stats).toMatchObject({ scheduled: '1', available: '3', running: '0', completed: '0', dead: '0', cancelled: '0' });
    expect(stats!.oldest_available_age_seconds).toBeGreaterThanOrEqual(90);
    expect(stats!.oldest_available_age_seconds).toBeLessThan(3600);
  });

  it('dead_jobs lists dead jobs with their last error', async () => {
    const [{ id }] = (await db.sql`SELECT spool.enqueue('doomed') AS id`) as unknown as [{ id: string }];
    await db.sql`
      UPDATE spool.jobs SET state = 'dead', finished_at = now(), attempt = 1,
             errors = '[{"attempt":1,"at":"2026-01-01T00:00:00Z","message":"boom"}]'
       WHERE id = ${id}`;
    const [dead] = await db.sql`SELECT id::text, last_error FROM spool.dead_jobs WHERE id = ${id}`;
    expect(dead).toMatchObject({ id, last_error: { attempt: 1, message: 'boom' } });
  });
});

describe('table constraints', () => {
  it('refuse a raw INSERT that breaks the rules', async () => {
    expect((await sqlError(`INSERT INTO spool.jobs (kind) VALUES ('')`)).message).toMatch(/job_kind_format/);
    expect((await sqlError(`INSERT INTO spool.jobs (kind, queue) VALUES ('x', 'a b')`)).message).toMatch(/queue_name_format/);
    expect((await sqlError(`INSERT INTO spool.jobs (kind, metadata) VALUES ('x', '[]')`)).message).toMatch(/json_object_type/);
    expect((await sqlError(`INSERT INTO spool.jobs (kind, errors) VALUES ('x', '{}')`)).message).toMatch(/json_array_type/);
    expect((await sqlError(`INSERT INTO spool.jobs (kind, max_attempts) VALUES ('x', 0)`)).message).toMatch(/jobs_max_attempts_range/);
    expect((await sqlError(`INSERT INTO spool.jobs (kind, state) VALUES ('x', 'running')`)).message).toMatch(/jobs_running_has_lease/);
    expect((await sqlError(`INSERT INTO spool.jobs (kind, state) VALUES ('x', 'completed')`)).message).toMatch(/jobs_finished_has_time/);
  });

  it('check formats on an UPDATE that sets the column, too', async () => {
    const [{ id }] = (await db.sql`INSERT INTO spool.jobs (kind) VALUES ('x') RETURNING id::text`) as unknown as [{ id: string }];
    expect((await sqlError(`UPDATE spool.jobs SET kind = 'bad kind' WHERE id = ${id}`)).message).toMatch(/job_kind_format/);
    expect((await sqlError(`UPDATE spool.jobs SET errors = '"x"' WHERE id = ${id}`)).message).toMatch(/json_array_type/);
  });

  it('refuse a payload over 8 MiB, whatever writes it', async () => {
    const big = (mib: number) => `jsonb_build_object('blob', repeat('x', ${mib} * 1024 * 1024))`;
    expect((await sqlError(`INSERT INTO spool.jobs (kind, payload) VALUES ('x', ${big(9)})`)).message).toMatch(/jobs_payload_size/);
    const [{ id }] = (await db.sql.unsafe(`INSERT INTO spool.jobs (kind, payload) VALUES ('x', ${big(2)}) RETURNING id::text AS id`)) as unknown as [{ id: string }];
    expect((await sqlError(`UPDATE spool.jobs SET payload = ${big(9)} WHERE id = ${id}`)).message).toMatch(/jobs_payload_size/);
  });
});

describe('payload bounds at the SQL functions', () => {
  it('spool.enqueue() refuses a payload over 1 MiB as JSON or nested 64 deep, naming it', async () => {
    expect((await sqlError(`SELECT spool.enqueue('x', jsonb_build_object('blob', repeat('x', 1100000)))`)).message).toMatch(/payload is \d+ bytes as JSON, over the 1048576/);
    expect((await sqlError(`SELECT spool.enqueue('x', '${'['.repeat(65)}${']'.repeat(65)}')`)).message).toMatch(/payload nests deeper than 64 levels/);
    expect((await sqlError(`SELECT * FROM spool.enqueue_batch('[{"kind":"x","metadata":{"a":${'['.repeat(64)}${']'.repeat(64)}}}]')`)).message).toMatch(/metadata nests deeper/);
  });
});
