#!/usr/bin/env node
import { Command } from 'commander';
import { SpoolError } from '../errors.js';
import { registerMigrate } from './commands/migrate.js';
import { registerWork } from './commands/work.js';
import { registerServe } from './commands/serve.js';
import { registerApi } from './commands/api.js';
import { registerStats } from './commands/stats.js';
import { registerPeek } from './commands/peek.js';
import { registerJob } from './commands/job.js';
import { registerDlq } from './commands/dlq.js';
import { registerQueue } from './commands/queue.js';
import { registerEnqueue } from './commands/enqueue.js';
import { registerConfig } from './commands/config.js';
import { registerKinds } from './commands/kinds.js';

const program = new Command()
  .name('spool')
  .description('Spool: a durable job queue that needs nothing but PostgreSQL')
  .option('--config <file>', 'JSON file of settings (env SPOOL_CONFIG); flags and environment win over it')
  .showHelpAfterError();

registerMigrate(program);
registerWork(program);
registerServe(program);
registerApi(program);
registerStats(program);
registerPeek(program);
registerJob(program);
registerDlq(program);
registerQueue(program);
registerEnqueue(program);
registerKinds(program);
registerConfig(program);

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
