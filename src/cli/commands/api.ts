import type { Command } from 'commander';
import { createApp } from '../../api/app.js';
import { startApiServer, type ApiServer } from '../../api/server.js';
import { createSpool, type Spool } from '../../client.js';
import type { SpoolConfig } from '../../config.js';
import type { Logger } from '../../observability/logger.js';
import { processObservability } from '../observability.js';
import { commandConfig, requireDatabaseUrl } from '../settings.js';
import { nextStopSignal } from '../worker-options.js';

/** Starts the HTTP API of `spool serve` and `spool api` and says where it listens. */
export async function startApi(
  config: SpoolConfig,
  spool: Spool,
  log: Logger,
  listenerConnected?: () => boolean,
): Promise<ApiServer> {
  const app = createApp({
    spool,
    logger: log,
    batchMax: config.batchMax,
    bodyLimitBytes: config.bodyLimitBytes,
    unknownKinds: config.unknownKinds,
    listenerConnected,
  });
  const server = await startApiServer(app, { host: config.host, port: config.port });
  const shown = config.host === '0.0.0.0' ? '127.0.0.1' : config.host;
  log.info({ host: config.host, port: server.port }, 'HTTP API listening');
  process.stdout.write(`spool API on http://${shown}:${server.port} (docs: /docs)\n`);
  return server;
}

/**
 * `spool api`: the HTTP API alone, no workers (scale it apart from them).
 * SIGTERM/SIGINT: stops accepting, lets requests finish, closes the pool; exit 0.
 */
export function registerApi(program: Command): void {
  program
    .command('api')
    .description('run the HTTP API only (no workers); needs DATABASE_URL')
    .option('--port <n>', 'port (env SPOOL_PORT, default 8080)')
    .option('--host <addr>', 'interface (env SPOOL_HOST, default 0.0.0.0)')
    .action(async (flags: { port?: string; host?: string }, command: Command) => {
      const { config } = commandConfig(command, flags);
      const url = requireDatabaseUrl(config);
      const observability = await processObservability(config);
      const { log } = observability;
      const spool = createSpool({ connectionString: url, schema: config.schema, poolSize: config.poolSize, metrics: observability.metrics });
      try {
        await spool.migrate();
        const server = await startApi(config, spool, log);
        await nextStopSignal(log);
        await server.close();
      } finally {
        await spool.close();
        await observability.stop();
      }
    });
}
