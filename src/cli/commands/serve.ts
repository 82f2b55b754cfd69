import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { createSpool } from '../../client.js';
import { ValidationError } from '../../errors.js';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../db/embedded.js';
import { createLogger } from '../../observability/logger.js';
import { loadTasks } from '../../worker/tasks.js';
import { configWithFlags, requireTasks, stopOnSignal, withWorkerFlags, workerSettings, type WorkerFlags } from '../worker-options.js';

/** Port of the embedded PostgreSQL unless SPOOL_PG_PORT says otherwise (stable, so the printed URL stays valid). */
export const EMBEDDED_PORT_DEFAULT = 54329;

/**
 * `spool serve`: one process with workers and maintenance for a task folder;
 * with no DATABASE_URL it starts an embedded PostgreSQL with its data under
 * SPOOL_DATA_DIR (./.spool/pgdata), kept across restarts. SIGTERM/SIGINT:
 * workers drain, then the database stops; exit code 0.
 * (The HTTP API joins this command in the server issue.)
 */
export function registerServe(program: Command): void {
  withWorkerFlags(
    program.command('serve').description('run workers and maintenance; with no DATABASE_URL, on an embedded PostgreSQL'),
  ).action(async (flags: WorkerFlags) => {
    const config = configWithFlags(flags);
    const port = Number(process.env.SPOOL_PG_PORT ?? EMBEDDED_PORT_DEFAULT);
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new ValidationError(
        [{ path: 'SPOOL_PG_PORT', message: `expected a TCP port (1-65535), got ${JSON.stringify(process.env.SPOOL_PG_PORT)}` }],
        'config_invalid',
      );
    }
    const log = createLogger();
    const jobs = await loadTasks(requireTasks(config));
    let embedded: EmbeddedPostgres | undefined;
    let url = config.databaseUrl;
    if (!url) {
      const dataDir = resolve(process.env.SPOOL_DATA_DIR ?? '.spool/pgdata');
      await mkdir(resolve(dataDir, '..'), { recursive: true });
      embedded = await startEmbeddedPostgres({ dataDir, port });
      url = embedded.url;
      log.info({ url, data_dir: dataDir }, 'embedded PostgreSQL started (no DATABASE_URL): psql it with this URL');
      process.stdout.write(`embedded PostgreSQL: ${url} (data in ${dataDir})\n`);
    }
    const spool = createSpool({ connectionString: url, schema: config.schema });
    try {
      await spool.migrate();
      const worker = await spool.work({ jobs, ...workerSettings(config), logger: log, handleSignals: false });
      process.stdout.write(`spool serving ${worker.kinds.join(', ')} from ${worker.queues.join(', ')}\n`);
      await stopOnSignal(worker, log);
    } finally {
      await spool.close();
      await embedded?.stop();
    }
  });
}
