import type { Command } from 'commander';
import { createSpool } from '../../client.js';
import { createLogger } from '../../observability/logger.js';
import { loadTasks } from '../../worker/tasks.js';
import { commandConfig, requireDatabaseUrl } from '../settings.js';
import { nextStopSignal, requireTasks, withWorkerFlags, workerSettings, type WorkerFlags } from '../worker-options.js';

/**
 * `spool work --tasks <dir>`: workers and maintenance for the handlers in a
 * task folder. SIGTERM/SIGINT stop it gracefully; it then exits 0.
 * Flags win over the environment (SPOOL_TASKS, SPOOL_QUEUES, SPOOL_CONCURRENCY).
 */
export function registerWork(program: Command): void {
  withWorkerFlags(program.command('work').description('run workers (and maintenance) for the handlers in a task folder')).action(
    async (flags: WorkerFlags, command: Command) => {
      const { config } = commandConfig(command, flags);
      const url = requireDatabaseUrl(config);
      const log = createLogger({ level: config.logLevel });
      const jobs = await loadTasks(requireTasks(config));
      const spool = createSpool({ connectionString: url, schema: config.schema, poolSize: config.poolSize });
      try {
        await spool.migrate();
        const worker = await spool.work({ jobs, ...workerSettings(config), logger: log, handleSignals: false });
        await nextStopSignal(log);
        await worker.stop();
      } finally {
        await spool.close();
      }
    },
  );
}
