import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { LIST_BYTES_DEFAULT } from './queries/list.js';
import { ValidationError, type FieldIssue } from './errors.js';
import { SCHEMA_DEFAULT } from './db/identifier.js';
import { POOL_SIZE_DEFAULT } from './db/pool.js';
import { CONCURRENCY_DEFAULT, SHUTDOWN_GRACE_MS_DEFAULT } from './worker/worker.js';
import { LOG_FORMATS } from './observability/logger.js';
import { NAME_PATTERN } from './job-fields.js';
import { UNKNOWN_KINDS } from './kinds/catalog.js';
import { limitsConfigSchema, parseRate } from './flow/limits.js';
import { signingKeysSchema } from './signing.js';

/** Port of the HTTP API unless SPOOL_PORT says otherwise. */
export const PORT_DEFAULT = 8080;
/** Interface the HTTP API listens on: this machine only (a container sets SPOOL_HOST=0.0.0.0). */
export const HOST_DEFAULT = '127.0.0.1';
/** Largest request body the API reads (1 MiB); more is answered 413. */
export const BODY_LIMIT_BYTES_DEFAULT = 1024 * 1024;
/** statement_timeout of the API's pool: a listing or purge that runs longer is cancelled (503). */
export const API_STATEMENT_TIMEOUT_MS_DEFAULT = 10_000;
/** A client has this long to send its whole request. */
export const REQUEST_TIMEOUT_MS_DEFAULT = 30_000;
/** A client has this long to send its request headers. */
export const HEADERS_TIMEOUT_MS_DEFAULT = 10_000;
/** Requests one API key may make per window, summed over API processes (ADR 0008). */
export const KEY_RATE_LIMIT_DEFAULT = { limit: 10_000, windowMs: 1000 };

const REQUEST_RATE_RULE = 'expected requests per window such as 1000/1s or 60000/1m, or off';
const requestRate = z
  .union([
    z.string().transform((text, ctx) => {
      if (text.trim() === 'off') return null;
      const rate = parseRate(text);
      if (!rate || rate.limit < 1 || rate.limit > 10_000_000 || rate.windowMs < 1000 || rate.windowMs > 86_400_000) {
        ctx.addIssue({ code: 'custom', message: `${REQUEST_RATE_RULE} (1-10000000 requests, a window of 1 s to a day)` });
        return z.NEVER;
      }
      return rate;
    }),
    z.null(),
  ], { error: REQUEST_RATE_RULE });
/** Most jobs in one `POST /jobs/batch`. */
export const BATCH_MAX_DEFAULT = 1000;
/** Port of the embedded PostgreSQL (stable, so the printed URL stays valid across restarts). */
export const EMBEDDED_PORT_DEFAULT = 54329;
/** Where the embedded PostgreSQL keeps its data. */
export const DATA_DIR_DEFAULT = '.spool/pgdata';
export const LOG_LEVEL_DEFAULT = 'info';
/** Port of `spool work`'s GET /metrics (the OpenTelemetry Prometheus exporter's customary port). */
export const METRICS_PORT_DEFAULT = 9464;
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

// Each setting accepts its JSON type (config file) or a string (environment,
// flags), so one schema validates every source.
const wholeNumber = (rule: string, min: number, max: number) =>
  z.union([z.number(), z.string().regex(/^\s*-?[0-9]+\s*$/).transform(Number)], { error: rule }).pipe(
    z.number().int({ error: rule }).min(min, { error: rule }).max(max, { error: rule }),
  );
const flag = (rule: string) =>
  z.union([z.boolean(), z.enum(['true', 'false', '1', '0']).transform((s) => s === 'true' || s === '1')], { error: rule });
const QUEUES_RULE = 'expected queue names separated by commas, e.g. "default,mail"';
const HOSTS_RULE = 'expected host names separated by commas, e.g. "spool.internal,localhost", or * for any';
const ORIGINS_RULE = 'expected origins separated by commas, e.g. "https://admin.example.com,http://localhost:3000"';

/**
 * Every setting, its environment variable and its default: the one source
 * of `spool config check`, docs/configuration.md and .env.example.
 */
export const SETTINGS = {
  databaseUrl: {
    env: 'DATABASE_URL',
    secret: true,
    schema: z.string().regex(/^postgres(ql)?:\/\//, { error: 'expected a postgres:// URL, e.g. postgres://user:pass@host:5432/db' }),
    describe: 'PostgreSQL to use; unset: `spool serve` starts an embedded one',
  },
  schema: {
    env: 'SPOOL_SCHEMA',
    default: SCHEMA_DEFAULT,
    schema: z.string().regex(/^[a-z_][a-z0-9_]{0,57}$/, { error: 'expected 1-58 lowercase letters, digits and _, starting with a letter or _' }),
    describe: 'schema that holds Spool\'s tables',
  },
  tasks: {
    env: 'SPOOL_TASKS',
    schema: z.string({ error: 'expected a folder path' }).min(1, { error: 'expected a folder path' }),
    describe: 'folder of <kind>.js handlers (serve, work)',
  },
  queues: {
    env: 'SPOOL_QUEUES',
    schema: z
      .union([z.string().transform((s) => s.split(',')), z.array(z.string())], { error: QUEUES_RULE })
      .pipe(z.array(z.string().regex(NAME_PATTERN, { error: QUEUES_RULE })).min(1, { error: QUEUES_RULE })),
    describe: 'queues to work, comma-separated (default: the tasks\' queues)',
  },
  concurrency: {
    env: 'SPOOL_CONCURRENCY',
    default: CONCURRENCY_DEFAULT,
    schema: wholeNumber('expected a positive integer', 1, 10_000),
    describe: 'jobs a worker process runs at once',
  },
  shutdownGraceMs: {
    env: 'SPOOL_SHUTDOWN_GRACE_MS',
    default: SHUTDOWN_GRACE_MS_DEFAULT,
    schema: wholeNumber('expected milliseconds as a whole number >= 0', 0, 2_147_483_647),
    describe: 'on SIGTERM, how long running jobs may finish before they are handed back',
  },
  removeOnComplete: {
    env: 'SPOOL_REMOVE_ON_COMPLETE',
    default: false,
    schema: flag('expected true or false'),
    describe: 'delete a completed job\'s row instead of keeping it (its result is not stored); a job kind\'s own removeOnComplete wins',
  },
  host: {
    env: 'SPOOL_HOST',
    default: HOST_DEFAULT,
    schema: z.string().min(1, { error: 'expected an interface address, e.g. 127.0.0.1 or 0.0.0.0' }),
    describe: 'interface the HTTP API listens on',
  },
  auth: {
    env: 'SPOOL_AUTH',
    default: 'keys',
    schema: z.enum(['keys', 'off'], { error: 'expected keys (every route but /healthz and /readyz needs an API key) or off (none does: only behind your own auth)' }),
    describe: 'keys: the API asks for an API key (spool keys create); off: it asks for none (logged as a warning)',
  },
  allowedHosts: {
    env: 'SPOOL_ALLOWED_HOSTS',
    schema: z
      .union([z.string().transform((s) => s.split(',').map((h) => h.trim()).filter(Boolean)), z.array(z.string())], { error: HOSTS_RULE })
      .pipe(z.array(z.string().regex(/^(\*|[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])$/, { error: HOSTS_RULE })).min(1, { error: HOSTS_RULE })),
    describe: 'host names the API answers to (Host header), comma-separated, * for any (default: localhost names and SPOOL_HOST; any when SPOOL_HOST is 0.0.0.0 or ::)',
  },
  corsOrigins: {
    env: 'SPOOL_CORS_ORIGINS',
    schema: z
      .union([z.string().transform((s) => s.split(',').map((o) => o.trim()).filter(Boolean)), z.array(z.string())], { error: ORIGINS_RULE })
      .pipe(z.array(z.string().regex(/^https?:\/\/[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^https?:\/\/\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$/, { error: ORIGINS_RULE }))),
    describe: 'browser origins allowed to call the API (CORS), comma-separated (default: none)',
  },
  webhookAllowPrivate: {
    env: 'SPOOL_WEBHOOK_ALLOW_PRIVATE',
    default: false,
    schema: flag('expected true or false'),
    describe: 'let per-job webhook URLs (the webhook job option) reach private and loopback addresses (refused by default: SSRF); subscriptions take --allow-private each',
  },
  docsPublic: {
    env: 'SPOOL_DOCS_PUBLIC',
    schema: flag('expected true or false'),
    describe: 'serve GET /docs and /openapi.json without an API key (they hold no data); default: true on a loopback SPOOL_HOST, false otherwise',
  },
  port: {
    env: 'SPOOL_PORT',
    default: PORT_DEFAULT,
    schema: wholeNumber('expected a TCP port (0-65535; 0 picks a free one)', 0, 65_535),
    describe: 'port of the HTTP API',
  },
  bodyLimitBytes: {
    env: 'SPOOL_BODY_LIMIT_BYTES',
    default: BODY_LIMIT_BYTES_DEFAULT,
    schema: wholeNumber('expected a size in bytes from 1024 to 104857600', 1024, 100 * 1024 * 1024),
    describe: 'largest request body the API accepts (larger: 413)',
  },
  pageMaxBytes: {
    env: 'SPOOL_PAGE_MAX_BYTES',
    default: LIST_BYTES_DEFAULT,
    schema: wholeNumber('expected a size in bytes from 1024 to 1073741824', 1024, 1024 * 1024 * 1024),
    describe: 'most bytes of jobs in one GET /jobs or /dead page: past it the page ends early with truncated: true and a cursor',
  },
  signingKeys: {
    env: 'SPOOL_SIGNING_KEYS',
    schema: signingKeysSchema,
    secret: true,
    describe: 'HMAC keys for signed payloads, keyId:secret pairs, comma-separated (secrets of 32+ characters): producers sign kinds defined with signing: { keyId }, workers verify them',
  },
  keyRateLimit: {
    env: 'SPOOL_KEY_RATE_LIMIT',
    default: KEY_RATE_LIMIT_DEFAULT,
    schema: requestRate,
    describe: 'requests per API key and window, over every API process, e.g. 10000/1s (the default); off for none. Past it: 429 with Retry-After',
  },
  tenantRateLimit: {
    env: 'SPOOL_TENANT_RATE_LIMIT',
    schema: requestRate,
    describe: 'requests per tenant (all its keys together) and window, e.g. 5000/1s; default: none',
  },
  tenantPayloadMaxBytes: {
    env: 'SPOOL_TENANT_PAYLOAD_MAX_BYTES',
    schema: wholeNumber('expected a size in bytes from 2 to 1048576', 2, 1024 * 1024),
    describe: 'largest payload (JSON bytes) a tenant-bound API key may enqueue; default: the 1 MiB every payload has',
  },
  apiStatementTimeoutMs: {
    env: 'SPOOL_API_STATEMENT_TIMEOUT_MS',
    default: API_STATEMENT_TIMEOUT_MS_DEFAULT,
    schema: wholeNumber('expected milliseconds from 0 (none) to 2147483647', 0, 2_147_483_647),
    describe: 'statement_timeout of the API\'s queries: a longer one is cancelled and answered 503 database_timeout',
  },
  requestTimeoutMs: {
    env: 'SPOOL_REQUEST_TIMEOUT_MS',
    default: REQUEST_TIMEOUT_MS_DEFAULT,
    schema: wholeNumber('expected milliseconds from 1000 to 3600000', 1000, 3_600_000),
    describe: 'most time a client may take to send a whole request (headers and body) before the connection is closed',
  },
  headersTimeoutMs: {
    env: 'SPOOL_HEADERS_TIMEOUT_MS',
    default: HEADERS_TIMEOUT_MS_DEFAULT,
    schema: wholeNumber('expected milliseconds from 1000 to 3600000', 1000, 3_600_000),
    describe: 'most time a client may take to send the request headers (slow-loris guard)',
  },
  batchMax: {
    env: 'SPOOL_BATCH_MAX',
    default: BATCH_MAX_DEFAULT,
    schema: wholeNumber('expected a whole number from 1 to 100000', 1, 100_000),
    describe: 'most jobs in one POST /jobs/batch',
  },
  unknownKinds: {
    env: 'SPOOL_UNKNOWN_KINDS',
    default: 'reject',
    schema: z.enum(UNKNOWN_KINDS, { error: `expected ${UNKNOWN_KINDS.join(' or ')}` }),
    describe: 'HTTP and CLI enqueue of a kind no worker has registered: reject (400 naming the known kinds) or allow (producers deployed before their workers)',
  },
  poolSize: {
    env: 'SPOOL_POOL_SIZE',
    default: POOL_SIZE_DEFAULT,
    schema: wholeNumber('expected a whole number from 1 to 1000', 1, 1000),
    describe: 'connections of the API/client pool (workers open their own)',
  },
  dataDir: {
    env: 'SPOOL_DATA_DIR',
    default: DATA_DIR_DEFAULT,
    schema: z.string().min(1, { error: 'expected a folder path' }),
    describe: 'data folder of the embedded PostgreSQL (kept across restarts)',
  },
  pgPort: {
    env: 'SPOOL_PG_PORT',
    default: EMBEDDED_PORT_DEFAULT,
    schema: wholeNumber('expected a TCP port (1-65535)', 1, 65_535),
    describe: 'port of the embedded PostgreSQL (127.0.0.1 only)',
  },
  logLevel: {
    env: 'SPOOL_LOG_LEVEL',
    default: LOG_LEVEL_DEFAULT,
    schema: z.enum(LOG_LEVELS, { error: `expected one of ${LOG_LEVELS.join(', ')}` }),
    describe: 'log level (JSON lines on stdout)',
  },
  logFormat: {
    env: 'SPOOL_LOG_FORMAT',
    default: 'auto',
    schema: z.enum(LOG_FORMATS, { error: `expected one of ${LOG_FORMATS.join(', ')}` }),
    describe: 'json, pretty, or auto (pretty on a terminal, JSON otherwise)',
  },
  logPayloads: {
    env: 'SPOOL_LOG_PAYLOADS',
    default: false,
    schema: flag('expected true or false'),
    describe: 'put job payloads in the debug line of each starting job (payloads stay out of logs otherwise)',
  },
  metrics: {
    env: 'SPOOL_METRICS',
    default: true,
    schema: flag('expected true or false'),
    describe: 'Prometheus metrics: GET /metrics on the API, and on metricsPort for `spool work`',
  },
  limits: {
    env: 'SPOOL_LIMITS',
    schema: z
      .union([
        z.string().transform((text, ctx) => {
          try {
            return JSON.parse(text) as unknown;
          } catch {
            ctx.addIssue({ code: 'custom', message: 'expected JSON, e.g. {"queues":{"mail":{"rate":"20/1s"}}}' });
            return z.NEVER;
          }
        }),
        z.record(z.string(), z.unknown()),
      ], { error: 'expected { "queues": {...}, "kinds": {...}, "groups": {...} } of limit settings' })
      .pipe(limitsConfigSchema),
    describe: 'flow limits applied at start of serve and work (docs/flow-control.md): {"queues":{"<q>":{"concurrency":5,"rate":"20/1s","fair":true}},"kinds":{...},"groups":{"<g>":{"weight":2}}}; limiters the config set before and no longer names are removed',
  },
  metricsPort: {
    env: 'SPOOL_METRICS_PORT',
    default: METRICS_PORT_DEFAULT,
    schema: wholeNumber('expected a TCP port (0-65535; 0 picks a free one)', 0, 65_535),
    describe: 'port of GET /metrics for `spool work` (the API serves it on its own port)',
  },
} as const;

type Settings = typeof SETTINGS;
export type SettingKey = keyof Settings;
const KEYS = Object.keys(SETTINGS) as SettingKey[];

/** The effective configuration: every setting with a default has a value. */
export type SpoolConfig = {
  [K in SettingKey]: Settings[K] extends { default: unknown }
    ? z.output<Settings[K]['schema']>
    : z.output<Settings[K]['schema']> | undefined;
};

/** Where each value came from, for error messages and `spool config check`. */
export type SettingSource = 'flag' | 'env' | 'file' | 'default';

export interface ConfigSources {
  /** Environment (process.env by default). Empty values count as unset. */
  env?: Record<string, string | undefined>;
  /** A JSON config file (`--config`, or SPOOL_CONFIG): an object of the keys above. */
  file?: string;
  /** Command-line flags, by setting key; they win over everything. */
  flags?: Partial<Record<SettingKey, string | boolean | undefined>>;
}

export interface LoadedConfig {
  config: SpoolConfig;
  sources: Record<SettingKey, SettingSource>;
  file: string | undefined;
}

/**
 * Reads the configuration: flags over environment over config file over
 * defaults, validated with one zod schema. Every error names the key (the
 * environment variable, the flag, or the file's key), the bad value and what
 * is expected; all bad keys are reported at once.
 *
 * @example
 * loadConfig({ env: { SPOOL_CONCURRENCY: 'abc' } })
 * // ValidationError: SPOOL_CONCURRENCY: expected a positive integer, got "abc"
 */
export function loadConfig(sources: ConfigSources = {}): SpoolConfig {
  return loadConfigWithSources(sources).config;
}

export function loadConfigWithSources(sources: ConfigSources = {}): LoadedConfig {
  const env = sources.env ?? process.env;
  const filePath = sources.file ?? (env.SPOOL_CONFIG || undefined);
  const fileValues = filePath === undefined ? {} : readConfigFile(filePath);
  const raw: Partial<Record<SettingKey, unknown>> = {};
  const origin = {} as Record<SettingKey, SettingSource>;
  const label = {} as Record<SettingKey, string>;
  const issues: FieldIssue[] = [];

  for (const [key, value] of Object.entries(fileValues)) {
    if (!(KEYS as string[]).includes(key)) {
      issues.push({ path: `${key} (in ${filePath})`, message: `unknown setting; expected one of ${KEYS.join(', ')}` });
    }
  }
  for (const key of KEYS) {
    const flag = sources.flags?.[key];
    const fromEnv = env[SETTINGS[key].env];
    if (flag !== undefined) [raw[key], origin[key], label[key]] = [flag, 'flag', `--${kebab(key)}`];
    else if (fromEnv !== undefined && fromEnv !== '') [raw[key], origin[key], label[key]] = [fromEnv, 'env', SETTINGS[key].env];
    else if (fileValues[key] !== undefined) [raw[key], origin[key], label[key]] = [fileValues[key], 'file', `${key} (in ${filePath})`];
    else origin[key] = 'default';
  }

  const config = {} as Record<SettingKey, unknown>;
  for (const key of KEYS) {
    const setting = SETTINGS[key];
    if (raw[key] === undefined) {
      config[key] = 'default' in setting ? setting.default : undefined;
      continue;
    }
    const parsed = (setting.schema as z.ZodType).safeParse(raw[key]);
    if (parsed.success) config[key] = parsed.data;
    else {
      // A secret's value is never echoed: an error message ends up in logs.
      const got = 'secret' in setting ? String(maskedSecret(raw[key])) : JSON.stringify(raw[key]);
      issues.push({ path: label[key], message: `${parsed.error.issues[0]!.message}, got ${got}` });
    }
  }
  if (issues.length > 0) throw new ValidationError(issues, 'config_invalid');
  return { config: config as SpoolConfig, sources: origin, file: filePath === undefined ? undefined : resolve(filePath) };
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ValidationError(
      [{ path: '--config', message: `cannot read ${resolve(path)} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}): give a readable JSON file` }],
      'config_invalid',
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ValidationError([{ path: '--config', message: `${resolve(path)} is not valid JSON: ${(error as Error).message}` }], 'config_invalid');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ValidationError([{ path: '--config', message: `${resolve(path)} must hold a JSON object of settings, e.g. { "concurrency": 20 }` }], 'config_invalid');
  }
  return value as Record<string, unknown>;
}

/** The configuration with secrets masked (the password of DATABASE_URL), for printing. */
export function redactedConfig(config: SpoolConfig): Record<SettingKey, unknown> {
  const out = { ...config } as Record<SettingKey, unknown>;
  for (const key of KEYS) {
    if ('secret' in SETTINGS[key] && out[key] !== undefined) out[key] = maskedSecret(out[key]);
  }
  return out;
}

/**
 * A secret setting as it may be shown (config check, error messages): a
 * URL with its password masked; a keyring, as text (`id:secret,…`) or
 * parsed, as its key ids only.
 */
function maskedSecret(value: unknown): unknown {
  if (typeof value === 'string') {
    return /^postgres(ql)?:\/\//.test(value) ? redactUrl(value) : value.replace(/(^|,)\s*([^:,]+):[^,]*/g, '$1$2:***');
  }
  if (typeof value === 'object' && value !== null) return Object.keys(value).map((id) => `${id}:***`);
  return '(hidden)';
}

/** postgres://user:secret@host/db → postgres://user:***@host/db. */
export function redactUrl(url: string): string {
  return url.replace(/^(postgres(?:ql)?:\/\/[^:@/]*:)[^@]*@/, '$1***@');
}

function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}
