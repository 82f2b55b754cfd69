import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, loadConfigWithSources, redactedConfig, SETTINGS } from '../../src/config.js';
import { ValidationError } from '../../src/errors.js';
import { runCli } from '../support/cli.js';

let folder: string;
beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'spool-config-'));
});
afterAll(async () => {
  await rm(folder, { recursive: true, force: true });
});

async function configFile(name: string, content: string): Promise<string> {
  const path = join(folder, name);
  await writeFile(path, content);
  return path;
}

function configError(run: () => unknown): ValidationError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).code).toBe('config_invalid');
    return error as ValidationError;
  }
  throw new Error('expected a configuration error');
}

describe('loadConfig', () => {
  it('defaults every setting that has one', () => {
    const config = loadConfig({ env: {} });
    expect(config).toMatchObject({ schema: 'spool', concurrency: 10, port: 8080, host: '127.0.0.1', auth: 'keys', bodyLimitBytes: 1048576, batchMax: 1000, pgPort: 54329, logLevel: 'info' });
    expect(config.databaseUrl).toBeUndefined();
  });

  it('flags win over the environment, which wins over the file', async () => {
    const file = await configFile('layers.json', JSON.stringify({ concurrency: 5, port: 9000, queues: ['a', 'b'], logLevel: 'debug' }));
    const { config, sources } = loadConfigWithSources({ env: { SPOOL_PORT: '9100', SPOOL_CONCURRENCY: '7' }, file, flags: { concurrency: '9' } });
    expect(config).toMatchObject({ concurrency: 9, port: 9100, queues: ['a', 'b'], logLevel: 'debug' });
    expect(sources).toMatchObject({ concurrency: 'flag', port: 'env', queues: 'file', logLevel: 'file', schema: 'default' });
  });

  it('a bad type names the variable, the value and what is expected', () => {
    const error = configError(() => loadConfig({ env: { SPOOL_CONCURRENCY: 'abc' } }));
    expect(error.message).toBe('SPOOL_CONCURRENCY: expected a positive integer, got "abc"');
  });

  it('a true/false setting takes true, false, 1 or 0 from the environment and a boolean from a flag', () => {
    expect(loadConfig({ env: { SPOOL_REMOVE_ON_COMPLETE: 'true' } }).removeOnComplete).toBe(true);
    expect(loadConfig({ env: { SPOOL_REMOVE_ON_COMPLETE: '0' } }).removeOnComplete).toBe(false);
    expect(loadConfig({ env: { SPOOL_REMOVE_ON_COMPLETE: 'false' }, flags: { removeOnComplete: true } }).removeOnComplete).toBe(true);
    expect(configError(() => loadConfig({ env: { SPOOL_REMOVE_ON_COMPLETE: 'yes' } })).message).toBe(
      'SPOOL_REMOVE_ON_COMPLETE: expected true or false, got "yes"',
    );
  });

  it('a value out of range names the key; every bad key is reported at once', () => {
    const error = configError(() => loadConfig({ env: { SPOOL_PORT: '70000', SPOOL_BODY_LIMIT_BYTES: '10', SPOOL_LOG_LEVEL: 'loud' } }));
    expect(error.issues.map((i) => i.path)).toEqual(['SPOOL_PORT', 'SPOOL_BODY_LIMIT_BYTES', 'SPOOL_LOG_LEVEL']);
    expect(error.message).toContain('SPOOL_PORT: expected a TCP port');
    expect(error.message).toContain('SPOOL_LOG_LEVEL: expected one of fatal, error, warn, info, debug, trace, silent, got "loud"');
  });

  it('a bad value in the file names the file key and the file', async () => {
    const file = await configFile('bad-type.json', JSON.stringify({ concurrency: -1, databaseUrl: 'mysql://x' }));
    const error = configError(() => loadConfig({ env: {}, file }));
    expect(error.issues.map((i) => i.path)).toEqual([`databaseUrl (in ${file})`, `concurrency (in ${file})`]);
    expect(error.message).toContain('expected a postgres:// URL');
    expect(error.message).toContain('concurrency (in');
  });

  it('an unknown key in the file is refused, naming it', async () => {
    const file = await configFile('unknown.json', JSON.stringify({ concurency: 5 }));
    const error = configError(() => loadConfig({ env: {}, file }));
    expect(error.field).toBe(`concurency (in ${file})`);
    expect(error.message).toMatch(/unknown setting; expected one of databaseUrl, schema/);
  });

  it('an unreadable, malformed or non-object file is refused, naming --config', async () => {
    const missing = configError(() => loadConfig({ env: {}, file: join(folder, 'missing.json') }));
    expect(missing.message).toMatch(/^--config: cannot read .*missing\.json \(ENOENT\)/);
    const notJson = await configFile('not-json.json', '{ concurrency: 5 ');
    expect(configError(() => loadConfig({ env: {}, file: notJson })).message).toMatch(/^--config: .* is not valid JSON/);
    const array = await configFile('array.json', '[]');
    expect(configError(() => loadConfig({ env: {}, file: array })).message).toMatch(/must hold a JSON object of settings/);
  });

  it('SPOOL_CONFIG names the file when --config does not', async () => {
    const file = await configFile('from-env.json', JSON.stringify({ batchMax: 50 }));
    expect(loadConfig({ env: { SPOOL_CONFIG: file } }).batchMax).toBe(50);
  });

  it('redacts the database password for printing', () => {
    const config = loadConfig({ env: { DATABASE_URL: 'postgres://app:s3cret@db:5432/app' } });
    expect(redactedConfig(config).databaseUrl).toBe('postgres://app:***@db:5432/app');
  });

  it('documents every setting in .env.example with its variable', async () => {
    const { readFile } = await import('node:fs/promises');
    const example = await readFile('.env.example', 'utf8');
    for (const setting of Object.values(SETTINGS)) expect(example).toContain(`${setting.env}=`);
  });
});

describe('spool serve with invalid configuration', () => {
  it('exits 1 before touching the database, naming the key', async () => {
    const file = await configFile('serve-bad.json', JSON.stringify({ port: 'eighty' }));
    // DATABASE_URL points at nothing: an attempt to connect would fail differently, and slowly.
    const run = runCli(['--config', file, 'serve', '--tasks', 'examples/tasks'], { DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none' });
    expect(await run.exited).toBe(1);
    expect(run.output().stderr).toContain(`config_invalid: port (in ${file}): expected a TCP port (0-65535; 0 picks a free one), got "eighty"`);
    expect(run.output().stdout).toBe('');
  });

  it('a bad flag value names the flag', async () => {
    const run = runCli(['serve', '--tasks', 'examples/tasks', '--concurrency', '0'], { DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none' });
    expect(await run.exited).toBe(1);
    expect(run.output().stderr).toContain('--concurrency: expected a positive integer, got "0"');
  });
});
