import type { Command } from 'commander';
import { createSpool } from '../../client.js';
import { loadConfig } from '../../config.js';
import { ValidationError } from '../../errors.js';
import { createLogger } from '../../observability/logger.js';
import { loadTasks } from '../../worker/tasks.js';

/**
 * `spool work --tasks <dir>`: workers and maintenance for the handlers in a
 * task folder. SIGTERM/SIGINT stop it gracefully; it then exits 0.
 * Flags win over the environment (SPOOL_TASKS, SPOOL_QUEUES, SPOOL_CONCURRENCY).
 */
export function registerWork(program: Command): void {
  program
    .command('work')
    .description('run workers (and maintenance) for the handlers in a task folder')
    .option('--tasks <dir>', 'folder of <kind>.js handlers (env SPOOL_TASKS)')
    .option('--queues <list>', 'comma-separated queues to work (env SPOOL_QUEUES; default: the tasks\' queues, usually "default")')
    .option('--concurrency <n>', 'jobs at once (env SPOOL_CONCURRENCY; default 10)')
    .action(async (flags: { tasks?: string; queues?: string; concurrency?: string }) => {
      const config = loadConfig({
        ...process.env,
        ...(flags.tasks !== undefined ? { SPOOL_TASKS: flags.tasks } : {}),
        ...(flags.queues !== undefined ? { SPOOL_QUEUES: flags.queues } : {}),
        ...(flags.concurrency !== undefined ? { SPOOL_CONCURRENCY: flags.concurrency } : {}),
      });
      if (!config.databaseUrl) {
        throw new ValidationError([{ path: 'DATABASE_URL', message: 'is not set: export DATABASE_URL=postgres://user:pass@host:5432/db' }], 'config_invalid');
      }
      if (!config.tasks) {
        throw new ValidationError([{ path: 'tasks', message: 'is not set: pass --tasks <dir> (or SPOOL_TASKS) with <kind>.js handlers' }], 'config_invalid');
      }
      const log = createLogger();
      const jobs = await loadTasks(config.tasks);
      const spool = createSpool({ connectionString: config.databaseUrl, schema: config.schema });
      await spool.migrate();
      const worker = await spool.work({
        jobs,
        ...(config.queues !== undefined ? { queues: config.queues } : {}),
        ...(config.concurrency !== undefined ? { concurrency: config.concurrency } : {}),
        ...(config.shutdownGraceMs !== undefined ? { shutdownGraceMs: config.shutdownGraceMs } : {}),
        logger: log,
        handleSignals: false,
      });
      await new Promise<void>((resolve) => {
        const stop = (signal: NodeJS.Signals) => {
          log.info({ signal }, 'stopping');
          process.off('SIGTERM', stop);
          process.off('SIGINT', stop);
          void worker
            .stop()
            .then(() => spool.close())
            .then(resolve);
        };
        process.on('SIGTERM', stop);
        process.on('SIGINT', stop);
      });
    });
}
