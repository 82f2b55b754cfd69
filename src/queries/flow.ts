import { recordEventsSql } from './events.js';
/**
 * Flow control in the claim (sql/0006, docs/flow-control.md). A queue is
 * under flow control when it has a `limits` row of its own (a limit, or
 * fairness on), when one of the worker's kinds has a limit, or when any
 * group has one (a group's jobs may wait in any queue). Such queues are
 * claimed with `claim_flow()`, one queue per call; the others with the plain
 * claim, which leaves them out by the same predicate, so a worker whose list
 * is out of date never claims past a limit.
 */

/** SQL true when the queue `queueExpr` is under flow control for the kinds `kindsExpr`. */
export function underFlowControl(q: string, queueExpr: string, kindsExpr: string): string {
  return `(EXISTS (SELECT 1 FROM ${q}.limits l WHERE l.scope = 'queue' AND l.name = ${queueExpr})
      OR EXISTS (SELECT 1 FROM ${q}.limits l WHERE l.scope = 'kind' AND l.name = ANY(${kindsExpr})
                    AND (l.concurrency IS NOT NULL OR l.rate_limit IS NOT NULL))
      OR EXISTS (SELECT 1 FROM ${q}.limits l WHERE l.scope = 'group'
                    AND (l.concurrency IS NOT NULL OR l.rate_limit IS NOT NULL)))`;
}

/** Which of the queues $1 are under flow control for the kinds $2, and whether each shares by group (fair). */
export function flowQueuesSql(q: string): string {
  return `SELECT wanted.name AS queue,
       coalesce((SELECT l.fair FROM ${q}.limits l WHERE l.scope = 'queue' AND l.name = wanted.name), false) AS fair
  FROM unnest($1::text[]) AS wanted(name) WHERE ${underFlowControl(q, 'wanted.name', '$2::text[]')}`;
}

/**
 * One flow-controlled queue's claim: $1 queue, $2 kinds, $3 limit, $4 worker
 * id, $5 lease ms, $6 the fair queue's groups with waiting jobs (from
 * flowGroupsSql a moment ago; null: looked up in the claim).
 */
export function claimFlowSql(q: string): string {
  // The function claims; the statement records `started` for what it claimed (the hint row has no id).
  return `
WITH claimed AS (
  SELECT * FROM ${q}.claim_flow($1::text, $2::text[], $3::integer, $4::text, $5::integer, $6::text[])
), started AS (
  SELECT c.id, c.attempt, c.queue, c.kind, c.group_key, j.tenant
    FROM claimed c JOIN ${q}.jobs j ON j.id = c.id::bigint
), recorded AS (
  ${recordEventsSql(q, 'started', "'started'")}
)
SELECT * FROM claimed`;
}

/** The groups with jobs waiting in queue $1 ('' for none): one index descent per group. */
export function flowGroupsSql(q: string): string {
  return `SELECT ${q}.flow_groups($1::text) AS groups`;
}
