import type { Executor } from '../db/executor.js';

/** What an enqueue did: the job's id, and whether it was a unique-key duplicate. */
export interface EnqueueResult {
  id: string;
  /** True when an unfinished job already held the unique key: `id` is that job's. */
  duplicate: boolean;
  /** The queue it went to: the caller's, its kind's registered queue, or `default`. */
  queue: string;
}

/**
 * Enqueue: one statement for any number of jobs. The batch travels as one
 * JSON array (built and validated by jobInput, hence p_validated) and
 * `enqueue_batch` (sql/0004) inserts it with a single INSERT … SELECT, so
 * 10,000 jobs cost one round trip; what an element leaves out comes from
 * its kind's row in `kinds`, then the column defaults.
 * Locks: the new rows only; on a unique-key hit it waits for the holder's
 * transaction. Indexes written: the primary key, jobs_claim or
 * jobs_scheduled, and jobs_unique_key when a key is given; read: the kinds
 * primary key, once per distinct kind.
 */
export function enqueueSql(quotedSchema: string): string {
  return `SELECT id, duplicate, queue FROM ${quotedSchema}.enqueue_batch($1::text::jsonb, p_validated => true)`;
}

export async function runEnqueue(
  executor: Executor,
  sql: string,
  elementsJson: readonly string[],
): Promise<EnqueueResult[]> {
  if (elementsJson.length === 0) return [];
  const rows = await executor.query<{ id: string | number; duplicate: boolean; queue: string }>(sql, [
    `[${elementsJson.join(',')}]`,
  ]);
  return rows.map((row) => ({ id: String(row.id), duplicate: row.duplicate, queue: row.queue }));
}
