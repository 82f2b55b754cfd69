import type { Command } from 'commander';
import { ROLES, type ApiKey, type CreatedKey } from '../../auth/keys.js';
import { SpoolError } from '../../errors.js';
import { table, writeJson, writeText } from '../output.js';
import { withSpool } from '../settings.js';
import { cliAudit } from '../audit.js';

const UNIT_MS: Record<string, number> = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 };

/** `--expires 90d` (m, h, d, w) or an ISO time with an offset. */
function expiresAt(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const relative = /^([1-9][0-9]{0,5})([mhdw])$/.exec(text);
  if (relative) return new Date(Date.now() + Number(relative[1]) * UNIT_MS[relative[2]!]!).toISOString();
  if (/^\d{4}-\d{2}-\d{2}T/.test(text)) return text;
  throw new SpoolError('invalid_input', `--expires: expected a duration such as 30d, 12h, 2w, or an ISO time such as 2027-01-01T00:00:00Z; got ${JSON.stringify(text)}`);
}

const state = (k: ApiKey) => (k.revokedAt ? 'revoked' : k.expiresAt && k.expiresAt <= new Date() ? 'expired' : 'active');
const when = (d: Date | null) => (d ? d.toISOString().replace(/\.\d{3}Z$/, 'Z') : '-');

function printCreated(created: CreatedKey, json: boolean | undefined, verb: string): void {
  if (json) return writeJson(created);
  writeText(`${verb} key ${created.apiKey.id} (${created.apiKey.role}, "${created.apiKey.name}"${created.apiKey.expiresAt ? `, expires ${when(created.apiKey.expiresAt)}` : ''}).
This is the only time the key is shown; store it now:
${created.key}`);
}

/** `spool keys create|list|revoke|rotate`: API keys, straight in the database (DATABASE_URL is the trust here). */
export function registerKeys(program: Command): void {
  const keys = program.command('keys').description('API keys: create, list, revoke, rotate (docs/security.md)');
  keys
    .command('create')
    .description('create an API key and print it once')
    .requiredOption('--role <role>', `one of ${ROLES.join(', ')}`)
    .option('--name <name>', 'what it is for, e.g. "billing service"')
    .option('--expires <when>', 'expiry: a duration (30d, 12h, 2w) or an ISO time; default never')
    .option('--tenant <tenant>', 'bind the key to a tenant: it sees and touches only that tenant\'s jobs')
    .option('--json', 'print { key, apiKey } as JSON')
    .action(async (options: { role: string; name?: string; expires?: string; tenant?: string; json?: boolean }, command: Command) => {
      const created = await withSpool(command, async (spool) => {
        const made = await spool.keys.create({ role: options.role as never, name: options.name, tenant: options.tenant, expiresAt: expiresAt(options.expires) });
        await spool.audit.record(cliAudit('key.create', made.apiKey.id, { role: made.apiKey.role, name: made.apiKey.name, tenant: made.apiKey.tenant }));
        return made;
      });
      printCreated(created, options.json, 'created');
    });
  keys
    .command('list')
    .description('keys (never their secrets), newest first')
    .option('--all', 'also revoked keys')
    .option('--json', 'print { keys } as JSON')
    .action(async (options: { all?: boolean; json?: boolean }, command: Command) => {
      const rows = await withSpool(command, (spool) => spool.keys.list({ includeRevoked: options.all === true }));
      if (options.json) return writeJson({ keys: rows });
      if (rows.length === 0) return writeText('no API keys: `spool keys create --role admin` makes one');
      writeText(table([
        { header: 'id', cell: (k: ApiKey) => k.id, align: 'right' },
        { header: 'prefix', cell: (k) => k.prefix },
        { header: 'role', cell: (k) => k.role },
        { header: 'name', cell: (k) => k.name },
        { header: 'tenant', cell: (k) => k.tenant ?? '-' },
        { header: 'state', cell: state },
        { header: 'created', cell: (k) => when(k.createdAt) },
        { header: 'expires', cell: (k) => when(k.expiresAt) },
        { header: 'last used', cell: (k) => when(k.lastUsedAt) },
      ], rows).trimEnd());
    });
  keys
    .command('revoke')
    .description('revoke a key at once (API processes stop accepting it within 5 s)')
    .argument('<id>', 'the key\'s id or prefix (spool keys list)')
    .option('--json', 'print { apiKey } as JSON')
    .action(async (ref: string, options: { json?: boolean }, command: Command) => {
      const revoked = await withSpool(command, async (spool) => {
        const done = await spool.keys.revoke(ref);
        if (done) await spool.audit.record(cliAudit('key.revoke', done.id));
        return done;
      });
      if (!revoked) throw new SpoolError('not_found', `no API key ${JSON.stringify(ref)}: spool keys list shows them`);
      if (options.json) return writeJson({ apiKey: revoked });
      writeText(`revoked key ${revoked.id} (${revoked.role}, "${revoked.name}")`);
    });
  keys
    .command('rotate')
    .description('make a new key with the same role and name, and revoke the old one')
    .argument('<id>', 'the key\'s id or prefix (spool keys list)')
    .option('--json', 'print { key, apiKey } as JSON')
    .action(async (ref: string, options: { json?: boolean }, command: Command) => {
      const rotated = await withSpool(command, async (spool) => {
        const done = await spool.keys.rotate(ref);
        if (done) await spool.audit.record(cliAudit('key.rotate', ref, { newKeyId: done.apiKey.id }));
        return done;
      });
      if (!rotated) throw new SpoolError('not_found', `no API key ${JSON.stringify(ref)}: spool keys list shows them`);
      printCreated(rotated, options.json, `rotated key ${ref} into`);
    });
}
