import { resolve } from 'node:path';
import type { Command } from 'commander';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../db/embedded.js';
import { processObservability } from '../observability.js';
import { loadTaskFolder } from '../../worker/tasks.js';
import type { Worker } from '../../worker/worker.js';
import type { ApiServer } from '../../api/server.js';
import { nextStopSignal, withWebhookDelivery, withWorkerFlags, workerSettings, type WorkerFlags } from '../worker-options.js';
import { commandConfig } from '../settings.js';
import { apiSpool, startApi } from './api.js';
import { redactUrl } from '../../config.js';

/** Signals closer than this to the first one are its echo (npm forwarding a terminal's Ctrl-C), not a second request. */
const SAME_SIGNAL_MS = 1_000;

/**
 * `spool serve`: the HTTP API, workers for a task folder and maintenance in
 * one process (the container's default command). With no DATABASE_URL it
 * starts an embedded PostgreSQL with its data under SPOOL_DATA_DIR
 * (./.spool/pgdata), kept across restarts, in its own process group (a
 * terminal's Ctrl-C reaches Spool only). SIGTERM/SIGINT: the API stops
 * accepting, workers drain within the grace and write their outcomes, pools
 * close, and the embedded database stops last; exit code 0. A second signal
 * stops the database at once and exits 130.
 */
export function registerServe(program: Command): void {
  withWorkerFlags(
    program
      .command('serve')
      .description('run the HTTP API, workers and maintenance; with no DATABASE_URL, on an embedded PostgreSQL')
      .option('--port <n>', 'HTTP port (env SPOOL_PORT, default 8080)')
      .option('--host <addr>', 'HTTP interface (env SPOOL_HOST, default 127.0.0.1)'),
  ).action(async (flags: WorkerFlags & { port?: string; host?: string }, command: Command) => {
    // Everything is validated before anything starts.
    const { config } = commandConfig(command, flags);
    const observability = await processObservability(config);
    const { log } = observability;
    const { jobs, schedules } = config.tasks ? await loadTaskFolder(config.tasks) : { jobs: [], schedules: [] };
    if (jobs.length === 0) log.warn('no --tasks (SPOOL_TASKS): this process runs the API only, no workers or maintenance');

    let embedded: EmbeddedPostgres | undefined;
    let url = config.databaseUrl;
    if (!url) {
      const dataDir = resolve(config.dataDir);
      embedded = await startEmbeddedPostgres({ dataDir, port: config.pgPort });
      url = embedded.url;
      log.info({ url: redactUrl(url), data_dir: dataDir }, 'embedded PostgreSQL started (no DATABASE_URL): psql it with this URL');
      process.stdout.write(`embedded PostgreSQL: ${url} (data in ${dataDir})\n`);
    }
    const spool = apiSpool(config, url, observability.metrics);
    let worker: Worker | undefined;
    let server: ApiServer | undefined;
    try {
      await spool.migrate();
      if (config.limits) await spool.limits.applyConfig(config.limits);
      worker = await spool.work({ jobs: withWebhookDelivery(spool, jobs, config), schedules, ...workerSettings(config), logger: log, handleSignals: false });
      server = await startApi(config, spool, log, worker ? () => worker!.listening : undefined);
      if (worker) process.stdout.write(`spool serving ${worker.kinds.join(', ')} from ${worker.queues.join(', ')}\n`);
      await nextStopSignal(log);
      const stoppingSince = performance.now();
      // A second Ctrl-C while draining: stop now, but never leave the embedded server behind.
      // Jobs still running come back after their lease, as after a crash. A signal within a
      // second of the first is the same Ctrl-C twice, not a second one: under `npm start` the
      // terminal signals the whole group and npm forwards it again (seen: npm start, one
      // Ctrl-C, no drain).
      const hurry = (signal: NodeJS.Signals) => {
        if (performance.now() - stoppingSince < SAME_SIGNAL_MS) return;
        process.off('SIGINT', hurry);
        process.off('SIGTERM', hurry);
        log.warn({ signal }, 'second signal: exiting without waiting for running jobs');
        void (embedded?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
      };
      process.on('SIGINT', hurry);
      process.on('SIGTERM', hurry);
    } finally {
      await server?.close();
      await worker?.stop();
      await spool.close();
      await embedded?.stop();
      await observability.stop();
    }
  });
}
