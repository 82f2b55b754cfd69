import type { Command } from 'commander';
import { parseSince, type AuditEntry } from '../../audit/log.js';
import { SpoolError } from '../../errors.js';
import { table, writeJson, writeText } from '../output.js';
import { withSpool } from '../settings.js';

const when = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

/** `spool audit [--since] [--action] [--key] [--limit]`: the audit log, newest first. */
export function registerAudit(program: Command): void {
  program
    .command('audit')
    .description('the audit log: who changed what through the API or spool keys, newest first (docs/security.md)')
    .option('--since <when>', 'from this time on: a duration back from now (30m, 12h, 7d) or an ISO time')
    .option('--action <action>', 'one action (job.cancel) or every action under a prefix (job, key, dead)')
    .option('--key <id>', 'rows of this API key id')
    .option('--limit <n>', 'rows (100; at most 1000)')
    .option('--json', 'print { entries, nextBefore } as JSON')
    .action(async (options: { since?: string; action?: string; key?: string; limit?: string; json?: boolean }, command: Command) => {
      if (options.limit !== undefined && !/^[1-9][0-9]{0,3}$/.test(options.limit)) {
        throw new SpoolError('invalid_input', `--limit: expected a whole number from 1 to 1000; got ${JSON.stringify(options.limit)}`);
      }
      const since = options.since === undefined ? undefined : parseSince(options.since, '--since');
      const page = await withSpool(command, (spool) =>
        spool.audit.list({ since, action: options.action, keyId: options.key, limit: options.limit === undefined ? undefined : Number(options.limit) }),
      );
      if (options.json) return writeJson(page);
      if (page.entries.length === 0) return writeText('no audit rows match');
      writeText(table([
        { header: 'at', cell: (e: AuditEntry) => when(e.at) },
        { header: 'action', cell: (e) => e.action },
        { header: 'target', cell: (e) => e.target ?? '-' },
        { header: 'result', cell: (e) => (e.status === null ? e.result : `${e.result} ${e.status}`) },
        { header: 'key', cell: (e) => (e.keyId ? `${e.keyId} ${e.keyName ?? ''} (${e.role})` : '-') },
        { header: 'client', cell: (e) => e.client ?? '-' },
        { header: 'request', cell: (e) => e.requestId ?? '-' },
      ], page.entries).trimEnd());
    });
}
