import { describe, expect, it } from 'vitest';
import { builtCliOn } from '../support/cli.js';
import { useTestDatabase } from '../support/database.js';

const db = useTestDatabase();

const spool = builtCliOn(() => db.url);

describe('spool audit and the CLI\'s own changes', () => {
  it('changes made with the CLI are audited as the API\'s are, failures too', async () => {
    const { id } = await db.spool.enqueue('cli.audited', {});
    expect((await spool(['queue', 'pause', 'audited-q'])).code).toBe(0);
    expect((await spool(['queue', 'resume', 'audited-q'])).code).toBe(0);
    expect((await spool(['job', 'cancel', id])).code).toBe(0);
    expect((await spool(['job', 'cancel', id])).code).toBe(1);
    expect((await spool(['dlq', 'purge', '--queue', 'audited-q', '--yes'])).code).toBe(0);
    const rows = JSON.parse((await spool(['audit', '--json'])).stdout).entries as { action: string; target: string | null; result: string; client: string; details: Record<string, unknown> }[];
    expect(rows.map((r) => [r.action, r.target, r.result])).toEqual([
      ['dead.purge', null, 'ok'],
      ['job.cancel', id, 'failed'],
      ['job.cancel', id, 'ok'],
      ['queue.resume', 'audited-q', 'ok'],
      ['queue.pause', 'audited-q', 'ok'],
    ]);
    expect(rows.every((r) => /^cli:.+@.+/.test(r.client))).toBe(true);
    expect(rows[0]!.details).toMatchObject({ deleted: 0, selection: { queue: 'audited-q' } });
    expect(rows[1]!.details.error).toMatch(/cancel/);
    const jobOnly = JSON.parse((await spool(['audit', '--action', 'job', '--json'])).stdout).entries;
    expect(jobOnly).toHaveLength(2);
  });
});
