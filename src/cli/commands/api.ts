import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { createApp } from '../../api/app.js';
import { defaultAllowedHosts, isLoopback } from '../../api/web-safety.js';
import { startApiServer, type ApiServer } from '../../api/server.js';
import { createSpool, type Spool } from '../../client.js';
import type { SpoolConfig } from '../../config.js';
import type { Logger } from '../../observability/logger.js';
import type { SpoolMetrics } from '../../observability/metrics.js';
import { processObservability } from '../observability.js';
import { commandConfig, requireDatabaseUrl } from '../settings.js';
import { nextStopSignal } from '../worker-options.js';

/** The Spool whose pool serves the API: its statements have the API's statement timeout (workers open their own pools, without one). */
export function apiSpool(config: SpoolConfig, url: string, metrics: SpoolMetrics | undefined): Spool {
  return createSpool({
    connectionString: url,
    schema: config.schema,
    poolSize: config.poolSize,
    statementTimeoutMs: config.apiStatementTimeoutMs,
    metrics,
    signingKeys: config.signingKeys,
  });
}

/** Starts the HTTP API of `spool serve` and `spool api` and says where it listens. */
export async function startApi(
  config: SpoolConfig,
  spool: Spool,
  log: Logger,
  listenerConnected?: () => boolean,
): Promise<ApiServer> {
  if (config.auth === 'off') {
    log.warn({ host: config.host }, 'SPOOL_AUTH=off: the API asks for no key; anyone who reaches the port can enqueue, cancel, purge and pause');
    process.stderr.write(`WARNING: SPOOL_AUTH=off: anyone who reaches ${config.host}:${config.port} controls this queue\n`);
  } else {
    await bootstrapAdminKey(config, spool, log);
  }
  await warnWithoutTenantRls(spool, log);
  const app = createApp({
    spool,
    logger: log,
    batchMax: config.batchMax,
    bodyLimitBytes: config.bodyLimitBytes,
    pageMaxBytes: config.pageMaxBytes,
    unknownKinds: config.unknownKinds,
    listenerConnected,
    auth: config.auth,
    docsPublic: config.docsPublic ?? isLoopback(config.host),
    allowedHosts: config.allowedHosts ?? defaultAllowedHosts(config.host),
    corsOrigins: config.corsOrigins ?? [],
    keyRateLimit: config.keyRateLimit,
    tenantRateLimit: config.tenantRateLimit ?? null,
    tenantPayloadMaxBytes: config.tenantPayloadMaxBytes,
  });
  const server = await startApiServer(app, {
    host: config.host,
    port: config.port,
    requestTimeoutMs: config.requestTimeoutMs,
    headersTimeoutMs: config.headersTimeoutMs,
  });
  const shown = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
  log.info({ host: config.host, port: server.port, auth: config.auth }, 'HTTP API listening');
  process.stdout.write(`spool API on http://${shown}:${server.port} (docs: /docs)\n`);
  return server;
}

/** Tenant-bound keys without the spool_tenant role: their requests are filtered in SQL, but row-level security cannot back that up. */
async function warnWithoutTenantRls(spool: Spool, log: Logger): Promise<void> {
  if (await spool.tenantRoleAvailable()) return;
  const [row] = await spool.sql<{ any: boolean }[]>`SELECT EXISTS (SELECT 1 FROM ${spool.sql(spool.schema)}.api_keys WHERE tenant IS NOT NULL AND revoked_at IS NULL) AS any`;
  if (row?.any) {
    log.warn('tenant-bound keys exist, but this database user cannot become the role spool_tenant: their requests are scoped by the SQL filters only, without row-level security (docs/security.md#tenants)');
  }
}

/**
 * The first start with auth on and no working admin key: on a loopback
 * address (the quick start) it makes one, prints it once and writes it next
 * to the data folder (mode 0600), so `npm start` stays one command. On any
 * other address it makes none (a key printed into a server's logs is a
 * leaked key) and says how to create one.
 */
async function bootstrapAdminKey(config: SpoolConfig, spool: Spool, log: Logger): Promise<void> {
  if (await spool.keys.hasActiveAdmin()) return;
  if (!isLoopback(config.host)) {
    log.warn('no admin API key yet: create one with `spool keys create --role admin` (every route but /healthz and /readyz answers 401 until then)');
    return;
  }
  const { key, apiKey } = await spool.keys.create({ role: 'admin', name: 'bootstrap (first start)' });
  const file = join(dirname(resolve(config.dataDir)), 'admin-key');
  try {
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, `${key}\n`, { mode: 0o600 });
    await chmod(file, 0o600);
  } catch (error) {
    log.warn({ err: error, file }, 'could not write the bootstrap admin key to a file; it is printed below only');
  }
  log.info({ key_id: apiKey.id, prefix: apiKey.prefix, file }, 'created the bootstrap admin API key (shown once on stdout)');
  process.stdout.write(`admin API key (shown once, also in ${file}): ${key}\n  curl -H "Authorization: Bearer $(cat ${file})" http://${config.host}:${config.port}/queues\n`);
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
    .option('--host <addr>', 'interface (env SPOOL_HOST, default 127.0.0.1)')
    .action(async (flags: { port?: string; host?: string }, command: Command) => {
      const { config } = commandConfig(command, flags);
      const url = requireDatabaseUrl(config);
      const observability = await processObservability(config);
      const { log } = observability;
      const spool = apiSpool(config, url, observability.metrics);
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
