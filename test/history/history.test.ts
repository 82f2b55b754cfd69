import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import postgres from 'postgres';
import { createApp } from '../../src/api/app.js';
import { createLogger, createSpool, defineJob, PermanentError } from '../../src/index.js';
import { readMigrationFiles } from '../../src/migrate/files.js';
import { runMigrations } from '../../src/migrate/migrate.js';
import { api } from '../support/api.js';
import { runCli } from '../support/cli.js';
import { createDatabase, dropDatabase } from '../support/database-admin.js';
import { uniqueDatabaseName, useTestDatabase } from '../support/database.js';
import { waitFor } from '../support/factories.js';
import { inject } from 'vitest';

const db = useTestDatabase();
const quiet = createLogger({ level: 'silent' });

const where = async (id: string) => {
  const [row] = (await db.sql`
    SELECT (SELECT count(*)::int FROM spool.jobs WHERE id = ${id}) AS hot,
           (SELECT count(*)::int FROM spool.job_history WHERE id = ${id}) AS history,
           (SELECT state::text FROM spool.job_history WHERE id = ${id}) AS state`) as unknown as [{ hot: number; history: number; state: string | null }];
  return row;
};

describe('hot table and history', () => {
  it('a job that completes, dies or is cancelled leaves the hot table for history, readable by getJob, the API and the CLI', async () => {
    const ok = defineJob({ kind: 'hist.ok', schema: z.object({}), handler: async () => ({ done: true }) });
    const bad = defineJob({ kind: 'hist.bad', schema: z.object({}), handler: async () => { throw new PermanentError('no'); } });
    const slow = defineJob({ kind: 'hist.slow', schema: z.object({}), handler: (_p, ctx) => new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason))) });
    const worker = await db.spool.work({ jobs: [ok, bad, slow], logger: quiet, handleSignals: false, pollIntervalMs: 50 });
    try {
      const done = await db.spool.enqueue(ok, {});
      const dead = await db.spool.enqueue(bad, {});
      const waiting = await db.spool.enqueue('hist.never', {}, { delayMs: 60_000 });
      const running = await db.spool.enqueue(slow, {});
      await waitFor(async () => (await db.spool.getJob(running.id))?.state === 'running', 'the slow job to run');
      await db.spool.cancelJob(waiting.id);
      await db.spool.cancelJob(running.id);
      for (const [id, state] of [[done.id, 'completed'], [dead.id, 'dead'], [waiting.id, 'cancelled'], [running.id, 'cancelled']] as const) {
        await waitFor(async () => (await where(id)).history === 1, `job ${id} in history`);
        expect(await where(id)).toEqual({ hot: 0, history: 1, state });
        expect((await db.spool.getJob(id))?.state).toBe(state);
      }
      expect((await db.spool.getJob(done.id))?.result).toEqual({ done: true });
      const call = api(createApp({ auth: 'off', spool: db.spool, logger: quiet }));
      expect((await call('GET', `/jobs/${dead.id}`)).body.job).toMatchObject({ state: 'dead', errors: [{ message: 'PermanentError: no' }] });
      expect((await call('GET', '/jobs?state=completed,dead')).body.jobs.map((j: { id: string }) => j.id)).toEqual(expect.arrayContaining([done.id, dead.id]));
      const shown = runCli(['job', 'show', done.id, '--json'], { DATABASE_URL: db.url });
      expect(await shown.exited).toBe(0);
      expect(JSON.parse(shown.output().stdout)).toMatchObject({ id: done.id, state: 'completed' });
      const stats = await db.spool.queueStats();
      expect(stats.find((s) => s.queue === 'default')?.counts).toMatchObject({ completed: expect.any(Number), dead: expect.any(Number) });
      expect((await db.sql`SELECT count(*)::int AS n FROM spool.dead_jobs WHERE id = ${dead.id}`)[0]!.n).toBe(1);

      // Retry of a completed job and replay of a dead one: back in the hot table, same id, run again.
      await db.spool.retryJob(done.id);
      expect((await where(done.id)).hot).toBe(1);
      await waitFor(async () => (await db.spool.getJob(done.id))?.state === 'completed' && (await where(done.id)).history === 1, 'the retried job to complete again');
      expect((await db.spool.getJob(done.id))?.attempt).toBe(2);
      const replayed = await db.spool.replayDead({ ids: [dead.id] });
      expect(replayed.ids).toEqual([dead.id]);
      await waitFor(async () => (await db.spool.getJob(dead.id))?.attempt === 2 && (await where(dead.id)).history === 1, 'the replayed job to die again');
    } finally {
      await worker.stop({ graceMs: 1_000 });
    }
  });

  it('removeOnComplete leaves no history row', async () => {
    const gone = defineJob({ kind: 'hist.gone', schema: z.object({}), removeOnComplete: true, handler: async () => 1 });
    const worker = await db.spool.work({ jobs: [gone], logger: quiet, handleSignals: false, pollIntervalMs: 50 });
    try {
      const { id } = await db.spool.enqueue(gone, {});
      await waitFor(async () => (await db.spool.getJob(id)) === null, 'the job to be gone');
      expect(await where(id)).toEqual({ hot: 0, history: 0, state: null });
    } finally {
      await worker.stop();
    }
  });

  it('a stale worker cannot write over a job that moved to history: its finish matches nothing, no duplicate, no resurrection', async () => {
    const [{ id }] = (await db.sql`
      INSERT INTO spool.jobs (kind, state, attempt, worker_id, lease_expires_at, started_at)
      VALUES ('hist.stale', 'running', 1, 'stale-worker', now() + interval '1 minute', now()) RETURNING id::text`) as unknown as [{ id: string }];
    const { finishSql } = await import('../../src/queries/finish.js');
    const finish = (outcome: object, workerId: string) => db.sql.unsafe(finishSql('"spool"'), [JSON.stringify([{ id, attempt: 1, ...outcome }]), workerId, 'spool_jobs']);
    // Another worker took it over (the reaper gave it away) and completed it.
    await db.sql`UPDATE spool.jobs SET worker_id = 'new-worker' WHERE id = ${id}`;
    await finish({ outcome: 'completed', result: { by: 'new' } }, 'new-worker');
    expect(await where(id)).toEqual({ hot: 0, history: 1, state: 'completed' });
    // The stale worker's late outcomes: refused (returned with a null state), nothing changes.
    for (const outcome of [{ outcome: 'completed', result: { by: 'stale' } }, { outcome: 'failed', error: { message: 'late' }, delay_ms: 0 }, { outcome: 'released' }]) {
      const rows = await finish(outcome, 'stale-worker');
      expect(rows.filter((r) => r.id !== null)).toEqual([{ id, attempt: 1, state: null }]);
    }
    expect(await where(id)).toEqual({ hot: 0, history: 1, state: 'completed' });
    expect((await db.spool.getJob(id))?.result).toEqual({ by: 'new' });
  });
});

describe('retention', () => {
  const insertHistory = (queue: string, state: string, finishedAt: string, n: number) =>
    db.sql.unsafe(
      `INSERT INTO spool.job_history (id, queue, kind, payload, state, priority, run_at, attempt, max_attempts, tags, errors, metadata, created_at, finished_at)
       SELECT nextval('spool.jobs_id_seq'), $1, 'ret.k', '{}', $2::spool.job_state, 0, $3::timestamptz, 1, 1, '{}', '[]', '{}', $3::timestamptz, $3::timestamptz
         FROM generate_series(1, $4)`,
      [queue, state, finishedAt, n],
    );

  it('drops a day partition whose rows all expired and leaves the others; a dry run changes nothing', async () => {
    await db.sql`CREATE TABLE spool.job_history_completed_p20261101 PARTITION OF spool.job_history_completed FOR VALUES FROM ('2026-11-01 00:00Z') TO ('2026-11-02 00:00Z')`;
    await insertHistory('default', 'completed', '2026-11-01T12:00:00Z', 50);
    // An hour old, but never before today's UTC midnight (in the first hour of a day it would land in yesterday's partition).
    const todayUtc = new Date(new Date().toISOString().slice(0, 10)).getTime();
    await insertHistory('default', 'dead', new Date(Math.max(Date.now() - 3_600_000, todayUtc + 1_000)).toISOString(), 5);
    await db.sql`ANALYZE spool.job_history`;
    const dry = await db.spool.prune({ dryRun: true });
    expect(dry.dropped.map((d) => d.partition)).toContain('job_history_completed_p20261101');
    expect(await db.sql`SELECT to_regclass('spool.job_history_completed_p20261101') IS NOT NULL AS present`).toEqual([{ present: true }]);
    const report = await db.spool.prune();
    expect(report.dropped).toContainEqual({ partition: 'job_history_completed_p20261101', state: 'completed', rows: 50 });
    expect(await db.sql`SELECT to_regclass('spool.job_history_completed_p20261101') IS NOT NULL AS present`).toEqual([{ present: false }]);
    // Today's partitions (and the hour-old dead jobs in them) stay; partitions ahead exist.
    expect((await db.sql`SELECT count(*)::int AS n FROM spool.job_history WHERE kind = 'ret.k' AND state = 'dead'`)[0]!.n).toBe(5);
    const today = new Date().toISOString().slice(0, 10).replaceAll('-', '');
    expect(await db.sql`SELECT to_regclass(${`spool.job_history_completed_p${today}`}) IS NOT NULL AS present`).toEqual([{ present: true }]);
  });

  it('rows in a default partition (a day without its partition, e.g. from before the upgrade) go by batched deletes once expired', async () => {
    const old = new Date(Date.now() - 40 * 86_400_000).toISOString();
    const recent = new Date(Date.now() - 10 * 86_400_000).toISOString();
    await insertHistory('default', 'dead', old, 7);
    await insertHistory('default', 'dead', recent, 3);
    const inDefault = async () => (await db.sql`SELECT count(*)::int AS n FROM spool.job_history_dead_default WHERE kind = 'ret.k'`)[0]!.n;
    expect(await inDefault()).toBe(10);
    expect((await db.spool.prune({ dryRun: true })).deleted).toBe(7);
    expect((await db.spool.prune()).deleted).toBe(7);
    expect(await inDefault()).toBe(3);
    // A bare POST (Content-Length: 0, no type) prunes.
    const call = api(createApp({ auth: 'off', spool: db.spool, logger: quiet }));
    const bare = await call('POST', '/maintenance/prune', undefined, { 'content-length': '0' });
    expect(bare.status).toBe(200);
    expect(bare.body.dryRun).toBe(false);
  });

  it('a queue whose retention is shorter than a partition: its expired rows go in batched deletes, others stay', async () => {
    await db.sql`INSERT INTO spool.retention (queue, completed) VALUES ('short', interval '1 hour')`;
    const twoHoursAgo = new Date(Date.now() - 2 * 3_600_000).toISOString();
    await insertHistory('short', 'completed', twoHoursAgo, 12_000);
    await insertHistory('long', 'completed', twoHoursAgo, 30);
    const count = async (queue: string) => (await db.sql`SELECT count(*)::int AS n FROM spool.job_history WHERE queue = ${queue} AND kind = 'ret.k'`)[0]!.n;
    expect((await db.spool.prune({ dryRun: true })).deleted).toBe(12_000);
    expect(await count('short')).toBe(12_000);
    const report = await db.spool.prune();
    expect(report.deleted).toBe(12_000);
    expect([await count('short'), await count('long')]).toEqual([0, 30]);
    // Over HTTP and from the CLI.
    const call = api(createApp({ auth: 'off', spool: db.spool, logger: quiet }));
    const viaApi = await call('POST', '/maintenance/prune', { dryRun: true });
    expect(viaApi.status).toBe(200);
    expect(viaApi.body).toMatchObject({ dryRun: true, deleted: 0 });
    const viaCli = runCli(['prune', '--dry-run', '--json'], { DATABASE_URL: db.url });
    expect(await viaCli.exited).toBe(0);
    expect(JSON.parse(viaCli.output().stdout)).toMatchObject({ dryRun: true, retentionSeconds: { completed: 86_400, cancelled: 7 * 86_400, dead: 30 * 86_400 } });
  });
});

describe('upgrading an existing install', () => {
  it('finished rows from before 0005 stay readable, and the leader moves them into history in batches while workers run', async () => {
    const server = inject('postgresAdminUrl');
    const name = uniqueDatabaseName();
    const url = await createDatabase(server, name);
    const sql = postgres(url, { max: 4, onnotice: () => {} });
    try {
      await runMigrations(sql, 'spool', readMigrationFiles().filter((f) => f.version <= 4));
      await sql`
        INSERT INTO spool.jobs (kind, state, attempt, finished_at, result)
        SELECT 'old.k', (ARRAY['completed', 'completed', 'dead', 'cancelled']::spool.job_state[])[1 + g % 4], 1, now() - interval '1 hour', '{"old":true}'
          FROM generate_series(1, 300000) AS g`;
      await runMigrations(sql, 'spool');
      const spool = createSpool({ connectionString: url, poolSize: 4 });
      try {
        expect((await sql`SELECT count(*)::int AS n FROM spool.all_jobs WHERE kind = 'old.k'`)[0]!.n).toBe(300_000);
        const some = (await sql`SELECT id::text FROM spool.jobs WHERE kind = 'old.k' ORDER BY id LIMIT 1`)[0]!.id as string;
        expect((await spool.getJob(some))?.state).toBe('completed');
        // A worker runs new jobs meanwhile; its leader's pruner moves the old rows.
        const work = defineJob({ kind: 'new.k', schema: z.object({}), handler: async () => 'ok' });
        const worker = await spool.work({ jobs: [work], logger: quiet, handleSignals: false, pollIntervalMs: 50, pruneIntervalMs: 50 });
        try {
          const fresh = await spool.enqueueMany(Array.from({ length: 500 }, () => ({ job: work, payload: {} })));
          await waitFor(
            async () => (await sql`SELECT count(*)::int AS n FROM spool.jobs WHERE state IN ('completed', 'dead', 'cancelled')`)[0]!.n === 0,
            'every old finished row moved',
            120_000,
          );
          await waitFor(async () => (await spool.getJob(fresh.at(-1)!.id))?.state === 'completed', 'the new jobs to run');
        } finally {
          await worker.stop();
        }
        const moved = await sql`SELECT state::text, count(*)::int AS n FROM spool.job_history WHERE kind = 'old.k' GROUP BY state ORDER BY state`;
        expect(moved).toEqual([
          { state: 'cancelled', n: 75_000 },
          { state: 'completed', n: 150_000 },
          { state: 'dead', n: 75_000 },
        ]);
        expect((await sql`SELECT count(*)::int AS n FROM spool.all_jobs WHERE kind = 'old.k'`)[0]!.n).toBe(300_000);
        expect((await spool.getJob(some))?.result).toEqual({ old: true });
      } finally {
        await spool.close();
      }
    } finally {
      await sql.end();
      await dropDatabase(server, name);
    }
  }, 240_000);
});

describe('spool doctor', () => {
  it('reports sizes and partitions, a transaction that pins the xmin horizon, and autovacuum off, in plain words', async () => {
    const holder = postgres(db.url, { max: 1, onnotice: () => {} });
    try {
      const reserved = await holder.reserve();
      await reserved`BEGIN ISOLATION LEVEL REPEATABLE READ`;
      await reserved`SELECT count(*) FROM spool.jobs`;
      const [{ pid }] = (await reserved`SELECT pg_backend_pid() AS pid`) as unknown as [{ pid: number }];
      await db.sql`ALTER TABLE spool.jobs SET (autovacuum_enabled = false)`;
      await new Promise((resolve) => setTimeout(resolve, 1_200));
      const report = await db.spool.doctor({ xminWarnSeconds: 1 });
      expect(report.oldestSnapshot).toMatchObject({ pid, state: 'idle in transaction' });
      expect(report.warnings.find((w) => w.includes(`session ${pid}`))).toMatch(/holds? back|cleaned/);
      expect(report.warnings.some((w) => /autovacuum is (off|disabled)/.test(w))).toBe(true);
      expect(report.history.partitions).toBeGreaterThanOrEqual(12);
      expect(report.history.missingPartitions).toEqual([]);
      expect(report.hot.bytes).toBeGreaterThan(0);
      const cli = runCli(['doctor', '--json', '--snapshot-warn', '1s'], { DATABASE_URL: db.url });
      expect(await cli.exited).toBe(1);
      const json = JSON.parse(cli.output().stdout);
      expect(json.warnings.some((w: string) => w.includes(`session ${pid}`))).toBe(true);
      const text = runCli(['doctor', '--snapshot-warn', '1s'], { DATABASE_URL: db.url });
      expect(await text.exited).toBe(1);
      expect(text.output().stdout).toMatch(/^hot table\s+[\d.]+ MiB/);
      expect(text.output().stdout).toMatch(/warning: session \d+/);
      await reserved`ROLLBACK`;
      reserved.release();
      await db.sql`ALTER TABLE spool.jobs RESET (autovacuum_enabled)`;
      const calm = await db.spool.doctor({ xminWarnSeconds: 3600 });
      expect(calm.warnings.some((w) => w.includes(`session ${pid}`))).toBe(false);
    } finally {
      await holder.end();
    }
  });
});
