import type postgres from 'postgres';
import { MigrationError } from '../errors.js';
import { channelFor, quoteSchema } from '../db/identifier.js';
import { readMigrationFiles, renderMigration, type MigrationFile } from './files.js';

/** First key of the advisory lock that serialises migrations ("SPOL"); the second is hashtext(schema). */
export const MIGRATION_LOCK_CLASS = 0x53504f4c;

/** What `migrate` did. */
export interface MigrationReport {
  /** Files applied by this call, in order. */
  applied: string[];
  /** Every file the schema now has. */
  current: string[];
}

/**
 * Brings the schema up to date, in one transaction under an advisory lock:
 * processes that start together wait for each other, and each file is
 * applied exactly once. An applied file whose text changed since is refused,
 * as is a database that has migrations this version of Spool does not know.
 */
export async function runMigrations(
  sql: postgres.Sql,
  schema: string,
  files: MigrationFile[] = shippedMigrations(),
): Promise<MigrationReport> {
  const q = quoteSchema(schema);
  const channel = channelFor(schema);
  return sql.begin(async (tx) => {
    // A pool made for the API carries a statement_timeout; a migration may take longer.
    await tx`SET LOCAL statement_timeout = 0`;
    await tx`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_CLASS}::int, hashtext(${schema}))`;
    await tx.unsafe(`CREATE SCHEMA IF NOT EXISTS ${q}`);
    await tx.unsafe(`
      CREATE TABLE IF NOT EXISTS ${q}.schema_migrations (
        version    integer PRIMARY KEY,
        name       text NOT NULL,
        checksum   text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`);
    const rows = await tx.unsafe<{ version: number; name: string; checksum: string }[]>(
      `SELECT version, name, checksum FROM ${q}.schema_migrations ORDER BY version`,
    );
    const known = new Map(files.map((file) => [file.version, file]));
    for (const row of rows) {
      const file = known.get(row.version);
      if (!file) {
        throw new MigrationError(
          'migration_unknown',
          `schema "${schema}" has migration ${row.name}, which this version of Spool does not have: run the Spool version that applied it, or newer`,
        );
      }
      if (file.checksum !== row.checksum) {
        throw new MigrationError(
          'migration_changed',
          `migration ${file.name} changed after it was applied to schema "${schema}" (applied checksum ${row.checksum.slice(0, 12)}, file now ${file.checksum.slice(0, 12)}): restore the file and put the change in a new numbered migration`,
        );
      }
    }
    const done = new Set(rows.map((row) => row.version));
    const applied: string[] = [];
    for (const file of files) {
      if (done.has(file.version)) continue;
      try {
        await tx.unsafe(renderMigration(file.text, q, channel)).simple();
      } catch (error) {
        throw new MigrationError('migration_failed', `migration ${file.name} failed on schema "${schema}": ${(error as Error).message}`, {
          cause: error,
        });
      }
      await tx.unsafe(`INSERT INTO ${q}.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)`, [
        file.version,
        file.name,
        file.checksum,
      ]);
      applied.push(file.name);
    }
    return { applied, current: files.map((file) => file.name) };
  });
}

/** Whether a schema is up to date with this version's migration files. */
export interface MigrationStatus {
  /** True when every file is applied (and nothing unknown is). */
  current: boolean;
  applied: string[];
  pending: string[];
}

let shipped: MigrationFile[] | undefined;
/** The migrations this version ships, read once: they do not change while it runs, and /readyz asks every few seconds. */
function shippedMigrations(): MigrationFile[] {
  return (shipped ??= readMigrationFiles());
}

/** Reads schema_migrations without changing anything (`spool.migrationStatus()`, /readyz). */
export async function migrationStatus(
  sql: postgres.Sql,
  schema: string,
  files: MigrationFile[] = shippedMigrations(),
): Promise<MigrationStatus> {
  const q = quoteSchema(schema);
  const [{ present }] = await sql.unsafe<[{ present: boolean }]>(`SELECT to_regclass($1) IS NOT NULL AS present`, [`${q}.schema_migrations`]);
  const rows = present ? await sql.unsafe<{ name: string }[]>(`SELECT name FROM ${q}.schema_migrations ORDER BY version`) : [];
  const applied = rows.map((row) => row.name);
  const pending = files.map((file) => file.name).filter((name) => !applied.includes(name));
  return { current: pending.length === 0 && applied.length === files.length, applied, pending };
}
