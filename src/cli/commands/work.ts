import type { Command } from 'commander';
import { createSpool } from '../../client.js';
import { ValidationError } from '../../errors.js';
import { createLogger } from '../../observability/logger.js';
import { loadTasks } from '../../worker/tasks.js';
import { configWithFlags, requireTasks, stopOnSignal, withWorkerFlags, workerSettings, type WorkerFlags } from '../worker-options.js';

/**
 * `spool work --tasks <dir>`: workers and maintenance for the handlers in a
 * task folder. SIGTERM/SIGINT stop it gracefully; it then exits 0.
 * Flags win over the environment (SPOOL_TASKS, SPOOL_QUEUES, SPOOL_CONCURRENCY).
 */
export function registerWork(program: Command): void {
  withWorkerFlags(program.command('work').description('run workers (and maintenance) for the handlers in a task folder')).action(
    async (flags: WorkerFlags) => {
      const config = configWithFlags(flags);
      if (!config.databaseUrl) {
        throw new ValidationError([{ path: 'DATABASE_URL', message: 'is not set: export DATABASE_URL=postgres://user:pass@host:5432/db' }], 'config_invalid');
      }
      const log = createLogger();
      const jobs = await loadTasks(requireTasks(config));
      const spool = createSpool({ connectionString: config.databaseUrl, schema: config.schema });
      await spool.migrate();
      const worker = await spool.work({ jobs, ...workerSettings(config), logger: log, handleSignals: false });
      await stopOnSignal(worker, log);
      await spool.close();
    },
  );
}
