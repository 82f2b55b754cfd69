import { ValidationError } from '../errors.js';

/** The schema every Spool object lives in unless configured otherwise. */
export const SCHEMA_DEFAULT = 'spool';

// 58 so that the NOTIFY channel `<schema>_jobs` stays within PostgreSQL's
// 63-byte identifier limit.
const SCHEMA_PATTERN = /^[a-z_][a-z0-9_]{0,57}$/;

/**
 * The one place where an identifier becomes SQL text: the schema name is
 * checked against a strict pattern, then double-quoted.
 */
export function checkSchemaName(schema: string, field = 'schema'): string {
  if (!SCHEMA_PATTERN.test(schema)) {
    throw new ValidationError([
      {
        path: field,
        message: `${JSON.stringify(schema)} is not a valid schema name: use 1-58 lowercase letters, digits and _, starting with a letter or _ (default "${SCHEMA_DEFAULT}")`,
      },
    ]);
  }
  return schema;
}

/** `"spool"`: the checked schema name, quoted for SQL text. */
export function quoteSchema(schema: string): string {
  return `"${checkSchemaName(schema)}"`;
}

/** The NOTIFY channel that wakes workers of this schema. */
export function channelFor(schema: string): string {
  return `${checkSchemaName(schema)}_jobs`;
}
