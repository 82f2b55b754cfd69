import { WEBHOOK_QUEUE, webhookDeliveryJob } from '../webhooks/delivery.js';
import type { Spool } from '../client.js';
import type { AnyJobDefinition } from '../job.js';
import type { Command } from 'commander';
import type { SpoolConfig } from '../config.js';
import { ValidationError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { WorkerOptions } from '../worker/worker.js';

/** The flags `spool work` and `spool serve` share. */
export interface WorkerFlags {
  tasks?: string;
  queues?: string;
  concurrency?: string;
  removeOnComplete?: boolean;
}

/** Adds --tasks, --queues and --concurrency (each with its environment twin). */
export function withWorkerFlags(command: Command): Command {
  return command
    .option('--tasks <dir>', 'folder of <kind>.js handlers (env SPOOL_TASKS)')
    .option('--queues <list>', 'comma-separated queues to work (env SPOOL_QUEUES; default: the tasks\' queues, usually "default")')
    .option('--concurrency <n>', 'jobs at once (env SPOOL_CONCURRENCY; default 10)')
    .option('--remove-on-complete', 'delete completed jobs\' rows instead of keeping them (env SPOOL_REMOVE_ON_COMPLETE)');
}

/** The task folder, or a config error saying how to give one. */
export function requireTasks(config: SpoolConfig): string {
  if (!config.tasks) {
    throw new ValidationError([{ path: 'tasks', message: 'is not set: pass --tasks <dir> (or SPOOL_TASKS) with <kind>.js handlers' }], 'config_invalid');
  }
  return config.tasks;
}

/** The worker options the configuration sets. */
export function workerSettings(config: SpoolConfig): Partial<WorkerOptions> {
  return {
    // The built-in webhook deliveries (withWebhookDelivery) run wherever workers do.
    ...(config.queues !== undefined ? { queues: [...new Set([...config.queues, WEBHOOK_QUEUE])] } : {}),
    concurrency: config.concurrency,
    removeOnComplete: config.removeOnComplete,
    logPayloads: config.logPayloads,
    shutdownGraceMs: config.shutdownGraceMs,
  };
}

/** The task folder's jobs and the built-in one that delivers webhooks (docs/events.md). */
export function withWebhookDelivery(spool: Spool, jobs: AnyJobDefinition[], config: SpoolConfig): AnyJobDefinition[] {
  return [...jobs, webhookDeliveryJob(spool, { allowPrivate: config.webhookAllowPrivate === true }) as unknown as AnyJobDefinition];
}

/** Resolves with the signal's name once SIGTERM or SIGINT arrives (each handler removed after). */
export function nextStopSignal(log: Logger): Promise<NodeJS.Signals> {
  return new Promise((done) => {
    const stop = (signal: NodeJS.Signals) => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      log.info({ signal }, 'stopping');
      done(signal);
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}
