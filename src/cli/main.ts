#!/usr/bin/env node
import { Command } from 'commander';
import { SpoolError } from '../errors.js';
import { registerMigrate } from './commands/migrate.js';
import { registerWork } from './commands/work.js';
import { registerServe } from './commands/serve.js';

const program = new Command()
  .name('spool')
  .description('Spool: a durable job queue that needs nothing but PostgreSQL')
  .showHelpAfterError();

registerMigrate(program);
registerWork(program);
registerServe(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  // A message, not a stack trace (SPOOL_DEBUG=1 shows the stack).
  const message =
    error instanceof SpoolError
      ? `${error.code}: ${error.message}`
      : process.env.SPOOL_DEBUG
        ? ((error as Error).stack ?? String(error))
        : ((error as Error).message ?? String(error));
  process.stderr.write(`spool: ${message}\n`);
  process.exitCode = 1;
}
