import type { Command } from 'commander';
import type { QueueStats } from '../../queries/queues.js';
import { age, table, writeJson, writeText, type Column } from '../output.js';
import { withSpool } from '../settings.js';

const count = (state: keyof QueueStats['counts']): Column<QueueStats> => ({
  header: state,
  cell: (q) => String(q.counts[state]),
  align: 'right',
});

const STATS_COLUMNS: Column<QueueStats>[] = [
  { header: 'queue', cell: (q) => q.queue },
  count('scheduled'),
  count('available'),
  count('running'),
  count('completed'),
  count('dead'),
  count('cancelled'),
  { header: 'oldest', cell: (q) => age(q.oldestAvailableAgeSeconds) },
  { header: 'paused', cell: (q) => (q.paused ? 'yes' : 'no') },
];

/** `spool stats`: per queue, jobs by state, the oldest available job's age, and the paused flag. */
export function registerStats(program: Command): void {
  program
    .command('stats')
    .description('per queue: jobs by state, how long the oldest available job has waited, and whether it is paused')
    .option('--json', 'print { queues: [...] } as JSON')
    .action(async (options: { json?: boolean }, command: Command) => {
      const queues = await withSpool(command, (spool) => spool.queueStats());
      if (options.json) writeJson({ queues });
      else if (queues.length === 0) writeText('no queues yet: nothing has been enqueued or paused');
      else writeText(table(STATS_COLUMNS, queues));
    });
}
