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

/**
 * Per queue: jobs by state, the age of the oldest available job (database
 * time) and the paused flag; queues with settings but no jobs are listed too.
 * Scans the jobs table (completed jobs included): for dashboards and admin
 * commands, not a tight loop.
 */
export function queueStatsSql(q: string): string {
  return `
SELECT coalesce(s.queue, p.name)::text AS queue,
       coalesce(s.scheduled, 0)::int AS scheduled, coalesce(s.available, 0)::int AS available,
       coalesce(s.running, 0)::int AS running, coalesce(s.completed, 0)::int AS completed,
       coalesce(s.dead, 0)::int AS dead, coalesce(s.cancelled, 0)::int AS cancelled,
       coalesce(s.oldest_available_age_seconds, 0)::float8 AS oldest_available_age_seconds,
       coalesce(p.paused, false) AS paused
  FROM ${q}.queue_stats s
  FULL JOIN ${q}.queues p ON p.name = s.queue
 ORDER BY 1`;
}

/**
 * `queueStats()` for one tenant ($1): the queues its jobs are in, counted
 * from its own jobs only (the jobs_tenant indexes), with their paused flag.
 */
export function tenantQueueStatsSql(q: string): string {
  return `
SELECT s.queue,
       count(*) FILTER (WHERE s.state = 'scheduled')::int AS scheduled, count(*) FILTER (WHERE s.state = 'available')::int AS available,
       count(*) FILTER (WHERE s.state = 'running')::int AS running, count(*) FILTER (WHERE s.state = 'completed')::int AS completed,
       count(*) FILTER (WHERE s.state = 'dead')::int AS dead, count(*) FILTER (WHERE s.state = 'cancelled')::int AS cancelled,
       coalesce(extract(epoch FROM now() - min(s.run_at) FILTER (WHERE s.state = 'available')), 0)::float8 AS oldest_available_age_seconds,
       coalesce(bool_or(p.paused), false) AS paused
  FROM ${q}.all_jobs s
  LEFT JOIN ${q}.queues p ON p.name = s.queue
 WHERE s.tenant = $1
 GROUP BY s.queue
 ORDER BY 1`;
}

/** One queue's line of `queueStats()`. */
export interface QueueStats {
  queue: string;
  /** Jobs by state. */
  counts: Record<'scheduled' | 'available' | 'running' | 'completed' | 'dead' | 'cancelled', number>;
  /** Seconds since the oldest available job became due (0 when none waits). */
  oldestAvailableAgeSeconds: number;
  paused: boolean;
}

export interface QueueStatsRow {
  queue: string;
  scheduled: number;
  available: number;
  running: number;
  completed: number;
  dead: number;
  cancelled: number;
  oldest_available_age_seconds: number;
  paused: boolean;
}

export function toQueueStats(row: QueueStatsRow): QueueStats {
  const { queue, paused, oldest_available_age_seconds, ...counts } = row;
  return { queue, counts, oldestAvailableAgeSeconds: oldest_available_age_seconds, paused };
}
