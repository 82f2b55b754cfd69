import { mkdtemp, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { useTestDatabase } from '../support/database.js';
import { waitFor } from '../support/factories.js';

const db = useTestDatabase();

describe('spool api', () => {
  it('serves the API alone (no listener check in /readyz), and exits 0 on SIGTERM', async () => {
    const folder = await mkdtemp(join(tmpdir(), 'spool-api-'));
    const run = runCli(['api', '--port', '0', '--host', '127.0.0.1'], { DATABASE_URL: db.url, SPOOL_UNKNOWN_KINDS: 'allow', SPOOL_DATA_DIR: join(folder, 'pgdata') });
    try {
      const url = await waitFor(() => /spool API on (\S+)/.exec(run.output().stdout)?.[1] ?? (run.child.exitCode !== null && 'exited'), 'spool api to listen', 30_000);
      expect(url).not.toBe('exited');
      const ready = await fetch(`${url}/readyz`);
      expect(ready.status).toBe(200);
      expect(Object.keys(((await ready.json()) as { checks: object }).checks).sort()).toEqual(['database', 'migrations']);
      // On loopback with no admin key yet, the first start makes one, prints it once and writes it next to the data folder.
      const printed = /admin API key \(shown once, also in (\S+)\): (\S+)/.exec(run.output().stdout);
      expect(printed?.[1]).toBe(join(folder, 'admin-key'));
      const key = printed![2]!;
      expect((await readFile(join(folder, 'admin-key'), 'utf8')).trim()).toBe(key);
      expect((await stat(join(folder, 'admin-key'))).mode & 0o777).toBe(0o600);
      const body = '{"kind":"api.role"}';
      expect((await fetch(`${url}/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })).status).toBe(401);
      const posted = await fetch(`${url}/jobs`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body });
      expect(posted.status).toBe(201);
      const [{ n }] = (await db.sql`SELECT count(*)::int AS n FROM spool.all_jobs WHERE kind = 'api.role'`) as unknown as [{ n: number }];
      expect(n).toBe(1);
    } finally {
      run.child.kill('SIGTERM');
    }
    expect(await run.exited).toBe(0);
  });

  it('refuses to start without DATABASE_URL, naming it', async () => {
    const run = runCli(['api'], { DATABASE_URL: undefined });
    expect(await run.exited).toBe(1);
    expect(run.output().stderr).toMatch(/DATABASE_URL: is not set/);
  });
});
