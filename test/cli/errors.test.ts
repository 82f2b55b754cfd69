import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startEmbeddedPostgres, type EmbeddedPostgres } from '../../src/db/embedded.js';
import { runBuiltCli } from '../support/cli.js';

// A server of this file's own with password authentication (the machine's may trust any password).
let server: EmbeddedPostgres;
let folder: string;
beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'spool-errors-'));
  server = await startEmbeddedPostgres({ dataDir: join(folder, 'data') });
}, 120_000);
afterAll(async () => {
  await server?.stop();
  await rm(folder, { recursive: true, force: true });
});

async function spool(args: string[], env: Record<string, string | undefined> = {}) {
  const run = runBuiltCli(args, env);
  const code = await run.exited;
  return { code, ...run.output() };
}

describe('connection failures name the host, the port and a code, with the password masked', () => {
  it.each([
    ['refused', async () => `postgres://postgres:hunter2@127.0.0.1:${await freePort()}/postgres`, /connection refused/],
    ['unknown host', async () => 'postgres://postgres:hunter2@no-such-host.invalid:5432/postgres', /unknown host "no-such-host.invalid"/],
    ['bad password', async () => `postgres://postgres:hunter2@127.0.0.1:${server.port}/postgres`, /password authentication failed/],
    ['missing database', async () => `postgres://postgres:postgres@127.0.0.1:${server.port}/no_such_db`, /database "no_such_db" does not exist/],
  ])('%s', async (_, url, cause) => {
    const target = await url();
    const { hostname: host, port } = new URL(target);
    const out = await spool(['stats'], { DATABASE_URL: target });
    expect(out.code).toBe(1);
    expect(out.stderr).toMatch(new RegExp(`^spool: database_unavailable: cannot use PostgreSQL at ${host.replaceAll('.', '\\.')}:${port} \\(DATABASE_URL=postgres://postgres:\\*\\*\\*@`));
    expect(out.stderr).toMatch(cause);
    expect(out.stderr).not.toContain('hunter2');
    expect(out.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('an unmigrated schema says to run spool migrate', async () => {
    const out = await spool(['stats'], { DATABASE_URL: server.url });
    expect(out.code).toBe(1);
    expect(out.stderr).toMatch(/^spool: schema_not_migrated: schema "spool" in PostgreSQL at 127\.0\.0\.1:\d+ .*: run spool migrate\n$/);
  });
});

describe('every CLI failure is one line, spool: <code>: <message>', () => {
  it('usage errors (unknown option, unknown command, missing argument) too', async () => {
    for (const [args, message] of [
      [['--bogus'], "spool: usage: unknown option '--bogus'"],
      [['nosuch'], "spool: usage: unknown command 'nosuch'"],
      [['job', 'show'], "spool: usage: missing required argument 'id'"],
    ] as const) {
      const out = await spool([...args]);
      expect(out.code).toBe(1);
      expect(out.stderr.trim().split('\n').at(-1)).toBe(message);
    }
  });

  it('--version prints the package version; --help exits 0 and lists the commands', async () => {
    const { version } = JSON.parse(await readFile('package.json', 'utf8'));
    const out = await spool(['--version']);
    expect([out.code, out.stdout.trim()]).toEqual([0, version]);
    const help = await spool(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/serve[\s\S]*work[\s\S]*kinds/);
  });
});
