import type { Command } from 'commander';
import { loadConfig } from '../../config.js';
import { migrate } from '../../migrate/index.js';
import { ValidationError } from '../../errors.js';

/** `spool migrate`: create or upgrade the schema in DATABASE_URL. */
export function registerMigrate(program: Command): void {
  program
    .command('migrate')
    .description('create or upgrade Spool\'s schema (safe to run from many processes at once)')
    .option('--schema <name>', 'schema to migrate (env SPOOL_SCHEMA, default "spool")')
    .option('--json', 'print the result as JSON')
    .action(async (options: { schema?: string; json?: boolean }) => {
      const config = loadConfig();
      if (!config.databaseUrl) {
        throw new ValidationError([{ path: 'DATABASE_URL', message: 'is not set: export DATABASE_URL=postgres://user:pass@host:5432/db' }], 'config_invalid');
      }
      const report = await migrate({ connectionString: config.databaseUrl, schema: options.schema ?? config.schema });
      if (options.json) {
        process.stdout.write(`${JSON.stringify(report)}\n`);
      } else if (report.applied.length === 0) {
        process.stdout.write(`schema is up to date (${report.current.length} migrations)\n`);
      } else {
        process.stdout.write(`applied ${report.applied.join(', ')}\n`);
      }
    });
}
