import type { Command } from 'commander';
import type { Kind } from '../../client.js';
import { table, timestamp, writeJson, writeText, type Column } from '../output.js';
import { withSpool } from '../settings.js';

const KIND_COLUMNS: Column<Kind>[] = [
  { header: 'kind', cell: (k) => k.kind },
  { header: 'queue', cell: (k) => k.queue },
  { header: 'priority', cell: (k) => String(k.priority), align: 'right' },
  { header: 'attempts', cell: (k) => String(k.maxAttempts), align: 'right' },
  { header: 'timeout', cell: (k) => (k.timeoutMs === null ? '-' : `${k.timeoutMs}ms`), align: 'right' },
  { header: 'schema', cell: (k) => (k.payloadSchema === null ? 'any' : 'yes') },
  { header: 'waiting', cell: (k) => String(k.waiting), align: 'right' },
  { header: 'workers', cell: (k) => String(k.workers), align: 'right' },
  // Database time, as stored: an age computed here would mix in this host's clock.
  { header: 'last seen', cell: (k) => timestamp(k.lastSeenAt) },
];

/** `spool kinds`: the kind registry, with each kind's defaults, waiting jobs and workers. */
export function registerKinds(program: Command): void {
  program
    .command('kinds')
    .description('registered job kinds: their defaults, payload schema, waiting jobs, live workers and when a worker last had them')
    .option('--json', 'print { kinds: [...] } as JSON, schemas included')
    .action(async (options: { json?: boolean }, command: Command) => {
      const kinds = await withSpool(command, (spool) => spool.listKinds());
      if (options.json) writeJson({ kinds });
      else if (kinds.length === 0) writeText('no kinds registered yet: start a worker (spool work --tasks <dir>) or call spool.registerKinds()');
      else writeText(table(KIND_COLUMNS, kinds));
    });
}
