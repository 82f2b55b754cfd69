import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/index.js';
import { loadTasks } from '../../src/worker/tasks.js';
import { runBuiltCli, runCli } from '../support/cli.js';
import { useTestDatabase } from '../support/database.js';
import { waitFor } from '../support/factories.js';
import { parseMetrics, sampleValue } from '../support/metrics.js';

const db = useTestDatabase();

const folder = 'test/fixtures/tasks';

describe('task folders', () => {
  it('loads <kind>.mjs files: a bare function and a { schema, handler } object; skips tests and other files', async () => {
    const jobs = await loadTasks(folder);
    expect(jobs.map((j) => [j.kind, j.maxAttempts])).toEqual([
      ['greet.hello', undefined],
      ['math.double', 2],
    ]);
  });

  it('refuses a folder that is missing, empty, or has a file whose export is not a handler, naming it', async () => {
    await expect(loadTasks(join(folder, 'nope'))).rejects.toThrow(/cannot read the task folder/);
    const empty = await mkdtemp(join(tmpdir(), 'spool-empty-'));
    await expect(loadTasks(empty)).rejects.toThrow(/no task files/);
    await writeFile(join(empty, 'bad.kind.mjs'), `export default 42;\n`);
    const error = await loadTasks(empty).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).field).toBe(join(empty, 'bad.kind.mjs'));
    expect((error as ValidationError).code).toBe('task_invalid');
    await rm(join(empty, 'bad.kind.mjs'));
    await writeFile(join(empty, 'bad.option.mjs'), `export default { maxAttempts: 0, handler: async () => 1 };\n`);
    expect(((await loadTasks(empty).catch((e: unknown) => e)) as ValidationError).field).toBe(`${join(empty, 'bad.option.mjs')}: maxAttempts`);
    await rm(empty, { recursive: true });
  });
});

describe('task files that cannot load', () => {
  it('a syntax error or a throwing top level names the file and the line (spool: task_invalid: …)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'spool-bad-tasks-'));
    await writeFile(join(dir, 'bad.syntax.mjs'), 'export default async () => {\n  const x = ;\n};\n');
    const syntax = runCli(['work', '--tasks', dir], { DATABASE_URL: db.url });
    expect(await syntax.exited).toBe(1);
    expect(syntax.output().stderr).toContain(`spool: task_invalid: ${join(dir, 'bad.syntax.mjs')}:2: cannot load the task file: SyntaxError: Unexpected token ';'`);
    await rm(join(dir, 'bad.syntax.mjs'));
    await writeFile(join(dir, 'bad.throw.mjs'), 'const ready = false;\nif (!ready) throw new Error("SMTP_URL is not set");\nexport default async () => 1;\n');
    const thrown = runCli(['work', '--tasks', dir], { DATABASE_URL: db.url });
    expect(await thrown.exited).toBe(1);
    expect(thrown.output().stderr).toContain(`spool: task_invalid: ${join(dir, 'bad.throw.mjs')}:2: cannot load the task file: Error: SMTP_URL is not set`);
    await rm(dir, { recursive: true });
  });
});

describe('TypeScript task files', () => {
  it('load where Node can import TypeScript (tsx), and otherwise fail naming the file and the fix', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'spool-ts-tasks-'));
    await writeFile(join(dir, 'ts.triple.ts'), 'export default async (payload: { n: number }): Promise<number> => payload.n * 3;\n');
    const jobs = await loadTasks(dir); // this test runs under vitest, which imports TypeScript
    expect(jobs.map((j) => j.kind)).toEqual(['ts.triple']);
    const plain = runBuiltCli(['work', '--tasks', dir], { DATABASE_URL: db.url });
    expect(await plain.exited).toBe(1);
    expect(plain.output().stderr).toContain(`spool: task_invalid: ${join(dir, 'ts.triple.ts')}: this Node.js cannot import TypeScript: run Spool under tsx (NODE_OPTIONS='--import tsx' npx spool …)`);
    const underTsx = runBuiltCli(['work', '--tasks', dir], { DATABASE_URL: db.url, NODE_OPTIONS: '--import tsx' });
    const { id } = await db.spool.enqueue('ts.triple', { n: 14 });
    await waitFor(async () => (await db.spool.getJob(id))?.state === 'completed', 'the TypeScript task to run', 30_000);
    expect((await db.spool.getJob(id))?.result).toBe(42);
    underTsx.child.kill('SIGTERM');
    expect(await underTsx.exited).toBe(0);
    await rm(dir, { recursive: true });
  }, 120_000);
});

describe('spool work', () => {
  it('two processes with default settings on one host both run: the second serves its metrics on a free port; a port set on purpose that is taken is an error', async () => {
    const env = { DATABASE_URL: db.url, SPOOL_METRICS_PORT: undefined, SPOOL_LOG_LEVEL: 'info', SPOOL_LOG_FORMAT: 'json', SPOOL_HOST: '127.0.0.1' };
    const metricsPort = (run: ReturnType<typeof runCli>) =>
      waitFor(
        () => run.output().stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line)).find((l) => l.msg === 'metrics on GET /metrics')?.port as number | undefined,
        'the metrics port in the log',
        30_000,
      );
    const first = runCli(['work', '--tasks', folder], env);
    const firstPort = await metricsPort(first);
    const second = runCli(['work', '--tasks', folder], env);
    const secondPort = await metricsPort(second);
    expect(secondPort).not.toBe(firstPort);
    expect(second.output().stdout).toMatch(/the default metrics port is taken/);
    await waitFor(async () => ((await db.sql`SELECT count(*)::int AS n FROM spool.workers`)[0]!.n as number) === 2, 'both workers to register');
    for (const port of [firstPort, secondPort]) expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);

    const taken = runCli(['work', '--tasks', folder], { ...env, SPOOL_METRICS_PORT: String(firstPort) });
    expect(await taken.exited).toBe(1);
    expect(taken.output().stderr).toContain(`spool: config_invalid: metrics port ${firstPort} on 127.0.0.1 is in use`);
    first.child.kill('SIGTERM');
    second.child.kill('SIGTERM');
    expect([await first.exited, await second.exited]).toEqual([0, 0]);
  });

  it('runs the task folder\'s handlers, then stops on SIGTERM with exit code 0', async () => {
    const run = runCli(['work', '--tasks', folder, '--concurrency', '4'], { DATABASE_URL: db.url, SPOOL_LOG_LEVEL: 'info', SPOOL_LOG_FORMAT: 'json', SPOOL_HOST: '127.0.0.1' });
    const hello = await db.spool.enqueue('greet.hello', { name: 'Ann' });
    const double = await db.spool.enqueue('math.double', { n: 21 });
    await waitFor(async () => (await db.spool.getJob(double.id))?.state === 'completed', 'math.double to complete', 30_000);
    await waitFor(async () => (await db.spool.getJob(hello.id))?.state === 'completed', 'greet.hello to complete');
    expect((await db.spool.getJob(hello.id))?.result).toEqual({ greeted: 'Ann', attempt: 1 });
    expect((await db.spool.getJob(double.id))?.result).toBe(42);
    // Its metrics, on the port it logged (SPOOL_METRICS_PORT=0 picks a free one).
    const listening = await waitFor(
      () => run.output().stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line)).find((l) => l.msg === 'metrics on GET /metrics'),
      'the metrics port in the log',
    );
    const metrics = parseMetrics(await (await fetch(`http://127.0.0.1:${listening.port}/metrics`)).text());
    expect(sampleValue(metrics, 'spool_jobs_completed_total', { queue: 'default', kind: 'math.double' })).toBe(1);
    expect(sampleValue(metrics, 'spool_workers_live')).toBeGreaterThanOrEqual(0);
    expect((await fetch(`http://127.0.0.1:${listening.port}/healthz`)).status).toBe(200);
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
    const [{ n }] = (await db.sql`SELECT count(*)::int AS n FROM spool.workers`) as unknown as [{ n: number }];
    expect(n).toBe(0);
  });

  it('fails fast with the setting named: no --tasks, a bad SPOOL_CONCURRENCY, a bad queue list', async () => {
    const noTasks = runCli(['work'], { DATABASE_URL: db.url, SPOOL_TASKS: '' });
    expect(await noTasks.exited).toBe(1);
    expect(noTasks.output().stderr).toMatch(/tasks: is not set/);

    const badConcurrency = runCli(['work', '--tasks', folder], { DATABASE_URL: db.url, SPOOL_CONCURRENCY: 'abc' });
    expect(await badConcurrency.exited).toBe(1);
    expect(badConcurrency.output().stderr).toContain('SPOOL_CONCURRENCY: expected a positive integer, got "abc"');

    const badQueues = runCli(['work', '--tasks', folder, '--queues', 'a,,b'], { DATABASE_URL: db.url });
    expect(await badQueues.exited).toBe(1);
    expect(badQueues.output().stderr).toMatch(/--queues: expected queue names separated by commas/);
  });
});
