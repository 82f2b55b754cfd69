import postgres from 'postgres';

/** Connections in a pool Spool opens itself, unless `poolSize` says otherwise. */
export const POOL_SIZE_DEFAULT = 10;

/**
 * Opens a postgres.js pool with Spool's settings: bigint ids stay strings
 * (postgres.js default), notices are not printed (CREATE ... IF NOT EXISTS
 * chatter), idle connections are closed after a minute.
 */
export function openPool(connectionString: string, options: { max?: number; statementTimeoutMs?: number } = {}): postgres.Sql {
  return postgres(connectionString, {
    max: options.max ?? POOL_SIZE_DEFAULT,
    idle_timeout: 60,
    onnotice: () => {},
    connection: {
      application_name: 'spool',
      // A start-up parameter, so no statement of this pool runs longer, without a SET per query.
      ...(options.statementTimeoutMs ? { statement_timeout: options.statementTimeoutMs } : {}),
    },
  });
}
