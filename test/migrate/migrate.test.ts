import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { runMigrations } from '../../src/migrate/migrate.js';
import { readMigrationFiles } from '../../src/migrate/files.js';
import { createSpool, MigrationError, ValidationError } from '../../src/index.js';
import { createDatabase, dropDatabase } from '../support/database-admin.js';
import { uniqueDatabaseName } from '../support/database.js';
import { runCli } from '../support/cli.js';

const serverUrl = inject('postgresAdminUrl');
const created: string[] = [];
const pools: postgres.Sql[] = [];

async function emptyDatabase(): Promise<{ url: string; sql: postgres.Sql }> {
  const name = uniqueDatabaseName('spool_mig');
  created.push(name);
  const url = await createDatabase(serverUrl, name);
  const sql = postgres(url, { max: 2, onnotice: () => {} });
  pools.push(sql);
  return { url, sql };
}

afterAll(async () => {
  await Promise.all(pools.map((sql) => sql.end({ timeout: 5 })));
  for (const name of created) await dropDatabase(serverUrl, name);
});

async function runMigrate(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const run = runCli(args, env);
  const code = await run.exited;
  return { code, ...run.output() };
}

describe('migrate', () => {
  it('applies every file once, records checksums, and creates nothing outside its schema', async () => {
    const { sql } = await emptyDatabase();
    const outside = () => sql`
      SELECT count(*)::int AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'spool')`;
    const [before] = await outside();
    const report = await runMigrations(sql, 'spool');
    const files = readMigrationFiles();
    expect(report.applied).toEqual(files.map((f) => f.name));
    const rows = await sql`SELECT version, name, checksum FROM spool.schema_migrations ORDER BY version`;
    expect(rows.map((r) => ({ ...r }))).toEqual(files.map((f) => ({ version: f.version, name: f.name, checksum: f.checksum })));
    const [after] = await outside();
    expect(after!.n).toBe(before!.n);
    const functions = await sql`
      SELECT count(*)::int AS n FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'`;
    expect(functions[0]!.n).toBe(0);

    const again = await runMigrations(sql, 'spool');
    expect(again.applied).toEqual([]);
  });

  it('applies the migration once when two processes start at the same time', async () => {
    const { url, sql } = await emptyDatabase();
    const [a, b] = await Promise.all([
      runMigrate(['migrate', '--json'], { DATABASE_URL: url }),
      runMigrate(['migrate', '--json'], { DATABASE_URL: url }),
    ]);
    expect(a.stderr).toBe('');
    expect(b.stderr).toBe('');
    expect([a.code, b.code]).toEqual([0, 0]);
    const applied = [JSON.parse(a.stdout).applied, JSON.parse(b.stdout).applied];
    const names = readMigrationFiles().map((f) => f.name);
    // Exactly one of the two applied the files; the other found them applied.
    expect(applied).toContainEqual(names);
    expect(applied).toContainEqual([]);
    const [{ n }] = (await sql`SELECT count(*)::int AS n FROM spool.schema_migrations`) as unknown as [{ n: number }];
    expect(n).toBe(names.length);
  });

  it('lets ten concurrent migrators race without error and applies each file once', async () => {
    const { url, sql } = await emptyDatabase();
    const racers = Array.from({ length: 10 }, () => postgres(url, { max: 1, onnotice: () => {} }));
    pools.push(...racers);
    const reports = await Promise.all(racers.map((racer) => runMigrations(racer, 'spool')));
    expect(reports.flatMap((r) => r.applied)).toEqual(readMigrationFiles().map((f) => f.name));
    const [{ n }] = (await sql`SELECT count(*)::int AS n FROM spool.schema_migrations`) as unknown as [{ n: number }];
    expect(n).toBe(readMigrationFiles().length);
  });

  it('refuses an applied migration whose text changed, and changes nothing', async () => {
    const { sql } = await emptyDatabase();
    await runMigrations(sql, 'spool');
    const files = readMigrationFiles().map((file, index) =>
      index === 0 ? { ...file, checksum: 'f'.repeat(64), text: `${file.text}\n-- edited` } : file,
    );
    const error = await runMigrations(sql, 'spool', files).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MigrationError);
    expect((error as MigrationError).code).toBe('migration_changed');
    expect((error as Error).message).toMatch(/0001_jobs\.sql changed after it was applied.*new numbered migration/);
    const rows = await sql`SELECT checksum FROM spool.schema_migrations WHERE version = 1`;
    expect(rows[0]!.checksum).toBe(readMigrationFiles()[0]!.checksum);
  });

  it('refuses a database that has a migration this version does not know', async () => {
    const { sql } = await emptyDatabase();
    await runMigrations(sql, 'spool');
    await sql`INSERT INTO spool.schema_migrations (version, name, checksum) VALUES (999, '0999_future.sql', 'x')`;
    const error = await runMigrations(sql, 'spool').catch((e: unknown) => e);
    expect((error as MigrationError).code).toBe('migration_unknown');
    expect((error as Error).message).toContain('0999_future.sql');
  });

  it('refuses a folder whose numbered files have a gap', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'spool-sql-'));
    await writeFile(join(dir, '0001_a.sql'), 'SELECT 1;');
    await writeFile(join(dir, '0003_c.sql'), 'SELECT 3;');
    expect(() => readMigrationFiles(dir)).toThrow(/0003_c\.sql is out of sequence: expected number 0002/);
    await rm(dir, { recursive: true });
  });

  it('installs into a configured schema and works there', async () => {
    const { url, sql } = await emptyDatabase();
    const spool = createSpool({ connectionString: url, schema: 'queue_x', poolSize: 2 });
    try {
      await spool.migrate();
      const { id } = await spool.enqueue('report.build', { day: 1 });
      expect((await spool.getJob(id))?.kind).toBe('report.build');
      const schemas = await sql`SELECT nspname FROM pg_namespace WHERE nspname IN ('spool', 'queue_x')`;
      expect(schemas.map((r) => r.nspname)).toEqual(['queue_x']);
      const [{ id: fromSql }] = (await sql`SELECT queue_x.enqueue('from.sql') AS id`) as unknown as [{ id: string }];
      expect((await spool.getJob(fromSql))?.state).toBe('available');
    } finally {
      await spool.close();
    }
  });

  it('rejects a schema name that is not a plain identifier, naming the field', () => {
    expect(() => createSpool({ connectionString: 'postgres://x@127.0.0.1/db', schema: 'spool"; DROP TABLE x; --' })).toThrow(
      ValidationError,
    );
    try {
      createSpool({ connectionString: 'postgres://x@127.0.0.1/db', schema: 'Bad-Name' });
    } catch (error) {
      expect((error as ValidationError).field).toBe('schema');
    }
  });

  it('spool migrate fails with a clear message and exit 1 when DATABASE_URL is missing', async () => {
    const result = await runMigrate(['migrate'], { DATABASE_URL: '' });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('DATABASE_URL');
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });
});
