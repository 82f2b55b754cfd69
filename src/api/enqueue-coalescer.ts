import type { EnqueueItem, Spool } from '../client.js';
import { postgresExecutor, type Executor } from '../db/executor.js';
import { toJob, type Job, type JobRow } from '../job.js';
import type { SpoolMetrics } from '../observability/metrics.js';
import { jobInput } from '../job-options.js';
import { enqueueSql, runEnqueue, type EnqueueResult } from '../queries/enqueue.js';
import { isDatabaseDown } from '../db/errors.js';

/** Most single-job requests written in one statement. */
export const COALESCE_BATCH_MAX_DEFAULT = 500;
/** Batches written at once (each on its own pooled connection). */
export const COALESCE_CONCURRENCY_DEFAULT = 4;

/** The hot table's columns as all_jobs gives them (json domains as jsonb, which the driver parses). */
const HOT_JOB_COLUMNS = `id, queue, kind, payload, state, priority, run_at, attempt, max_attempts, timeout_ms, lease_expires_at,
  worker_id, unique_key, tags, result, errors::jsonb AS errors, progress, metadata::jsonb AS metadata, created_at, started_at,
  finished_at, cancel_requested_at, group_key::text AS group_key, tenant::text AS tenant`;

interface Waiting {
  /** The job as one element of enqueue_batch's input, validated. */
  element: string;
  resolve: (value: { job: Job; duplicate: boolean }) => void;
  reject: (error: unknown) => void;
}

/**
 * Group commit for `POST /jobs`: requests that arrive while a batch is being
 * written are written together, as one `enqueueMany` statement and one
 * commit. Each request is answered only after its batch has committed, so
 * an acknowledged job is durable. A single enqueue is commit-bound (one WAL
 * flush each, ~2,500/s here, docs/performance.md); batching is how the API
 * gets past that without `synchronous_commit = off`.
 * A batch that fails for one bad job is retried job by job, so the others
 * still land and the bad one gets its own error.
 */
export class EnqueueCoalescer {
  readonly #executor: Executor;
  readonly #unprepared: Executor;
  readonly #enqueueSql: string;
  readonly #quotedSchema: string;
  readonly #batchMax: number;
  readonly #concurrency: number;
  #waiting: Waiting[] = [];
  #writing = 0;
  #scheduled = false;

  readonly #metrics: SpoolMetrics | undefined;

  constructor(spool: Spool, options: { batchMax?: number; concurrency?: number } = {}) {
    this.#metrics = spool.metrics;
    this.#executor = postgresExecutor(spool.sql, true);
    this.#unprepared = postgresExecutor(spool.sql, false);
    this.#enqueueSql = enqueueSql(spool.quotedSchema);
    this.#quotedSchema = spool.quotedSchema;
    this.#batchMax = options.batchMax ?? COALESCE_BATCH_MAX_DEFAULT;
    this.#concurrency = options.concurrency ?? COALESCE_CONCURRENCY_DEFAULT;
  }

  /** Enqueues one job; resolves with the stored job once its batch has committed. */
  enqueue(item: EnqueueItem): Promise<{ job: Job; duplicate: boolean }> {
    return new Promise((resolve, reject) => {
      // Validated here, as the client would: a bad job never joins a batch, and its error names its own fields.
      const { job, payload, ...options } = item;
      this.#waiting.push({ element: jobInput(job, payload, options).text, resolve, reject });
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#scheduled || this.#writing >= this.#concurrency) return;
    this.#scheduled = true;
    // One turn of the event loop lets requests parsed in the same tick join.
    setImmediate(() => {
      this.#scheduled = false;
      while (this.#waiting.length > 0 && this.#writing < this.#concurrency) {
        const batch = this.#waiting.splice(0, this.#batchMax);
        this.#writing++;
        void this.#write(batch).finally(() => {
          this.#writing--;
          if (this.#waiting.length > 0) this.#schedule();
        });
      }
    });
  }

  async #write(batch: Waiting[]): Promise<void> {
    let results: (EnqueueResult | undefined)[];
    try {
      results = await runEnqueue(this.#executor, this.#enqueueSql, batch.map((w) => w.element));
    } catch (error) {
      if (batch.length === 1 || isDatabaseDown(error)) {
        for (const w of batch) w.reject(error);
        return;
      }
      // The failed statement stored nothing: each job again on its own, so one bad job fails alone.
      results = await Promise.all(
        batch.map((w) =>
          runEnqueue(this.#executor, this.#enqueueSql, [w.element]).then(
            ([result]) => result,
            (jobError: unknown) => void w.reject(jobError),
          ),
        ),
      );
    }
    // Read back only once the jobs are stored: a failed read must not enqueue them again.
    const stored = batch.flatMap((w, i) => (results[i] ? [{ w, result: results[i] }] : []));
    if (stored.length === 0) return;
    try {
      const rows = await this.#readBack(stored.map(({ result }) => result.id));
      const byId = new Map(rows.map((row) => [String(row.id), row]));
      for (const { w, result } of stored) {
        const row = byId.get(result.id);
        // Only a job deleted by hand between the two statements can be missing.
        if (row && !result.duplicate) this.#metrics?.enqueued(row.queue, row.kind);
        if (row) w.resolve({ job: toJob(row), duplicate: result.duplicate });
        else w.reject(new Error(`job ${result.id} vanished right after it was enqueued`));
      }
    } catch (error) {
      for (const { w } of stored) w.reject(error);
    }
  }

  /**
   * The stored jobs, from the hot table, and from all_jobs for any that
   * already finished (a quick job can leave the table before it is read
   * back). Planned per call, not prepared: a generic plan made while the
   * table was nearly empty is a sequential scan, and without a fresh
   * ANALYZE (autovacuum off) it stays one as the table grows (measured:
   * 2,305 seq scans reading 36 M rows for 30,000 enqueues; POST /jobs fell
   * from ~2,700 to ~1,600/s). The ids (from the database) go in as a
   * literal: a parameter would make the driver describe the statement
   * first, a second round trip per batch. Not all_jobs first: planning
   * its union over every history partition took 1–1.5 ms per batch.
   */
  async #readBack(ids: string[]): Promise<JobRow[]> {
    const rows = await this.#unprepared.query<JobRow>(`SELECT ${HOT_JOB_COLUMNS} FROM ${this.#quotedSchema}.jobs WHERE id = ANY(${idList(ids)})`, []);
    if (rows.length === ids.length) return rows;
    const found = new Set(rows.map((row) => String(row.id)));
    const missing = ids.filter((id) => !found.has(id));
    const finished = await this.#unprepared.query<JobRow>(`SELECT * FROM ${this.#quotedSchema}.all_jobs WHERE id = ANY(${idList(missing)})`, []);
    return [...rows, ...finished];
  }
}

/** Job ids as an SQL array literal (each parsed as a bigint first, so nothing else gets in). */
function idList(ids: readonly string[]): string {
  return `'{${ids.map((id) => BigInt(id).toString()).join(',')}}'::bigint[]`;
}
