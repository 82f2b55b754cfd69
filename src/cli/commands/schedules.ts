import type { Command } from 'commander';
import { SpoolError, ValidationError } from '../../errors.js';
import { postgresExecutor } from '../../db/executor.js';
import { KindCatalog } from '../../kinds/catalog.js';
import { defineSchedule } from '../../schedules/schedule.js';
import type { Schedule } from '../../schedules/store.js';
import { details, table, timestamp, writeJson, writeText } from '../output.js';
import { commandConfig, withSpool } from '../settings.js';
import { audited } from '../audit.js';

function parseJson(flag: string, text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new SpoolError('invalid_input', `${flag}: not valid JSON (${(error as Error).message}); e.g. '{"to":"a@b.c"}'`);
  }
}

function notFound(name: string): never {
  throw new SpoolError('not_found', `no schedule named ${JSON.stringify(name)}: \`spool schedules list\` shows them`);
}

const state = (s: Schedule) => (s.paused ? 'paused' : 'active');

/** `spool schedules list|show|set|pause|resume|trigger|remove`. */
export function registerSchedules(program: Command): void {
  const schedules = program.command('schedules').description('cron schedules: list, show the next runs, set, pause, resume, trigger, remove');

  schedules
    .command('list')
    .description('every schedule with its next and last tick')
    .option('--json', 'print { schedules } as JSON')
    .action(async (options: { json?: boolean }, command: Command) => {
      const rows = await withSpool(command, (spool) => spool.schedules.list());
      if (options.json) return writeJson({ schedules: rows });
      if (rows.length === 0) return writeText('no schedules: declare one with defineSchedule() or `spool schedules set`');
      writeText(table([
        { header: 'name', cell: (s: Schedule) => s.name },
        { header: 'cron', cell: (s) => s.cron },
        { header: 'timezone', cell: (s) => s.timezone },
        { header: 'kind', cell: (s) => s.kind },
        { header: 'state', cell: state },
        { header: 'next run', cell: (s) => (s.paused ? '-' : timestamp(s.nextRunAt)) },
        { header: 'last run', cell: (s) => timestamp(s.lastRunAt) },
        { header: 'last job', cell: (s) => s.lastJobId ?? '-' },
      ], rows).trimEnd());
    });

  schedules
    .command('show')
    .description('one schedule, with its next 5 runs')
    .argument('<name>', 'schedule name')
    .option('--json', 'print { schedule } as JSON')
    .action(async (name: string, options: { json?: boolean }, command: Command) => {
      const s = await withSpool(command, (spool) => spool.schedules.get(name));
      if (!s) notFound(name);
      if (options.json) return writeJson({ schedule: s });
      writeText(details([
        ['name', s.name],
        ['cron', `${s.cron} (${s.timezone})`],
        ['job', `${s.kind} ${JSON.stringify(s.payload)}`],
        ['options', JSON.stringify(s.options)],
        ['overlap', s.overlap],
        ['catch up', s.catchUp],
        ['jitter', `${s.jitterMs} ms`],
        ['state', state(s)],
        ['last run', `${timestamp(s.lastRunAt)}${s.lastJobId ? ` (job ${s.lastJobId})` : ''}`],
        ['last error', s.lastError ?? '-'],
        ['source', s.source],
        ['next runs', s.nextRuns.length > 0 ? s.nextRuns.map(timestamp).join('\n') : '- (paused)'],
      ]).trimEnd());
    });

  schedules
    .command('set')
    .description('create or update a schedule (source cli)')
    .argument('<name>', 'schedule name')
    .requiredOption('--cron <pattern>', 'cron pattern: 5 fields, or 6 with seconds first, e.g. "0 2 * * *"')
    .requiredOption('--kind <kind>', 'the kind each tick enqueues')
    .option('--timezone <zone>', 'IANA zone the pattern is read in', 'UTC')
    .option('--payload <json>', 'payload of each tick\'s job (JSON)')
    .option('--options <json>', 'job options: queue, priority, maxAttempts, timeoutMs, tags, group, metadata (JSON)')
    .option('--jitter-ms <ms>', 'spread each tick\'s start by up to this many ms')
    .option('--overlap <policy>', 'allow, or skip (no job while the last tick\'s job is unfinished)')
    .option('--catch-up <policy>', 'none, latest or all: ticks missed while no leader ran')
    .option('--json', 'print { schedule } as JSON')
    .action(async (name: string, o: { cron: string; kind: string; timezone: string; payload?: string; options?: string; jitterMs?: string; overlap?: string; catchUp?: string; json?: boolean }, command: Command) => {
      if (o.jitterMs !== undefined && !/^[0-9]+$/.test(o.jitterMs)) throw new SpoolError('invalid_input', `--jitter-ms: expected whole milliseconds, got ${JSON.stringify(o.jitterMs)}`);
      const definition = defineSchedule({
        name,
        cron: o.cron,
        timezone: o.timezone,
        job: o.kind,
        payload: parseJson('--payload', o.payload),
        options: parseJson('--options', o.options) as Record<string, unknown> | undefined,
        jitterMs: o.jitterMs === undefined ? undefined : Number(o.jitterMs),
        overlap: o.overlap as 'allow' | 'skip' | undefined,
        catchUp: o.catchUp as 'none' | 'latest' | 'all' | undefined,
      });
      const { config } = commandConfig(command);
      const s = await withSpool(command, async (spool) => {
        // As `spool enqueue`: an unknown kind (unless allowed) or a payload its registered schema refuses is refused.
        const catalog = new KindCatalog(postgresExecutor(spool.sql), spool.quotedSchema);
        const issues = await catalog.check([{ kind: definition.kind, payload: definition.payload, at: '' }], config.unknownKinds);
        if (issues.length > 0) throw new ValidationError(issues);
        await audited(spool, 'schedule.put', name, () => spool.schedules.upsert([definition], 'cli'), () => ({ cron: definition.cron }));
        return spool.schedules.get(name);
      });
      if (o.json) writeJson({ schedule: s });
      else writeText(`schedule ${name} set: next run ${timestamp(s!.nextRuns[0])}`);
    });

  for (const [verb, what] of [['pause', 'no more ticks until resumed'], ['resume', 'tick again from the next tick after now']] as const) {
    schedules
      .command(verb)
      .description(what)
      .argument('<name>', 'schedule name')
      .option('--json', 'print { schedule } as JSON')
      .action(async (name: string, options: { json?: boolean }, command: Command) => {
        const s = await withSpool(command, (spool) =>
          audited(spool, `schedule.${verb}`, name, () => (verb === 'pause' ? spool.schedules.pause(name) : spool.schedules.resume(name))));
        if (options.json) writeJson({ schedule: s });
        else writeText(verb === 'pause' ? `schedule ${name} paused` : `schedule ${name} resumed: next run ${timestamp(s.nextRunAt)}`);
      });
  }

  schedules
    .command('trigger')
    .description('enqueue one job of the schedule now, outside its ticks')
    .argument('<name>', 'schedule name')
    .option('--json', 'print { jobId } as JSON')
    .action(async (name: string, options: { json?: boolean }, command: Command) => {
      const jobId = await withSpool(command, (spool) => audited(spool, 'schedule.trigger', name, () => spool.schedules.trigger(name), (id) => ({ jobId: id })));
      if (options.json) writeJson({ jobId });
      else writeText(jobId);
    });

  schedules
    .command('remove')
    .description('remove a schedule (its jobs stay; a schedule still in code comes back at the next worker start)')
    .argument('<name>', 'schedule name')
    .option('--json', 'print { removed } as JSON')
    .action(async (name: string, options: { json?: boolean }, command: Command) => {
      const removed = await withSpool(command, (spool) => audited(spool, 'schedule.remove', name, () => spool.schedules.remove(name), (gone) => ({ removed: gone })));
      if (!removed) notFound(name);
      if (options.json) writeJson({ removed });
      else writeText(`schedule ${name} removed`);
    });
}
