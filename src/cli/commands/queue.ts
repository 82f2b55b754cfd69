import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { SpoolError } from '../../errors.js';
import { queueSchema } from '../../job-fields.js';
import type { QueueStats } from '../../queries/queues.js';
import { durationSchema, parseFlag } from '../flags.js';
import { writeJson, writeText } from '../output.js';
import { withSpool } from '../settings.js';
import { audited } from '../audit.js';

/** How long `spool queue drain` waits unless --timeout says otherwise. */
export const DRAIN_TIMEOUT_DEFAULT = '60s';
/** How often drain reads the queue's counts: often enough to return soon after, rare enough to cost nothing. */
const DRAIN_POLL_MS = 250;

const NO_JOBS: QueueStats['counts'] = { scheduled: 0, available: 0, running: 0, completed: 0, dead: 0, cancelled: 0 };

/** `spool queue pause|resume|drain <queue>`. */
export function registerQueue(program: Command): void {
  const queue = program.command('queue').description('pause, resume or wait for a queue to drain');

  for (const [name, paused] of [['pause', true], ['resume', false]] as const) {
    queue
      .command(name)
      .description(paused ? 'workers stop claiming from the queue (running jobs finish)' : 'workers claim from the queue again, woken at once')
      .argument('<queue>', 'queue name')
      .option('--json', 'print { queue, paused } as JSON')
      .action(async (text: string, options: { json?: boolean }, command: Command) => {
        const name = parseFlag('queue', queueSchema, text);
        await withSpool(command, (spool) =>
          audited(spool, paused ? 'queue.pause' : 'queue.resume', name, () => (paused ? spool.pauseQueue(name) : spool.resumeQueue(name))));
        if (options.json) writeJson({ queue: name, paused });
        else writeText(paused ? `queue ${name} paused: workers finish running jobs and claim no more` : `queue ${name} resumed`);
      });
  }

  queue
    .command('drain')
    .description('wait until the queue has no available and no running jobs (it does not pause the queue)')
    .argument('<queue>', 'queue name')
    .option('--timeout <duration>', 'give up after this long, with exit code 1: 30s, 5m, 1h', DRAIN_TIMEOUT_DEFAULT)
    .option('--json', 'print { queue, drained, counts } as JSON')
    .action(async (text: string, options: { timeout: string; json?: boolean }, command: Command) => {
      const name = parseFlag('queue', queueSchema, text);
      const timeoutMs = parseFlag('--timeout', durationSchema, options.timeout);
      const last = await withSpool(command, async (spool) => {
        // A local deadline: it bounds this process's wait, not anything the database decides.
        const deadline = Date.now() + timeoutMs;
        let reported = '';
        for (;;) {
          const stats = (await spool.queueStats()).find((q) => q.queue === name) ?? { queue: name, counts: NO_JOBS, oldestAvailableAgeSeconds: 0, paused: false };
          if (stats.counts.available === 0 && stats.counts.running === 0) return stats;
          const waiting = `${stats.counts.available} available, ${stats.counts.running} running`;
          if (Date.now() >= deadline) {
            const hint = stats.paused && stats.counts.available > 0 ? ' (the queue is paused: its available jobs wait for `spool queue resume`)' : '';
            throw new SpoolError('timeout', `queue ${name} did not drain within ${options.timeout}: ${waiting}${hint}`);
          }
          // Progress on stderr, once per change, so stdout stays the result alone.
          if (waiting !== reported) process.stderr.write(`waiting for queue ${name}: ${waiting}\n`);
          reported = waiting;
          await sleep(Math.min(DRAIN_POLL_MS, Math.max(deadline - Date.now(), 0)));
        }
      });
      if (options.json) writeJson({ queue: name, drained: true, counts: last.counts });
      else writeText(`queue ${name} drained: nothing available or running`);
    });
}
