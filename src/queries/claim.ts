import { recordEventsSql } from './events.js';
import { underFlowControl } from './flow.js';

// Times come back as epoch milliseconds, not timestamptz: per row, the server prints a
// float rather than format a timestamp, and the client reads a number rather than
// parse a date string into a Date it would only compare. date_part, not extract:
// extract returns numeric, and numeric arithmetic on every claimed row cost about
// 1 µs of server CPU per job.
const EPOCH_MS = (column: string) => `(date_part('epoch', ${column}) * 1000)`;

/**
 * Claim: one statement takes up to $3 available jobs from the worker's
 * queues (skipping paused ones, queues under flow control, which
 * claim_flow() claims, and kinds it has no handler for), in
 * priority, run_at, id order, and marks them running with a lease, the
 * worker's id and attempt + 1.
 * Locks: the claimed rows (FOR UPDATE SKIP LOCKED: rows other workers are
 * claiming are skipped, not waited for). Index: jobs_claim, one ordered scan
 * per queue (LATERAL), so a big backlog in one queue costs the others nothing.
 * The UPDATE finds the rows it locked by ctid (a TID scan: no primary-key
 * descent per row, ~8 % of the statement at 355 rows). A ctid is stable here
 * because the row is locked by this statement; in the one case where the
 * locked version is newer than the statement's snapshot (the row was changed
 * and committed meanwhile but is still available), the TID scan does not see
 * it and the job simply stays available for the next claim.
 * $1 queues text[], $2 kinds text[], $3 limit, $4 worker id, $5 lease ms.
 * `startedAt` also returns started_ms, for the wait-time metric. Records
 * `started` for the claimed jobs (one job_events row).
 */
export function claimSql(q: string, options: { startedAt?: boolean } = {}): string {
  return `
WITH active AS (
  SELECT wanted.name
    FROM unnest($1::text[]) AS wanted(name)
   WHERE NOT EXISTS (SELECT 1 FROM ${q}.queues p WHERE p.name = wanted.name AND p.paused)
     AND NOT ${underFlowControl(q, 'wanted.name', '$2::text[]')}
), picked AS (
  SELECT c.ctid
    FROM active
    CROSS JOIN LATERAL (
      SELECT j.ctid, j.id, j.priority, j.run_at
        FROM ${q}.jobs j
       WHERE j.state = 'available' AND j.queue = active.name AND j.kind = ANY($2::text[])
       ORDER BY j.priority, j.run_at, j.id
       LIMIT $3
         FOR UPDATE SKIP LOCKED
    ) c
   ORDER BY c.priority, c.run_at, c.id
   LIMIT $3
), claimed AS (
UPDATE ${q}.jobs j
   SET state = 'running',
       attempt = j.attempt + 1,
       worker_id = $4,
       lease_expires_at = now() + $5 * interval '1 millisecond',
       started_at = now()
 WHERE j.ctid = ANY(ARRAY(SELECT ctid FROM picked))
RETURNING j.id, j.queue, j.kind, j.payload, j.priority, j.attempt, j.max_attempts, j.timeout_ms, j.metadata,
          ${EPOCH_MS('j.run_at')} AS run_at_ms, ${EPOCH_MS('j.created_at')} AS created_at_ms${options.startedAt ? `, ${EPOCH_MS('j.started_at')} AS started_ms` : ''},
          j.group_key, j.tenant
), recorded AS (
  ${recordEventsSql(q, 'claimed', "'started'")}
)
SELECT id, queue, kind, payload, priority, attempt, max_attempts, timeout_ms, metadata, run_at_ms, created_at_ms${options.startedAt ? ', started_ms' : ''}
  FROM claimed`;
}

/** How many waiting jobs per queue the startup check looks at. */
export const ORPHAN_SAMPLE = 10_000;

/**
 * Kinds that wait in the worker's queues with no handler among $2, for the
 * one-time startup warning. Looks at each queue's first ORPHAN_SAMPLE waiting
 * jobs in claim order (jobs_claim), not the whole backlog: a job this worker cannot
 * run is never claimed by it, so it stays at the head of that order, where
 * the sample finds it; counting every waiting job scanned the backlog (22 ms
 * of CPU at 100,000 jobs, competing with the first claims). `waiting` counts
 * within the sample. $1 queues, $2 kinds.
 */
export function orphanKindsSql(q: string): string {
  return `
SELECT kind, count(*)::integer AS waiting
  FROM unnest($1::text[]) AS wanted(name)
  CROSS JOIN LATERAL (
    SELECT j.kind
      FROM ${q}.jobs j
     WHERE j.state = 'available' AND j.queue = wanted.name
     ORDER BY j.priority, j.run_at, j.id
     LIMIT ${ORPHAN_SAMPLE}
  ) head
 WHERE kind <> ALL($2::text[])
 GROUP BY kind
 ORDER BY kind
 LIMIT 20`;
}

/** A claimed job as the claim returns it. */
export interface ClaimedRow {
  id: string;
  queue: string;
  kind: string;
  payload: unknown;
  priority: number;
  /** run_at, ms since the epoch (database time). */
  run_at_ms: number;
  attempt: number;
  max_attempts: number;
  timeout_ms: number | null;
  metadata: Record<string, unknown>;
  /** created_at, ms since the epoch (database time). */
  created_at_ms: number;
  /** When the claim took it, ms since the epoch (database time); returned only for the metrics (`startedAt`). */
  started_ms?: number;
}

/** A row of claim_flow(): a claimed job, or (id null) only the hint. */
export interface FlowClaimedRow extends Omit<ClaimedRow, 'id'> {
  id: string | null;
  group_key: string | null;
  /** ms until a rate limit that cut the claim refills; -1: a concurrency limit cut it; null: none did. */
  retry_in_ms: number | string | null;
}
