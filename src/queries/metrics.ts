/**
 * The metrics gauges, in one statement every few seconds: jobs by queue and
 * state, the age of each queue's oldest available job, and the live
 * workers. Each branch reads one partial index's rows (jobs_claim,
 * jobs_scheduled, jobs_lease) or the dead and cancelled history partitions,
 * so the cost follows the unfinished, dead and cancelled jobs, never the
 * completed history; that is why completed jobs are a counter, not a gauge.
 * One extra row with a NULL queue carries the live workers when no job
 * matches. $1 how recent a heartbeat keeps a worker live, in ms.
 */
export function queueGaugesSql(q: string): string {
  return `
WITH states AS (
  SELECT queue, 'available' AS state, count(*)::int AS jobs, extract(epoch FROM now() - min(run_at))::float8 AS oldest_available_s
    FROM ${q}.jobs WHERE state = 'available' GROUP BY queue
  UNION ALL
  SELECT queue, 'scheduled', count(*)::int, NULL FROM ${q}.jobs WHERE state = 'scheduled' GROUP BY queue
  UNION ALL
  SELECT queue, 'running', count(*)::int, NULL FROM ${q}.jobs WHERE state = 'running' GROUP BY queue
  UNION ALL
  SELECT queue, state::text, count(*)::int, NULL FROM ${q}.all_jobs WHERE state IN ('dead', 'cancelled') GROUP BY queue, state
), live AS (
  SELECT count(*)::int AS live_workers FROM ${q}.workers WHERE last_heartbeat_at > now() - $1 * interval '1 millisecond'
)
SELECT s.queue::text, s.state, s.jobs, greatest(s.oldest_available_s, 0) AS oldest_available_s, live.live_workers
  FROM live LEFT JOIN states s ON true`;
}

export interface QueueGaugeRow {
  /** NULL on the row that only carries the live workers. */
  queue: string | null;
  state: string;
  jobs: number;
  oldest_available_s: number | null;
}
