import type { Command } from 'commander';
import { SpoolError } from '../../errors.js';
import { LIMIT_SCOPES, type GroupInfo, type Limit, type LimitScope, type LimitSettings } from '../../flow/limits.js';
import type { Spool } from '../../client.js';
import { table, writeJson, writeText } from '../output.js';
import { withSpool } from '../settings.js';
import { audited } from '../audit.js';

interface SetFlags { concurrency?: string; rate?: string; weight?: string; fair?: boolean; json?: boolean }

const rateText = (rate: Limit['rate']) => (rate ? `${rate.limit}/${rate.windowMs}ms` : '-');

function scopeOf(text: string): LimitScope {
  if (!LIMIT_SCOPES.includes(text as LimitScope)) throw new SpoolError('invalid_input', `scope: expected ${LIMIT_SCOPES.join(', ')}, got ${JSON.stringify(text)}`);
  return text as LimitScope;
}

function wholeOrNone(flag: string, text: string): number | null {
  if (text === 'none') return null;
  if (!/^[0-9]+$/.test(text)) throw new SpoolError('invalid_input', `${flag}: expected a whole number, or none to clear it; got ${JSON.stringify(text)}`);
  return Number(text);
}

/** The limiter's current settings with the flags given laid over them: a flag left out keeps its value. */
async function merged(spool: Spool, scope: LimitScope, name: string, flags: SetFlags): Promise<LimitSettings> {
  const current = await spool.limits.get(scope, name);
  const settings: LimitSettings = {
    concurrency: current?.concurrency ?? null,
    rate: current?.rate ?? null,
    ...(scope === 'group' ? { weight: current?.weight ?? 1 } : {}),
    ...(scope === 'queue' ? { fair: current?.fair ?? false } : {}),
  };
  if (flags.concurrency !== undefined) settings.concurrency = wholeOrNone('--concurrency', flags.concurrency);
  if (flags.rate !== undefined) settings.rate = flags.rate === 'none' ? null : flags.rate;
  if (flags.weight !== undefined) settings.weight = wholeOrNone('--weight', flags.weight) ?? 1;
  if (flags.fair !== undefined) settings.fair = flags.fair;
  return settings;
}

function setCommand(parent: Command, scopeFixed: LimitScope | undefined): void {
  const command = parent.command('set').description(scopeFixed === 'group'
    ? 'set a group\'s weight and limits (flags left out keep their value)'
    : 'set a queue\'s, kind\'s or group\'s limits (flags left out keep their value)');
  if (!scopeFixed) command.argument('<scope>', 'queue, kind or group');
  command
    .argument('<name>', 'its name')
    .option('--concurrency <n>', 'at most n running at once across all workers (none: no limit)')
    .option('--rate <n/window>', 'at most n starts in any window, e.g. 20/1s, 100/1m (none: no limit)');
  if (scopeFixed === 'group' || !scopeFixed) command.option('--weight <n>', 'groups: share in a fair queue, 1-1000 (1)');
  if (!scopeFixed) command.option('--fair', 'queues: share claims across groups by weight').option('--no-fair', 'queues: claim in priority and FIFO order');
  command.option('--json', 'print { limit } as JSON').action(async (...args: unknown[]) => {
    const cmd = args[args.length - 1] as Command;
    const flags = args[args.length - 2] as SetFlags;
    const [scopeText, name] = scopeFixed ? [scopeFixed, args[0] as string] : [args[0] as string, args[1] as string];
    const scope = scopeOf(scopeText);
    const limit = await withSpool(cmd, async (spool) => {
      const settings = await merged(spool, scope, name, flags);
      return audited(spool, scope === 'group' ? 'group.put' : 'limit.put', `${scope}/${name}`, () => spool.limits.set(scope, name, settings, { source: 'cli' }));
    });
    if (flags.json) writeJson({ limit });
    else writeText(`${scope} ${name}: concurrency ${limit.concurrency ?? '-'}, rate ${rateText(limit.rate)}${scope === 'group' ? `, weight ${limit.weight}` : ''}${scope === 'queue' ? `, fair ${limit.fair}` : ''}`);
  });
}

function removeCommand(parent: Command, scopeFixed: LimitScope | undefined): void {
  const command = parent.command('remove').description('remove the limiter (no limits, weight 1, fairness off)');
  if (!scopeFixed) command.argument('<scope>', 'queue, kind or group');
  command.argument('<name>', 'its name').option('--json', 'print { removed } as JSON').action(async (...args: unknown[]) => {
    const cmd = args[args.length - 1] as Command;
    const flags = args[args.length - 2] as { json?: boolean };
    const [scopeText, name] = scopeFixed ? [scopeFixed, args[0] as string] : [args[0] as string, args[1] as string];
    const removed = await withSpool(cmd, (spool) => {
      const scope = scopeOf(scopeText);
      return audited(spool, scope === 'group' ? 'group.remove' : 'limit.remove', `${scope}/${name}`, () => spool.limits.remove(scope, name), (gone) => ({ removed: gone }));
    });
    if (flags.json) writeJson({ removed });
    else writeText(removed ? `${scopeText} ${name}: limits removed` : `${scopeText} ${name} had no limits`);
  });
}

/** `spool limits list|set|remove` and `spool groups list|set|remove`. */
export function registerLimits(program: Command): void {
  const limits = program.command('limits').description('flow limits per queue, kind or group: concurrency, rate, weight, fairness');
  limits
    .command('list')
    .description('every limiter')
    .option('--scope <scope>', 'only queue, kind or group')
    .option('--json', 'print { limits } as JSON')
    .action(async (options: { scope?: string; json?: boolean }, command: Command) => {
      const scope = options.scope === undefined ? undefined : scopeOf(options.scope);
      const rows = await withSpool(command, (spool) => spool.limits.list(scope));
      if (options.json) return writeJson({ limits: rows });
      if (rows.length === 0) return writeText('no limits: `spool limits set queue <name> --concurrency 5` sets one');
      writeText(table([
        { header: 'scope', cell: (l: Limit) => l.scope },
        { header: 'name', cell: (l) => l.name },
        { header: 'concurrency', cell: (l) => String(l.concurrency ?? '-'), align: 'right' },
        { header: 'rate', cell: (l) => rateText(l.rate) },
        { header: 'weight', cell: (l) => (l.scope === 'group' ? String(l.weight) : '-'), align: 'right' },
        { header: 'fair', cell: (l) => (l.scope === 'queue' ? String(l.fair) : '-') },
        { header: 'source', cell: (l) => l.source },
      ], rows).trimEnd());
    });
  setCommand(limits, undefined);
  removeCommand(limits, undefined);

  const groups = program.command('groups').description('job groups (tenants): jobs waiting and running, weights and limits');
  groups
    .command('list')
    .description('every group with jobs or settings')
    .option('--json', 'print { groups } as JSON')
    .action(async (options: { json?: boolean }, command: Command) => {
      const rows = await withSpool(command, (spool) => spool.limits.groups());
      if (options.json) return writeJson({ groups: rows });
      if (rows.length === 0) return writeText('no groups: enqueue with { group: "<tenant>" } to use them');
      writeText(table([
        { header: 'group', cell: (g: GroupInfo) => g.group },
        { header: 'waiting', cell: (g) => String(g.waiting), align: 'right' },
        { header: 'scheduled', cell: (g) => String(g.scheduled), align: 'right' },
        { header: 'running', cell: (g) => String(g.running), align: 'right' },
        { header: 'weight', cell: (g) => String(g.weight), align: 'right' },
        { header: 'concurrency', cell: (g) => String(g.concurrency ?? '-'), align: 'right' },
        { header: 'rate', cell: (g) => rateText(g.rate) },
      ], rows).trimEnd());
    });
  setCommand(groups, 'group');
  removeCommand(groups, 'group');
}
