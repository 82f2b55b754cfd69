/**
 * Progress: a handler's last reported value, fenced like every worker write.
 * $1 job id, $2 attempt, $3 progress (JSON text), $4 worker id.
 */
export function progressSql(q: string): string {
  return `
UPDATE ${q}.jobs SET progress = $3::text::jsonb
 WHERE id = $1::bigint AND attempt = $2 AND state = 'running' AND worker_id = $4
RETURNING id`;
}

/**
 * Kinds that wait in the worker's queues with no handler among $2, for the
 * one-time startup warning. $1 queues, $2 kinds.
 */
export function orphanKindsSql(q: string): string {
  return `
SELECT kind, count(*)::integer AS waiting
  FROM ${q}.jobs
 WHERE state = 'available' AND queue = ANY($1::text[]) AND kind <> ALL($2::text[])
 GROUP BY kind
 ORDER BY kind
 LIMIT 20`;
}
