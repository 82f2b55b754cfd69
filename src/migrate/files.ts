import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../package.js';
import { MigrationError } from '../errors.js';

/** One numbered file of `sql/`. */
export interface MigrationFile {
  version: number;
  name: string;
  /** sha256 of the text with line endings normalised, before substitution. */
  checksum: string;
  text: string;
}

const FILE_PATTERN = /^(\d{4})_[a-z0-9_]+\.sql$/;

/** The `sql/` folder shipped with the package, next to its package.json. */
export function migrationsDir(): string {
  const dir = join(packageRoot(), 'sql');
  if (!existsSync(join(dir, '0001_jobs.sql'))) throw new MigrationError('migration_failed', `cannot find the migrations of spool-queue in ${dir}`);
  return dir;
}

export function checksumOf(text: string): string {
  return createHash('sha256').update(text.replace(/\r\n/g, '\n')).digest('hex');
}

/** The migration files in version order; refuses gaps and duplicate numbers. */
export function readMigrationFiles(dir = migrationsDir()): MigrationFile[] {
  const files = readdirSync(dir)
    .filter((name) => FILE_PATTERN.test(name))
    .sort()
    .map((name) => {
      const text = readFileSync(join(dir, name), 'utf8');
      return { version: Number(name.slice(0, 4)), name, checksum: checksumOf(text), text };
    });
  files.forEach((file, index) => {
    if (file.version !== index + 1) {
      throw new MigrationError('migration_failed', `migration ${file.name} is out of sequence: expected number ${String(index + 1).padStart(4, '0')}`);
    }
  });
  return files;
}

/** The file's SQL for one schema: placeholders replaced by quoted names. */
export function renderMigration(text: string, quotedSchema: string, channel: string): string {
  return text.replaceAll(':SPOOL_SCHEMA', quotedSchema).replaceAll(':SPOOL_CHANNEL', `'${channel}'`);
}
