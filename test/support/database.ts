import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { afterAll, beforeAll, inject } from 'vitest';
import { createSpool, type Spool } from '../../src/index.js';
import { createDatabase, dropDatabase } from './database-admin.js';
import './context.js';

/** A fresh database of this test file's own, with a pool and a Spool client on it. */
export interface TestDatabase {
  /** postgres:// URL of the database. */
  url: string;
  /** A postgres.js pool on it, for assertions and setup. */
  sql: postgres.Sql;
  /** A Spool client on it (schema `spool`, migrated unless `empty`). */
  spool: Spool;
}

/**
 * Gives the calling test file its own database, cloned from the migrated
 * template (or empty with `{ empty: true }`), created before its tests and
 * dropped after them, so files run in parallel without touching each other.
 */
export function useTestDatabase(options: { empty?: boolean } = {}): TestDatabase {
  const db = {} as TestDatabase;
  const serverUrl = inject('postgresAdminUrl');
  const name = `spool_t_${randomBytes(5).toString('hex')}`;
  beforeAll(async () => {
    db.url = await createDatabase(serverUrl, name, options.empty ? undefined : inject('templateDatabase'));
    db.sql = postgres(db.url, { max: 5, onnotice: () => {} });
    db.spool = createSpool({ connectionString: db.url, poolSize: 5 });
  });
  afterAll(async () => {
    await db.spool?.close();
    await db.sql?.end({ timeout: 5 });
    await dropDatabase(serverUrl, name);
  });
  return db;
}

/** A unique database name for tests that create more databases themselves. */
export function uniqueDatabaseName(prefix = 'spool_t'): string {
  return `${prefix}_${randomBytes(5).toString('hex')}`;
}
