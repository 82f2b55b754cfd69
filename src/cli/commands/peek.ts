import type { Command } from 'commander';
import { z } from 'zod';
import { JOB_STATES, type Job } from '../../job.js';
import { listFilterOf, optionalFlag, withListFlags, type ListFlags } from '../flags.js';
import { table, timestamp, writeJson, writeText, type Column } from '../output.js';
import { withSpool } from '../settings.js';

const stateSchema = z.enum(JOB_STATES, { error: `expected one of ${JOB_STATES.join(', ')}` });

const PEEK_COLUMNS: Column<Job>[] = [
  { header: 'id', cell: (j) => j.id, align: 'right' },
  { header: 'state', cell: (j) => j.state },
  { header: 'queue', cell: (j) => j.queue },
  { header: 'kind', cell: (j) => j.kind },
  { header: 'attempt', cell: (j) => `${j.attempt}/${j.maxAttempts}`, align: 'right' },
  { header: 'priority', cell: (j) => String(j.priority), align: 'right' },
  { header: 'run at', cell: (j) => timestamp(j.runAt) },
  { header: 'created', cell: (j) => timestamp(j.createdAt) },
];

/** `spool peek`: the newest jobs, filtered by queue, state and kind. */
export function registerPeek(program: Command): void {
  withListFlags(program.command('peek').description('the newest jobs, filtered by queue, state and kind'))
    .option('--state <state>', `only jobs in this state (${JOB_STATES.join(', ')})`)
    .option('--json', 'print { jobs: [...], nextCursor } as JSON')
    .action(async (flags: ListFlags & { state?: string; json?: boolean }, command: Command) => {
      const filter = { ...listFilterOf(flags), state: optionalFlag('--state', stateSchema, flags.state) };
      const page = await withSpool(command, (spool) => spool.listJobs(filter));
      if (flags.json) return writeJson(page);
      writeText(page.jobs.length === 0 ? 'no jobs match' : table(PEEK_COLUMNS, page.jobs));
      if (page.nextCursor) writeText(`more: add --cursor ${page.nextCursor}`);
    });
}
