import type { Command } from 'commander';
import { createSpool } from '../../client.js';
import { startMetricsServer } from '../../observability/metrics-server.js';
import { processObservability } from '../observability.js';
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
      const observability = await processObservability(config);
      const { log, metrics } = observability;
      const jobs = await loadTasks(requireTasks(config));
      const spool = createSpool({ connectionString: url, schema: config.schema, poolSize: config.poolSize, metrics });
      let metricsServer: { port: number; close(): Promise<void> } | undefined;
      try {
        await spool.migrate();
        if (metrics) {
          const server = await startMetricsServer(metrics, { host: config.host, port: config.metricsPort });
          metricsServer = server;
          log.info({ host: config.host, port: server.port }, 'metrics on GET /metrics');
        }
        const worker = await spool.work({ jobs, ...workerSettings(config), logger: log, handleSignals: false });
        await nextStopSignal(log);
        await worker.stop();
      } finally {
        await metricsServer?.close();
        await spool.close();
        await observability.stop();
      }
    },
  );
}
