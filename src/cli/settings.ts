import type { Command } from 'commander';
import { createSpool, type Spool } from '../client.js';
import { loadConfigWithSources, type LoadedConfig, type SettingKey, type SpoolConfig } from '../config.js';
import { ValidationError } from '../errors.js';

/**
 * The configuration a command runs with: its flags over the environment over
 * the `--config` file (a global option, or SPOOL_CONFIG) over the defaults.
 */
export function commandConfig(command: Command, flags: Partial<Record<SettingKey, string | boolean | undefined>> = {}): LoadedConfig {
  const { config: file } = command.optsWithGlobals<{ config?: string }>();
  return loadConfigWithSources({ file, flags });
}

/** DATABASE_URL, or a config error saying how to give it. */
export function requireDatabaseUrl(config: SpoolConfig): string {
  if (!config.databaseUrl) {
    throw new ValidationError(
      [{ path: 'DATABASE_URL', message: 'is not set: export DATABASE_URL=postgres://user:pass@host:5432/db (or databaseUrl in --config)' }],
      'config_invalid',
    );
  }
  return config.databaseUrl;
}

/** A client on DATABASE_URL (from the command's configuration) for an admin command; closed by `use`'s end. */
export async function withSpool<T>(command: Command, use: (spool: Spool) => Promise<T>): Promise<T> {
  const { config } = commandConfig(command);
  const spool = createSpool({ connectionString: requireDatabaseUrl(config), schema: config.schema, poolSize: 2 });
  try {
    return await use(spool);
  } finally {
    await spool.close();
  }
}
