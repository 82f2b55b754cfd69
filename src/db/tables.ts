import type { JobRow } from '../job.js';

/** Kysely's view of Spool's tables, for the dynamic queries (filters, listing). */
export interface Database {
  /** The hot table: unfinished jobs (and, until the leader moved them, finished ones from before sql/0005). */
  jobs: JobRow;
  /** Finished jobs, partitioned by state and day (sql/0005). */
  job_history: JobRow;
  /** Both, for reading (a view). */
  all_jobs: JobRow;
}
