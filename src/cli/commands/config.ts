import type { Command } from 'commander';
import { SETTINGS, redactedConfig, type SettingKey } from '../../config.js';
import { table, writeJson, writeText, type Column } from '../output.js';
import { commandConfig } from '../settings.js';

interface SettingLine {
  key: SettingKey;
  env: string;
  value: unknown;
  source: string;
}

/** A setting's value as it would be written: lists comma-separated, rates as count/ms, other objects as JSON. */
function shown(value: unknown): string {
  if (value === undefined) return '(unset)';
  if (value === null) return 'off';
  if (Array.isArray(value)) return value.join(',');
  if (typeof value === 'object') {
    const rate = value as { limit?: unknown; windowMs?: unknown };
    if (typeof rate.limit === 'number' && typeof rate.windowMs === 'number') return `${rate.limit}/${rate.windowMs}ms`;
    return JSON.stringify(value);
  }
  return String(value);
}

const CONFIG_COLUMNS: Column<SettingLine>[] = [
  { header: 'setting', cell: (s) => s.key },
  { header: 'env', cell: (s) => s.env },
  { header: 'value', cell: (s) => shown(s.value) },
  { header: 'source', cell: (s) => s.source },
];

/** `spool config check`: the effective configuration, each setting with where it came from. */
export function registerConfig(program: Command): void {
  program
    .command('config')
    .description('inspect the configuration')
    .command('check')
    .description('validate the configuration and print every setting with its source (flag, env, file, default); secrets masked')
    .option('--json', 'print { file, settings: { <key>: { value, source, env } } } as JSON')
    .action((options: { json?: boolean }, command: Command) => {
      const { config, sources, file } = commandConfig(command);
      const values = redactedConfig(config);
      const lines = (Object.keys(SETTINGS) as SettingKey[]).map((key) => ({
        key,
        env: SETTINGS[key].env,
        value: values[key],
        source: sources[key],
      }));
      if (options.json) {
        writeJson({ file: file ?? null, settings: Object.fromEntries(lines.map(({ key, ...line }) => [key, { ...line, value: line.value ?? null }])) });
      } else {
        writeText(`config file: ${file ?? 'none (--config or SPOOL_CONFIG)'}\n${table(CONFIG_COLUMNS, lines)}configuration is valid`);
      }
    });
}
