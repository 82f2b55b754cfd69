import { recordEventsSql } from './events.js';

/**
 * Progress: a handler's last reported value, fenced like every worker write,
 * recorded as a `progress` event in the same statement.
 * $1 job id, $2 attempt, $3 progress (JSON text), $4 worker id.
 */
export function progressSql(q: string): string {
  return `
WITH updated AS (
  UPDATE ${q}.jobs SET progress = $3::text::jsonb
   WHERE id = $1::bigint AND attempt = $2 AND state = 'running' AND worker_id = $4
  RETURNING id, attempt, queue, kind, group_key, tenant, progress
), recorded AS (
  ${recordEventsSql(q, 'updated', "'progress'", { data: 'updated.progress' })}
)
SELECT id FROM updated`;
}
