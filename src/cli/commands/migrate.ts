import type { Command } from 'commander';
import { migrate } from '../../migrate/index.js';
import { commandConfig, requireDatabaseUrl } from '../settings.js';

/** `spool migrate`: create or upgrade the schema in DATABASE_URL. */
export function registerMigrate(program: Command): void {
  program
    .command('migrate')
    .description('create or upgrade Spool\'s schema (safe to run from many processes at once)')
    .option('--schema <name>', 'schema to migrate (env SPOOL_SCHEMA, default "spool")')
    .option('--json', 'print the result as JSON')
    .action(async (options: { schema?: string; json?: boolean }, command: Command) => {
      const { config } = commandConfig(command, { schema: options.schema });
      const report = await migrate({ connectionString: requireDatabaseUrl(config), schema: config.schema });
      if (options.json) {
        process.stdout.write(`${JSON.stringify(report)}\n`);
      } else if (report.applied.length === 0) {
        process.stdout.write(`schema is up to date (${report.current.length} migrations)\n`);
      } else {
        process.stdout.write(`applied ${report.applied.join(', ')}\n`);
      }
    });
}
