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
});

export interface SpoolConfig {
  databaseUrl: string | undefined;
  schema: string;
}

export function loadConfig(env: Record<string, string | undefined> = process.env): SpoolConfig {
  const parsed = envSchema.safeParse({
    DATABASE_URL: env.DATABASE_URL || undefined,
    SPOOL_SCHEMA: env.SPOOL_SCHEMA || undefined,
  });
  if (!parsed.success) {
    const issues: FieldIssue[] = parsed.error.issues.map((issue) => {
      const key = String(issue.path[0]);
      return { path: key, message: `${issue.message}, got ${JSON.stringify(env[key])}` };
    });
    throw new ValidationError(issues, 'config_invalid');
  }
  return { databaseUrl: parsed.data.DATABASE_URL, schema: parsed.data.SPOOL_SCHEMA };
}
