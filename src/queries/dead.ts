import { sql, type ExpressionBuilder, type Kysely } from 'kysely';
import { z } from 'zod';
import { ValidationError, toFieldIssues } from '../errors.js';
import { JOB_ID_RULE, groupSchema, jobIdTextSchema, kindSchema, queueSchema, storableDateSchema, tenantSchema } from '../job-fields.js';
import type { Database } from '../db/tables.js';
import type { JobRow } from '../job.js';
import { restoreSql } from './history.js';
import { quoteSchema } from '../db/identifier.js';

/**
 * Which dead jobs a replay or a purge touches. Filters combine with AND; an
 * empty filter means every dead job. `ids` picks jobs by id (those not dead
 * are left alone and not counted).
 */
export const deadFilterSchema = z.strictObject({
  ids: z
    .array(z.union([jobIdTextSchema, z.number().int().positive().max(Number.MAX_SAFE_INTEGER)], { error: JOB_ID_RULE }))
    .min(1, { error: 'give at least one id, or leave ids out' })
    .max(10_000, { error: 'at most 10,000 ids at once' })
    .optional(),
  queue: queueSchema.optional(),
  kind: kindSchema.optional(),
  /** Jobs of this group. */
  group: groupSchema.optional(),
  /** Jobs that died before this time. */
  finishedBefore: storableDateSchema('expected a valid Date').optional(),
  /** Only this tenant's jobs (the API sets it from a tenant-bound key). */
  tenant: tenantSchema.optional(),
});

export type DeadFilter = z.input<typeof deadFilterSchema>;

function parseDeadFilter(filter: DeadFilter) {
  const parsed = deadFilterSchema.safeParse(filter ?? {});
  if (!parsed.success) throw new ValidationError(toFieldIssues(parsed.error.issues, ''));
  return parsed.data;
}

type DeadJobs = ExpressionBuilder<{ j: JobRow }, 'j'>;

/** The dead jobs a filter selects, as one condition on `jobs as j` (replay and purge share it). */
function selectedDead(eb: DeadJobs, filter: DeadFilter) {
  const f = parseDeadFilter(filter);
  return eb.and([
    eb('j.state', '=', 'dead'),
    ...(f.ids ? [sql<boolean>`j.id = ANY(${f.ids.map(String)}::bigint[])`] : []),
    ...(f.queue ? [eb('j.queue', '=', f.queue)] : []),
    ...(f.kind ? [eb('j.kind', '=', f.kind)] : []),
    ...(f.group ? [eb('j.group_key', '=', f.group)] : []),
    ...(f.finishedBefore ? [eb('j.finished_at', '<', f.finishedBefore)] : []),
    ...(f.tenant !== undefined ? [eb('j.tenant', '=', f.tenant)] : []),
  ]);
}

/** No unfinished job in the hot table holds `j`'s unique key in its queue: replaying `j` would make a duplicate. */
function noUnfinishedHolder(schema: string) {
  return sql<boolean>`NOT EXISTS (SELECT 1 FROM ${sql.table(`${schema}.jobs`)} o
    WHERE o.queue = j.queue AND o.unique_key = j.unique_key AND coalesce(o.tenant::text, '') = coalesce(j.tenant::text, '')
      AND o.state IN ('scheduled', 'available', 'running'))`;
}

/**
 * Replay from history: the dead jobs a filter selects move back into the
 * hot table, available now with one more attempt; their errors stay. A job
 * whose unique key an unfinished job holds is skipped (it would be a
 * duplicate). Wakes the queues' workers. Returns the statement and its
 * parameters; its rows are the replayed jobs' ids. Locks: the moved rows. Scans the dead
 * partitions (or their id indexes for ids).
 */
export function replayHistoryDeadSql(
  db: Kysely<Database>,
  schema: string,
  filter: DeadFilter,
  channel: string,
): { sql: string; parameters: readonly unknown[] } {
  const q = db.withSchema(schema);
  const picked = q
    .selectFrom('job_history as j')
    .select('j.id')
    .where((eb) => selectedDead(eb, filter))
    .where(noUnfinishedHolder(schema))
    .compile();
  const quoted = quoteSchema(schema);
  return {
    sql: `WITH picked AS (${picked.sql}),
moved AS (
  DELETE FROM ${quoted}.job_history h USING picked WHERE h.id = picked.id AND h.state = 'dead' RETURNING h.*
), restored AS (
  ${restoreSql(quoted, 'moved', {
    state: `'available'`, run_at: 'now()', max_attempts: 'greatest(moved.max_attempts, moved.attempt + 1)', finished_at: 'NULL',
    result: 'NULL', cancel_requested_at: 'NULL', worker_id: 'NULL', lease_expires_at: 'NULL',
  })}
), wake AS (
  SELECT pg_notify($${picked.parameters.length + 1}::text, json_build_object('queues', array_agg(DISTINCT queue), 'scheduled', false)::text)
    FROM restored
  HAVING count(*) > 0
)
SELECT id::text AS id, (SELECT count(*) FROM wake) AS woke FROM restored`,
    parameters: [...picked.parameters, channel],
  };
}

/**
 * Replay of dead rows still in the hot table (finished before sql/0005 and
 * not yet moved to history by the leader): updated in place, as above.
 * Locks: the replayed rows. Index: jobs_dead_or_cancelled (or the primary
 * key for ids).
 */
export function replayDeadQuery(db: Kysely<Database>, schema: string, filter: DeadFilter) {
  return db
    .withSchema(schema)
    .updateTable('jobs as j')
    .set({
      state: 'available',
      run_at: sql`now()`,
      max_attempts: sql`greatest(j.max_attempts, j.attempt + 1)`,
      finished_at: null,
      result: null,
      cancel_requested_at: null,
    })
    .where((eb) => selectedDead(eb, filter))
    .where(noUnfinishedHolder(schema))
    .returning(['j.id', 'j.queue']);
}

/** Purge: deletes dead jobs for good, from `table` (history, or the hot table's rows from before sql/0005). Locks: the deleted rows. */
export function purgeDeadQuery(db: Kysely<Database>, schema: string, filter: DeadFilter, table: 'jobs' | 'job_history' = 'job_history') {
  return db
    .withSchema(schema)
    .deleteFrom(`${table} as j`)
    .where((eb) => selectedDead(eb as unknown as DeadJobs, filter))
    .returning('j.id');
}
