import type { Command } from 'commander';
import { loadConfig, type SpoolConfig } from '../config.js';
import { ValidationError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { Worker, WorkerOptions } from '../worker/worker.js';

/** The flags `spool work` and `spool serve` share. */
export interface WorkerFlags {
  tasks?: string;
  queues?: string;
  concurrency?: string;
}

/** Adds --tasks, --queues and --concurrency (each with its environment twin). */
export function withWorkerFlags(command: Command): Command {
  return command
    .option('--tasks <dir>', 'folder of <kind>.js handlers (env SPOOL_TASKS)')
    .option('--queues <list>', 'comma-separated queues to work (env SPOOL_QUEUES; default: the tasks\' queues, usually "default")')
    .option('--concurrency <n>', 'jobs at once (env SPOOL_CONCURRENCY; default 10)');
}

/** The configuration, flags winning over the environment; validated as one. */
export function configWithFlags(flags: WorkerFlags): SpoolConfig {
  return loadConfig({
    ...process.env,
    ...(flags.tasks !== undefined ? { SPOOL_TASKS: flags.tasks } : {}),
    ...(flags.queues !== undefined ? { SPOOL_QUEUES: flags.queues } : {}),
    ...(flags.concurrency !== undefined ? { SPOOL_CONCURRENCY: flags.concurrency } : {}),
  });
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
    ...(config.queues !== undefined ? { queues: config.queues } : {}),
    ...(config.concurrency !== undefined ? { concurrency: config.concurrency } : {}),
    ...(config.shutdownGraceMs !== undefined ? { shutdownGraceMs: config.shutdownGraceMs } : {}),
  };
}

/** Resolves once SIGTERM or SIGINT has arrived and the worker has stopped gracefully. */
export function stopOnSignal(worker: Worker, log: Logger): Promise<void> {
  return new Promise((done) => {
    const stop = (signal: NodeJS.Signals) => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      log.info({ signal }, 'stopping');
      void worker.stop().then(done);
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}
