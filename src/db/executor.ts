import type postgres from 'postgres';
import { CompiledQuery, type Kysely, type Transaction as KyselyTransaction } from 'kysely';
import { ValidationError } from '../errors.js';

/**
 * Where a statement runs: Spool's own pool, or the caller's transaction.
 * Every query in Spool goes through this one seam, so `{ tx }` works for all.
 */
export interface Executor {
  query<Row = Record<string, unknown>>(text: string, params: readonly unknown[]): Promise<Row[]>;
  /**
   * Reads the rows `batch` at a time until `take` returns false, then
   * closes the cursor: the server reads no further than that. Where a
   * caller's transaction has no cursor (Kysely), absent: use `query`.
   */
  cursor?<Row = Record<string, unknown>>(text: string, params: readonly unknown[], batch: number, take: (rows: Row[]) => boolean): Promise<void>;
}

/**
 * A transaction (or connection) of the caller's that a write should join:
 * a postgres.js `sql.begin(tx => …)` transaction or a Kysely transaction
 * (`db.transaction().execute(trx => …)`), whatever Kysely dialect it uses.
 */
export type Transaction = postgres.Sql | postgres.TransactionSql | Kysely<any> | KyselyTransaction<any>;

/** Runs statements on a postgres.js pool or transaction. */
export function postgresExecutor(sql: postgres.Sql | postgres.TransactionSql, prepare?: boolean): Executor {
  const options = prepare === undefined ? undefined : { prepare };
  return {
    async query<Row>(text: string, params: readonly unknown[]) {
      const rows = await sql.unsafe(text, params as postgres.ParameterOrJSON<never>[], options);
      return rows as unknown as Row[];
    },
    async cursor<Row>(text: string, params: readonly unknown[], batch: number, take: (rows: Row[]) => boolean) {
      // Leaving the loop early closes the portal: the server stops there.
      for await (const rows of sql.unsafe(text, params as postgres.ParameterOrJSON<never>[], options).cursor(batch)) {
        if (!take(rows as unknown as Row[])) break;
      }
    },
  };
}

/**
 * Wraps an executor to count the statements running on it now, which is
 * how many of its pool's connections are busy (for the pool gauges).
 */
export function countingExecutor(inner: Executor): { executor: Executor; busy: () => number } {
  let busy = 0;
  return {
    busy: () => busy,
    executor: {
      async query<Row>(text: string, params: readonly unknown[]) {
        busy++;
        try {
          return await inner.query<Row>(text, params);
        } finally {
          busy--;
        }
      },
      ...(inner.cursor
        ? {
            async cursor<Row>(text: string, params: readonly unknown[], batch: number, take: (rows: Row[]) => boolean) {
              busy++;
              try {
                await inner.cursor!<Row>(text, params, batch, take);
              } finally {
                busy--;
              }
            },
          }
        : {}),
    },
  };
}

/** Runs statements on a Kysely instance or transaction (any PostgreSQL dialect). */
function kyselyExecutor(db: Kysely<any>): Executor {
  return {
    async query<Row>(text: string, params: readonly unknown[]) {
      const result = await db.executeQuery<Row>(CompiledQuery.raw(text, [...params]));
      return [...result.rows];
    },
  };
}

/**
 * The executor for a caller's `tx` option. The caller's own settings
 * (prepared statements or not) are left as they are.
 */
export function executorFor(tx: unknown, field = 'tx'): Executor {
  if (tx !== null && (typeof tx === 'object' || typeof tx === 'function')) {
    const candidate = tx as Record<string, unknown>;
    if (typeof candidate.executeQuery === 'function') return kyselyExecutor(tx as Kysely<any>);
    if (typeof candidate.unsafe === 'function') return postgresExecutor(tx as postgres.TransactionSql);
  }
  throw new ValidationError([
    {
      path: field,
      message:
        'expected a postgres.js transaction (sql.begin(tx => ...)) or a Kysely transaction (db.transaction().execute(trx => ...))',
    },
  ]);
}
