import type { JobRow } from '../job.js';

/** Kysely's view of Spool's tables, for the dynamic queries (filters, listing). */
export interface Database {
  jobs: JobRow;
}
