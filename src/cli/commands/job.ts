import type { Command } from 'commander';
import { JobNotFoundError } from '../../errors.js';
import type { Job, JobError } from '../../job.js';
import { compactJson, details, timestamp, writeJson, writeText } from '../output.js';
import { withSpool } from '../settings.js';
import { audited } from '../audit.js';

/** Every field of a job, one per line, then its failed attempts (oldest first, with stacks). */
export function jobDetails(job: Job): string {
  const text = details([
    ['id', job.id],
    ['kind', job.kind],
    ['queue', job.queue],
    ['state', job.cancelRequestedAt && job.state === 'running' ? 'running (cancel requested)' : job.state],
    ['attempt', `${job.attempt} of ${job.maxAttempts}`],
    ['priority', String(job.priority)],
    ['run at', timestamp(job.runAt)],
    ['created', timestamp(job.createdAt)],
    ['started', timestamp(job.startedAt)],
    ['finished', timestamp(job.finishedAt)],
    ['worker', job.workerId ?? '-'],
    ['lease until', timestamp(job.leaseExpiresAt)],
    ['timeout', job.timeoutMs === null ? '-' : `${job.timeoutMs} ms`],
    ['unique key', job.uniqueKey ?? '-'],
    ['tags', job.tags.length > 0 ? job.tags.join(', ') : '-'],
    ['payload', compactJson(job.payload)],
    ['result', job.result === null ? '-' : compactJson(job.result)],
    ['progress', job.progress === null ? '-' : compactJson(job.progress)],
    ['metadata', compactJson(job.metadata)],
  ]);
  return `${text}${job.errors.length === 0 ? 'errors       none\n' : `errors\n${job.errors.map(attemptError).join('')}`}`;
}

function attemptError(error: JobError): string {
  // A stack's first line repeats the message: show the frames only.
  const frames = (error.stack ?? '').split('\n').slice(1).filter((line) => line.trim() !== '');
  return `  attempt ${error.attempt} at ${timestamp(error.at)}: ${error.message}\n${frames.map((f) => `      ${f.trim()}\n`).join('')}`;
}

/** `spool job show|cancel|retry <id>`. */
export function registerJob(program: Command): void {
  const job = program.command('job').description('show, cancel or retry one job by id');

  job
    .command('show')
    .description('every field of a job, and its failed attempts')
    .argument('<id>', 'job id')
    .option('--json', 'print the job as JSON')
    .action(async (id: string, options: { json?: boolean }, command: Command) => {
      const found = await withSpool(command, (spool) => spool.getJob(id));
      if (!found) throw new JobNotFoundError(id);
      if (options.json) writeJson(found);
      else writeText(jobDetails(found));
    });

  job
    .command('cancel')
    .description('cancel a scheduled or available job at once; ask a running job\'s worker to stop it')
    .argument('<id>', 'job id')
    .option('--json', 'print the job after the change as JSON')
    .action(async (id: string, options: { json?: boolean }, command: Command) => {
      const cancelled = await withSpool(command, (spool) => audited(spool, 'job.cancel', id, () => spool.cancelJob(id), (job) => ({ state: job.state })));
      if (options.json) writeJson(cancelled);
      else if (cancelled.state === 'cancelled') writeText(`job ${cancelled.id} cancelled`);
      else writeText(`job ${cancelled.id} is ${cancelled.state}: cancellation requested; its worker aborts the handler and records it cancelled`);
    });

  job
    .command('retry')
    .description('run a completed, dead or cancelled job again, now')
    .argument('<id>', 'job id')
    .option('--json', 'print the job after the change as JSON')
    .action(async (id: string, options: { json?: boolean }, command: Command) => {
      const retried = await withSpool(command, (spool) => audited(spool, 'job.retry', id, () => spool.retryJob(id)));
      if (options.json) writeJson(retried);
      else writeText(`job ${retried.id} is ${retried.state} again: attempt ${retried.attempt + 1} of ${retried.maxAttempts} next`);
    });
}
