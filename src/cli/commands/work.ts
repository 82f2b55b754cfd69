import type { Command } from 'commander';
import { createSpool } from '../../client.js';
import { isPortInUse, startMetricsServer } from '../../observability/metrics-server.js';
import { processObservability } from '../observability.js';
import { loadTaskFolder } from '../../worker/tasks.js';
import { commandConfig, requireDatabaseUrl } from '../settings.js';
import { nextStopSignal, requireTasks, withWebhookDelivery, withWorkerFlags, workerSettings, type WorkerFlags } from '../worker-options.js';

/**
 * `spool work --tasks <dir>`: workers and maintenance for the handlers in a
 * task folder. SIGTERM/SIGINT stop it gracefully; it then exits 0.
 * Flags win over the environment (SPOOL_TASKS, SPOOL_QUEUES, SPOOL_CONCURRENCY).
 */
export function registerWork(program: Command): void {
  withWorkerFlags(program.command('work').description('run workers (and maintenance) for the handlers in a task folder')).action(
    async (flags: WorkerFlags, command: Command) => {
      const { config, sources } = commandConfig(command, flags);
      const url = requireDatabaseUrl(config);
      const observability = await processObservability(config);
      const { log, metrics } = observability;
      const { jobs, schedules } = await loadTaskFolder(requireTasks(config));
      const spool = createSpool({ connectionString: url, schema: config.schema, poolSize: config.poolSize, metrics, signingKeys: config.signingKeys });
      let metricsServer: { port: number; close(): Promise<void> } | undefined;
      try {
        await spool.migrate();
        if (metrics) {
          let server;
          try {
            server = await startMetricsServer(metrics, { host: config.host, port: config.metricsPort });
          } catch (error) {
            // The default port is taken by another `spool work` on this host (docs/worker.md recommends
            // several): serve on a free port rather than refuse. A port set on purpose stays an error.
            if (sources.metricsPort !== 'default' || !isPortInUse(error)) throw error;
            server = await startMetricsServer(metrics, { host: config.host, port: 0 });
            log.warn({ port: server.port, taken: config.metricsPort }, 'the default metrics port is taken (another spool work here?): serving GET /metrics on a free port; set SPOOL_METRICS_PORT to choose one');
          }
          metricsServer = server;
          log.info({ host: config.host, port: server.port }, 'metrics on GET /metrics');
        }
        if (config.limits) await spool.limits.applyConfig(config.limits);
        const worker = await spool.work({ jobs: withWebhookDelivery(spool, jobs, config), schedules, ...workerSettings(config), logger: log, handleSignals: false });
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
