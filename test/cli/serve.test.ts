import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createSpool } from '../../src/index.js';
import { freePort } from '../../src/db/embedded.js';
import { runCli, type CliRun } from '../support/cli.js';
import { waitFor } from '../support/factories.js';

const folders: string[] = [];
afterAll(async () => {
  for (const folder of folders) await rm(folder, { recursive: true, force: true });
});

function postgresProcessesUsing(dataDir: string): number {
  try {
    return execFileSync('pgrep', ['-f', `postgres -D ${dataDir}`], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).length;
  } catch {
    return 0; // pgrep exits 1 when nothing matches
  }
}

/** A started `spool serve`, with the admin key its first start made (printed once, and kept next to the data folder). */
async function serve(env: Record<string, string | undefined>, tasks = 'examples/tasks'): Promise<{ run: CliRun; url: string; api: string; key: string }> {
  const run = runCli(['serve', '--tasks', tasks], { DATABASE_URL: undefined, SPOOL_PORT: '0', ...env }, { group: true });
  await waitFor(() => /spool serving/.test(run.output().stdout) || run.child.exitCode !== null, 'spool serve to start', 120_000);
  const match = /embedded PostgreSQL: (\S+)/.exec(run.output().stdout);
  const api = /spool API on (\S+)/.exec(run.output().stdout);
  if (!match || !api) throw new Error(`no embedded or API URL printed:\n${run.output().stdout}\n${run.output().stderr}`);
  const key = (await readFile(join(dirname(env.SPOOL_DATA_DIR!), 'admin-key'), 'utf8')).trim();
  return { run, url: match[1]!, api: api[1]!, key };
}

async function http(url: string, key: string, init: RequestInit = {}): Promise<{ status: number; body: any }> {
  const res = await fetch(url, { ...init, headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${key}` } });
  return { status: res.status, body: await res.json() };
}

describe('spool serve with no DATABASE_URL', () => {
  it('starts an embedded PostgreSQL, gets ready, runs a job posted over HTTP, exits 0 on SIGTERM leaving no PostgreSQL behind, and reuses its data', async () => {
    const folder = await mkdtemp(join(tmpdir(), 'spool-serve-'));
    folders.push(folder);
    const dataDir = join(folder, 'pgdata');
    const env = { SPOOL_DATA_DIR: dataDir, SPOOL_PG_PORT: String(await freePort()), SPOOL_OUTBOX_DIR: join(folder, 'outbox') };

    const first = await serve(env);
    await waitFor(async () => (await http(`${first.api}/readyz`, first.key)).status === 200, '/readyz to answer 200');
    // The first start printed its admin key once; without a key the API answers 401.
    expect(first.run.output().stdout).toContain(`admin API key (shown once`);
    expect(first.run.output().stdout).toContain(first.key);
    expect((await fetch(`${first.api}/queues`)).status).toBe(401);
    const posted = await http(`${first.api}/jobs`, first.key, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ kind: 'email.send', payload: { to: 'ann@example.com', subject: 'Hello' } }),
    });
    expect(posted.status).toBe(201);
    const id: string = posted.body.job.id;
    await waitFor(async () => (await http(`${first.api}/jobs/${id}`, first.key)).body.job.state === 'completed', 'the job to complete');
    first.run.child.kill('SIGTERM');
    expect(await first.run.exited).toBe(0);
    expect(postgresProcessesUsing(dataDir)).toBe(0);

    const second = await serve(env);
    // The key from the first start still works, and no second key is made.
    expect(second.run.output().stdout).not.toContain('admin API key');
    expect((await http(`${second.api}/jobs/${id}`, second.key)).body.job.state).toBe('completed');
    const again = createSpool({ connectionString: second.url, poolSize: 2 });
    expect((await again.getJob(id))?.state).toBe('completed');
    await again.close();
    second.run.child.kill('SIGTERM');
    expect(await second.run.exited).toBe(0);
    expect(postgresProcessesUsing(dataDir)).toBe(0);
  }, 240_000);

  it('Ctrl-C (SIGINT to the whole process group, and once more at once as npm forwards it) with a job in flight: the job finishes and is recorded once, exit 0, no PostgreSQL left', async () => {
    const folder = await mkdtemp(join(tmpdir(), 'spool-ctrl-c-'));
    folders.push(folder);
    const tasks = join(folder, 'tasks');
    await mkdir(tasks);
    // Records each execution in the database, then takes long enough to be in flight when the signal comes.
    await writeFile(
      join(tasks, 'slow.job.mjs'),
      `export default async (payload, ctx) => {
  await ctx.spool.sql\`CREATE TABLE IF NOT EXISTS public.runs (job_id bigint, attempt int)\`;
  await ctx.spool.sql\`INSERT INTO public.runs VALUES (\${ctx.job.id}, \${ctx.job.attempt})\`;
  await new Promise((resolve) => setTimeout(resolve, 1500));
  return { slept: true };
};
`,
    );
    const dataDir = join(folder, 'pgdata');
    const env = { SPOOL_DATA_DIR: dataDir, SPOOL_PG_PORT: String(await freePort()), SPOOL_LOG_LEVEL: 'info', SPOOL_LOG_FORMAT: 'json' };
    const first = await serve(env, tasks);
    const posted = await http(`${first.api}/jobs`, first.key, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'slow.job' }) });
    expect(posted.status).toBe(201);
    const id: string = posted.body.job.id;
    await waitFor(async () => (await http(`${first.api}/jobs/${id}`, first.key)).body.job.state === 'running', 'the job to start');
    // Twice at once, as under `npm start`: the terminal signals the group and npm forwards it again.
    process.kill(-first.run.child.pid!, 'SIGINT');
    await new Promise((resolve) => setTimeout(resolve, 50));
    process.kill(first.run.child.pid!, 'SIGINT');
    expect(await first.run.exited).toBe(0);
    expect(postgresProcessesUsing(dataDir)).toBe(0);
    expect(first.run.output().stdout).not.toMatch(/"level":(50|60)/);

    const second = await serve(env, tasks);
    const again = createSpool({ connectionString: second.url, poolSize: 2 });
    try {
      expect(await again.getJob(id)).toMatchObject({ state: 'completed', attempt: 1, result: { slept: true } });
      expect(await again.sql`SELECT job_id::text, attempt FROM public.runs`).toEqual([{ job_id: id, attempt: 1 }]);
    } finally {
      await again.close();
      process.kill(-second.run.child.pid!, 'SIGINT');
    }
    expect(await second.run.exited).toBe(0);
    expect(postgresProcessesUsing(dataDir)).toBe(0);
  }, 240_000);

  it('a PostgreSQL left running by a spool serve that was killed outright is stopped at the next start', async () => {
    const folder = await mkdtemp(join(tmpdir(), 'spool-orphan-'));
    folders.push(folder);
    const dataDir = join(folder, 'pgdata');
    const env = { SPOOL_DATA_DIR: dataDir, SPOOL_PG_PORT: String(await freePort()), SPOOL_OUTBOX_DIR: join(folder, 'outbox') };
    const first = await serve(env);
    first.run.child.kill('SIGKILL');
    await first.run.exited;
    expect(postgresProcessesUsing(dataDir)).toBeGreaterThan(0);
    const second = await serve(env);
    await waitFor(async () => (await http(`${second.api}/readyz`, second.key)).status === 200, '/readyz to answer 200');
    process.kill(-second.run.child.pid!, 'SIGINT');
    expect(await second.run.exited).toBe(0);
    expect(postgresProcessesUsing(dataDir)).toBe(0);
  }, 240_000);

  it('fails fast naming a bad SPOOL_PG_PORT, before starting anything', async () => {
    const run = runCli(['serve', '--tasks', 'examples/tasks'], { DATABASE_URL: undefined, SPOOL_PG_PORT: 'abc' });
    expect(await run.exited).toBe(1);
    expect(run.output().stderr).toMatch(/SPOOL_PG_PORT: expected a TCP port/);
  });
});
