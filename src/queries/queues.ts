/**
 * Pause or resume a queue: workers do not claim from a paused queue (the
 * claim checks the flag). Resuming wakes the queue's workers.
 * $1 queue, $2 paused, $3 channel.
 */
export function setPausedSql(q: string): string {
  return `
WITH changed AS (
  INSERT INTO ${q}.queues AS qs (name, paused) VALUES ($1, $2)
  ON CONFLICT (name) DO UPDATE SET paused = EXCLUDED.paused, updated_at = now()
  RETURNING qs.name, qs.paused
)
SELECT changed.name, changed.paused,
       (SELECT true FROM pg_notify($3::text, json_build_object('queues', json_build_array(changed.name), 'scheduled', false)::text)
         WHERE NOT changed.paused) AS woke
  FROM changed`;
}
