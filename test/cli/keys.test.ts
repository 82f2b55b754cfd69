import { describe, expect, it } from 'vitest';
import { builtCliOn } from '../support/cli.js';
import { secretOf } from '../support/api.js';
import { useTestDatabase } from '../support/database.js';

const db = useTestDatabase();

const spool = builtCliOn(() => db.url);

describe('spool keys', () => {
  it('create (shown once), list (never the secret), rotate, revoke; the keys work and stop working', async () => {
    const created = await spool(['keys', 'create', '--role', 'producer', '--name', 'billing service', '--expires', '30d']);
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    const key = /^(spool_[a-z0-9]{12}_[A-Za-z0-9_-]{43})$/m.exec(created.stdout)![1]!;
    expect(created.stdout).toMatch(/only time the key is shown/);
    expect((await db.spool.keys.verify(key))?.role).toBe('producer');

    const list = await spool(['keys', 'list']);
    expect(list.stdout).toMatch(/ID\s+PREFIX\s+ROLE\s+NAME\s+TENANT\s+STATE/);
    expect(list.stdout).toMatch(/producer\s+billing service\s+-\s+active/);
    expect(list.stdout).not.toContain(secretOf(key));
    const [{ id, prefix }] = JSON.parse((await spool(['keys', 'list', '--json'])).stdout).keys;

    const rotated = await spool(['keys', 'rotate', prefix, '--json']);
    const fresh = JSON.parse(rotated.stdout);
    expect(fresh.apiKey).toMatchObject({ role: 'producer', name: 'billing service', rotatedFrom: id });
    expect(await db.spool.keys.verify(key)).toBeNull();
    expect((await db.spool.keys.verify(fresh.key))?.id).toBe(fresh.apiKey.id);

    expect((await spool(['keys', 'revoke', fresh.apiKey.id])).stdout).toMatch(/^revoked key \d+ \(producer, "billing service"\)/);
    expect(await db.spool.keys.verify(fresh.key)).toBeNull();
    expect((await spool(['keys', 'list'])).stdout).toMatch(/no API keys/);
    expect((await spool(['keys', 'list', '--all'])).stdout).toMatch(/revoked/);

    // Each change is in the audit log, as made from the CLI, without the secret; spool audit shows them.
    const audit = JSON.parse((await spool(['audit', '--action', 'key', '--json'])).stdout);
    expect(audit.entries.map((e: { action: string }) => e.action)).toEqual(['key.revoke', 'key.rotate', 'key.create']);
    expect(audit.entries[0]).toMatchObject({ target: fresh.apiKey.id, result: 'ok', client: expect.stringMatching(/^cli:.+@.+/) });
    expect(JSON.stringify(audit)).not.toContain(secretOf(key));
    const shown = await spool(['audit', '--since', '1h']);
    expect(shown.stdout).toMatch(/AT\s+ACTION\s+TARGET\s+RESULT/);
    expect(shown.stdout).toMatch(/key\.create/);
    const bad = await spool(['audit', '--since', 'last week']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--since/);
  });

  it('refuses bad input, naming the flag', async () => {
    const role = await spool(['keys', 'create', '--role', 'root']);
    expect(role.code).toBe(1);
    expect(role.stderr).toMatch(/role: expected one of admin, operator, producer, reader/);
    const expires = await spool(['keys', 'create', '--role', 'reader', '--expires', 'soon']);
    expect(expires.code).toBe(1);
    expect(expires.stderr).toMatch(/--expires: expected a duration such as 30d/);
    const tenant = await spool(['keys', 'create', '--role', 'reader', '--tenant', '']);
    expect(tenant.code).toBe(1);
    expect(tenant.stderr).toMatch(/tenant: must not be empty/);
    const bound = JSON.parse((await spool(['keys', 'create', '--role', 'reader', '--tenant', 'acme', '--json'])).stdout);
    expect(bound.apiKey.tenant).toBe('acme');
    expect((await db.spool.keys.verify(bound.key))?.tenant).toBe('acme');
    const missing = await spool(['keys', 'revoke', '424242']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/no API key "424242"/);
    expect((await spool(['keys', 'revoke', 'bad id!'])).stderr).toMatch(/id: expected a key id/);
  });
});
