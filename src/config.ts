import { z } from 'zod';
import { ValidationError, type FieldIssue } from './errors.js';
import { SCHEMA_DEFAULT } from './db/identifier.js';

/**
 * Configuration from the environment, validated with one zod schema; every
 * error names the variable, the bad value and what is expected. (The server
 * issue extends this with a config file and the worker/API settings.)
 */
const envSchema = z.object({
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, { error: 'expected a postgres:// URL, e.g. postgres://user:pass@host:5432/db' })
    .optional(),
  SPOOL_SCHEMA: z
    .string()
    .regex(/^[a-z_][a-z0-9_]{0,57}$/, { error: 'expected 1-58 lowercase letters, digits and _, starting with a letter or _' })
    .default(SCHEMA_DEFAULT),
  SPOOL_TASKS: z.string().min(1).optional(),
  SPOOL_QUEUES: z
    .string()
    .regex(/^[A-Za-z0-9_][A-Za-z0-9_.:/-]*(,[A-Za-z0-9_][A-Za-z0-9_.:/-]*)*$/, {
      error: 'expected queue names separated by commas, e.g. "default,mail"',
    })
    .optional(),
  SPOOL_CONCURRENCY: z
    .string()
    .regex(/^[1-9][0-9]{0,4}$/, { error: 'expected a positive integer' })
    .optional(),
  SPOOL_SHUTDOWN_GRACE_MS: z
    .string()
    .regex(/^[0-9]{1,9}$/, { error: 'expected milliseconds as a whole number' })
    .optional(),
});

export interface SpoolConfig {
  databaseUrl: string | undefined;
  schema: string;
  /** Worker settings (`spool work`). */
  tasks: string | undefined;
  queues: string[] | undefined;
  concurrency: number | undefined;
  shutdownGraceMs: number | undefined;
}

export function loadConfig(env: Record<string, string | undefined> = process.env): SpoolConfig {
  const pick = (key: keyof z.input<typeof envSchema>) => env[key] || undefined;
  const parsed = envSchema.safeParse({
    DATABASE_URL: pick('DATABASE_URL'),
    SPOOL_SCHEMA: pick('SPOOL_SCHEMA'),
    SPOOL_TASKS: pick('SPOOL_TASKS'),
    SPOOL_QUEUES: pick('SPOOL_QUEUES'),
    SPOOL_CONCURRENCY: pick('SPOOL_CONCURRENCY'),
    SPOOL_SHUTDOWN_GRACE_MS: pick('SPOOL_SHUTDOWN_GRACE_MS'),
  });
  if (!parsed.success) {
    const issues: FieldIssue[] = parsed.error.issues.map((issue) => {
      const key = String(issue.path[0]);
      return { path: key, message: `${issue.message}, got ${JSON.stringify(env[key])}` };
    });
    throw new ValidationError(issues, 'config_invalid');
  }
  const d = parsed.data;
  return {
    databaseUrl: d.DATABASE_URL,
    schema: d.SPOOL_SCHEMA,
    tasks: d.SPOOL_TASKS,
    queues: d.SPOOL_QUEUES?.split(','),
    concurrency: d.SPOOL_CONCURRENCY === undefined ? undefined : Number(d.SPOOL_CONCURRENCY),
    shutdownGraceMs: d.SPOOL_SHUTDOWN_GRACE_MS === undefined ? undefined : Number(d.SPOOL_SHUTDOWN_GRACE_MS),
  };
}
