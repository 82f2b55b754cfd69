import { describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { useTestDatabase } from '../support/database.js';
import { waitFor } from '../support/factories.js';

const db = useTestDatabase();

describe('spool api', () => {
  it('serves the API alone (no listener check in /readyz), and exits 0 on SIGTERM', async () => {
    const run = runCli(['api', '--port', '0', '--host', '127.0.0.1'], { DATABASE_URL: db.url, SPOOL_UNKNOWN_KINDS: 'allow' });
    try {
      const url = await waitFor(() => /spool API on (\S+)/.exec(run.output().stdout)?.[1] ?? (run.child.exitCode !== null && 'exited'), 'spool api to listen', 30_000);
      expect(url).not.toBe('exited');
      const ready = await fetch(`${url}/readyz`);
      expect(ready.status).toBe(200);
      expect(Object.keys(((await ready.json()) as { checks: object }).checks).sort()).toEqual(['database', 'migrations']);
      const posted = await fetch(`${url}/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"kind":"api.role"}' });
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
