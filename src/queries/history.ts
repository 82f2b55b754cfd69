/**
 * Moves between the hot table (`jobs`: unfinished jobs) and `job_history`
 * (finished jobs, partitioned by state and day; sql/0005). A move is a
 * DELETE … RETURNING from one table feeding an INSERT into the other, in one
 * statement, so a job is in exactly one of them at every snapshot. These
 * build the INSERT half; the statements that finish, cancel, reap, retry and
 * replay jobs put them after their own fenced DELETE.
 */

/** The columns of `jobs` and `job_history`, in their shared order. */
export const JOB_COLUMNS = [
  'id', 'queue', 'kind', 'payload', 'state', 'priority', 'run_at', 'attempt', 'max_attempts', 'timeout_ms',
  'lease_expires_at', 'worker_id', 'unique_key', 'tags', 'result', 'errors', 'progress', 'metadata',
  'created_at', 'started_at', 'finished_at', 'cancel_requested_at', 'group_key', 'tenant',
] as const;
export type JobColumn = (typeof JOB_COLUMNS)[number];

function selectList(source: string, overrides: Partial<Record<JobColumn, string>>): string {
  return JOB_COLUMNS.map((column) => overrides[column] ?? `${source}.${column}`).join(', ');
}

/**
 * `INSERT INTO job_history … SELECT … FROM <source>`: the rows a DELETE
 * returned, with `overrides` (SQL expressions) for the columns that change
 * as the job finishes. Writes the heap and the day partition's id index.
 */
export function archiveSql(q: string, source: string, overrides: Partial<Record<JobColumn, string>>, where = 'true', eventSeq?: string): string {
  if (!eventSeq) {
    return `INSERT INTO ${q}.job_history (${JOB_COLUMNS.join(', ')})
  SELECT ${selectList(source, overrides)} FROM ${source} WHERE ${where}`;
  }
  // event_seq: the statement's `finished` event row (historyEventSql), one value for every row.
  return `INSERT INTO ${q}.job_history (${JOB_COLUMNS.join(', ')}, event_seq)
  SELECT ${selectList(source, overrides)}, ${eventSeq} FROM ${source} WHERE ${where}`;
}

/** `INSERT INTO jobs … SELECT … FROM <source>`: finished jobs back into the hot table, keeping their ids. */
export function restoreSql(q: string, source: string, overrides: Partial<Record<JobColumn, string>>, returning = 'id, queue'): string {
  return `INSERT INTO ${q}.jobs AS j (${JOB_COLUMNS.join(', ')}) OVERRIDING SYSTEM VALUE
  SELECT ${selectList(source, overrides)} FROM ${source}
  RETURNING ${returning.split(',').map((c) => `j.${c.trim()}`).join(', ')}`;
}
