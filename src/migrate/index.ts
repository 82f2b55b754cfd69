import { openPool } from '../db/pool.js';
import { checkSchemaName, SCHEMA_DEFAULT } from '../db/identifier.js';
import { ValidationError } from '../errors.js';
import type postgres from 'postgres';
import { runMigrations, type MigrationReport } from './migrate.js';

/**
 * Creates or upgrades Spool's schema without a client.
 *
 * @example
 * await migrate({ connectionString: process.env.DATABASE_URL });
 */
export async function migrate(options: { connectionString?: string; sql?: postgres.Sql; schema?: string } = {}): Promise<MigrationReport> {
  const schema = checkSchemaName(options.schema ?? SCHEMA_DEFAULT);
  if (options.sql) return runMigrations(options.sql, schema);
  const url = options.connectionString ?? process.env.DATABASE_URL;
  if (!url) {
    throw new ValidationError([{ path: 'connectionString', message: 'no database given: pass connectionString or set DATABASE_URL' }]);
  }
  const sql = openPool(url, { max: 1 });
  try {
    return await runMigrations(sql, schema);
  } finally {
    await sql.end({ timeout: 5 });
  }
}
