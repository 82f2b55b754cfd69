import type { Command } from 'commander';
import type { Spool } from '../../client.js';
import { SpoolError, ValidationError } from '../../errors.js';
import { kindSchema, queueSchema } from '../../job-fields.js';
import type { Job } from '../../job.js';
import { durationSchema, listFilterOf, optionalFlag, withListFlags, type ListFlags } from '../flags.js';
import { table, timestamp, truncate, writeJson, writeText, type Column } from '../output.js';
import { withSpool } from '../settings.js';
import { jobDetails } from './job.js';
import { audited } from '../audit.js';

const DEAD_COLUMNS: Column<Job>[] = [
  { header: 'id', cell: (j) => j.id, align: 'right' },
  { header: 'queue', cell: (j) => j.queue },
  { header: 'kind', cell: (j) => j.kind },
  { header: 'attempts', cell: (j) => String(j.attempt), align: 'right' },
  { header: 'died', cell: (j) => timestamp(j.finishedAt) },
  { header: 'last error', cell: (j) => truncate(j.errors.at(-1)?.message ?? '-', 60) },
];

interface FilterFlags {
  queue?: string;
  kind?: string;
}

/** `spool dlq list|show|replay|purge`: the dead-letter queue (jobs in state `dead`). */
export function registerDlq(program: Command): void {
  const dlq = program.command('dlq').description('the dead-letter queue: list, show, replay or purge dead jobs');

  withListFlags(dlq.command('list').description('dead jobs, newest first, with their last error'))
    .option('--json', 'print { jobs: [...], nextCursor } as JSON')
    .action(async (flags: ListFlags & { json?: boolean }, command: Command) => {
      const filter = { ...listFilterOf(flags), state: 'dead' as const };
      const page = await withSpool(command, (spool) => spool.listJobs(filter));
      if (flags.json) return writeJson(page);
      writeText(page.jobs.length === 0 ? 'no dead jobs' : table(DEAD_COLUMNS, page.jobs));
      if (page.nextCursor) writeText(`more: add --cursor ${page.nextCursor}`);
    });

  dlq
    .command('show')
    .description('a dead job and every failed attempt, with stacks')
    .argument('<id>', 'job id')
    .option('--json', 'print the job as JSON')
    .action(async (id: string, options: { json?: boolean }, command: Command) => {
      const job = await withSpool(command, (spool) => spool.getJob(id));
      if (!job || job.state !== 'dead') {
        const where = job ? `it is ${job.state}; see it with \`spool job show ${id}\`` : 'no job has this id';
        throw new SpoolError('not_found', `job ${id} is not in the dead-letter queue: ${where}`);
      }
      if (options.json) writeJson(job);
      else writeText(jobDetails(job));
    });

  dlq
    .command('replay')
    .description('run dead jobs again, now, with one more attempt each')
    .argument('[ids...]', 'ids of dead jobs')
    .option('--all', 'every dead job (narrowed by --queue and --kind)')
    .option('--queue <queue>', 'only dead jobs in this queue')
    .option('--kind <kind>', 'only dead jobs of this kind')
    .option('--json', 'print { replayed: [ids], skipped: [ids] } as JSON')
    .action(async (ids: string[], flags: FilterFlags & { all?: boolean; json?: boolean }, command: Command) => {
      if (ids.length === 0 && !flags.all) {
        throw new ValidationError([{ path: 'ids', message: 'give the ids of the dead jobs to replay, or --all for every dead job' }]);
      }
      if (ids.length > 0 && flags.all) {
        throw new ValidationError([{ path: '--all', message: 'give either job ids or --all, not both' }]);
      }
      const filter = { ...deadFilterOf(flags), ...(ids.length > 0 ? { ids } : {}) };
      const { ids: replayed } = await withSpool(command, (spool) =>
        audited(spool, 'dead.replay', null, () => spool.replayDead(filter), (r) => ({ selection: filter, replayed: r.ids.length })));
      const skipped = ids.filter((id) => !replayed.includes(id));
      if (flags.json) return writeJson({ replayed, skipped });
      writeText(`replayed ${plural(replayed.length, 'dead job')}${replayed.length > 0 ? `: ${replayed.join(', ')}` : ''}`);
      if (skipped.length > 0) {
        writeText(`not replayed: ${skipped.join(', ')} (not dead, or an unfinished job holds its unique key)`);
      }
    });

  dlq
    .command('purge')
    .description('delete dead jobs for good')
    .option('--older-than <duration>', 'only jobs that died longer ago than this: 30m, 12h, 7d (default: any age)')
    .option('--queue <queue>', 'only dead jobs in this queue')
    .option('--kind <kind>', 'only dead jobs of this kind')
    .option('--yes', 'confirm: purging cannot be undone')
    .option('--json', 'print { purged, finishedBefore } as JSON')
    .action(async (flags: FilterFlags & { olderThan?: string; yes?: boolean; json?: boolean }, command: Command) => {
      const olderThanMs = optionalFlag('--older-than', durationSchema, flags.olderThan);
      const filter = deadFilterOf(flags);
      if (!flags.yes) {
        throw new ValidationError([{ path: '--yes', message: 'is required: purge deletes dead jobs for good (`spool dlq list` shows them first)' }]);
      }
      const { purged, finishedBefore } = await withSpool(command, async (spool) => {
        const before = olderThanMs === undefined ? undefined : new Date((await databaseNow(spool)).getTime() - olderThanMs);
        const selection = { ...filter, finishedBefore: before };
        const count = await audited(spool, 'dead.purge', null, () => spool.purgeDead(selection), (deleted) => ({ selection, deleted }));
        return { purged: count, finishedBefore: before ?? null };
      });
      if (flags.json) return writeJson({ purged, finishedBefore });
      writeText(`purged ${plural(purged, 'dead job')}${finishedBefore ? ` that died before ${timestamp(finishedBefore)}` : ''}`);
    });
}

function deadFilterOf(flags: FilterFlags): { queue?: string; kind?: string } {
  return {
    queue: optionalFlag('--queue', queueSchema, flags.queue),
    kind: optionalFlag('--kind', kindSchema, flags.kind),
  };
}

// Jobs die on the database's clock: "older than 7d" counts back from its now(), not this host's.
async function databaseNow(spool: Spool): Promise<Date> {
  const [row] = await spool.sql<{ now: Date }[]>`SELECT now() AS now`;
  return row!.now;
}

function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}
