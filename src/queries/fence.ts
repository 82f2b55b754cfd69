/**
 * The "still running" half of a fence, for statements that find their rows by
 * primary key (finish, heartbeat). Written against the state's text so the
 * planner cannot prove the `jobs_lease` partial index (`WHERE state =
 * 'running'`) from it: with statistics taken while few jobs ran, it would
 * otherwise scan every running job of every worker in a nested loop against
 * the batch (a 500-job flush measured 11 ms instead of under 1 ms, and worse
 * as the fleet grows). Looked up by id, each row costs one index probe
 * whatever the statistics say.
 */
export function stillRunning(alias: string): string {
  return `${alias}.state::text = 'running'`;
}
