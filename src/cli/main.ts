#!/usr/bin/env node
import { Command } from 'commander';
import { SpoolError } from '../errors.js';
import { registerMigrate } from './commands/migrate.js';

const program = new Command()
  .name('spool')
  .description('Spool: a durable job queue that needs nothing but PostgreSQL')
  .showHelpAfterError();

registerMigrate(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  // Expected failures get their message, not a stack trace.
  const message = error instanceof SpoolError ? `${error.code}: ${error.message}` : (error as Error).stack ?? String(error);
  process.stderr.write(`spool: ${message}\n`);
  process.exitCode = 1;
}
