#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { loadConfigWithSources } from '../config.js';
import { explainDatabaseError } from '../db/errors.js';
import { SpoolError } from '../errors.js';
import { packageVersion } from '../package.js';
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
import { registerPrune } from './commands/prune.js';
import { registerDoctor } from './commands/doctor.js';
import { registerSchedules } from './commands/schedules.js';
import { registerLimits } from './commands/limits.js';
import { registerKeys } from './commands/keys.js';
import { registerWebhooks } from './commands/webhooks.js';
import { registerAudit } from './commands/audit.js';

const program = new Command()
  .name('spool')
  .description('Spool: a durable job queue that needs nothing but PostgreSQL')
  .version(packageVersion(), '-V, --version', 'print the version of spool-queue')
  .option('--config <file>', 'JSON file of settings (env SPOOL_CONFIG); flags and environment win over it')
  .showHelpAfterError()
  // Usage errors come back here, to be printed as every other failure is (set before the
  // commands are added, which inherit it).
  .exitOverride()
  .configureOutput({ outputError: () => {} });

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
registerPrune(program);
registerDoctor(program);
registerSchedules(program);
registerKeys(program);
registerWebhooks(program);
registerAudit(program);
registerLimits(program);
registerConfig(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError && error.exitCode === 0) {
    // --help, --version: already printed.
  } else {
    // Every failure is one line, `spool: <code>: <message>` (SPOOL_DEBUG=1 adds the stack).
    const failure = asSpoolError(error);
    process.stderr.write(`spool: ${failure.code}: ${failure.message}\n`);
    if (process.env.SPOOL_DEBUG && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
    process.exitCode = error instanceof CommanderError ? error.exitCode : 1;
  }
}

function asSpoolError(error: unknown): SpoolError {
  if (error instanceof SpoolError) return error;
  if (error instanceof CommanderError) return new SpoolError('usage', error.message.replace(/^error: /, ''));
  return explainDatabaseError(error, databaseUrl(), schemaName()) ?? new SpoolError('internal', (error as Error)?.message ?? String(error));
}

/** DATABASE_URL as the failed command saw it (flags aside), for naming the host in a connection error. */
function databaseUrl(): string | undefined {
  try {
    return loadConfigWithSources({ file: program.opts<{ config?: string }>().config }).config.databaseUrl;
  } catch {
    return process.env.DATABASE_URL;
  }
}

function schemaName(): string | undefined {
  try {
    return loadConfigWithSources({ file: program.opts<{ config?: string }>().config }).config.schema;
  } catch {
    return undefined;
  }
}
