import client from 'prom-client';
import type { Executor } from '../db/executor.js';
import type { Logger } from './logger.js';
import { storageHealthSql, type StorageHealthRow } from '../queries/health.js';
import { queueGaugesSql, type QueueGaugeRow } from '../queries/metrics.js';
import { HotCounter, HotHistogram, type CounterSeries, type HistogramSeries } from './hot-metrics.js';

/** The label value that unknown queues and kinds fold into once the cap is reached. */
export const OTHER = 'other';
/** Distinct values a `queue` or `kind` label takes before new ones fold into `other`. */
export const LABEL_VALUES_MAX_DEFAULT = 100;
/** How often the queue gauges are refreshed from the database. */
export const GAUGE_REFRESH_MS_DEFAULT = 2_000;
/** The gauge query sleeps at least this many times its own duration between runs. */
const GAUGE_COST_FACTOR = 20;
/** A worker counts as live while its last heartbeat is younger than this. */
const LIVE_WORKER_MS_DEFAULT = 30_000;
/** How often the storage gauges (table sizes, dead rows, the oldest snapshot) are read: 30 s. */
const STORAGE_GAUGE_REFRESH_MS = 30_000;

const SECONDS_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];
const JOB_STATES = ['scheduled', 'available', 'running', 'dead', 'cancelled'] as const;

/**
 * A label whose values are bounded: values already admitted (known queues
 * and kinds first) pass through; new ones are admitted until the cap, then
 * fold into `other`, so a stream of made-up kinds cannot blow up the series.
 */
class BoundedLabel {
  readonly #values = new Set<string>();
  readonly #max: number;

  constructor(max: number) {
    this.#max = max;
  }

  of(value: string): string {
    if (this.#values.has(value)) return value;
    if (this.#values.size >= this.#max) return OTHER;
    this.#values.add(value);
    return value;
  }
}

/** The counters and histograms of one (queue, kind), resolved once and reused per job. */
export interface JobSeries {
  started: CounterSeries;
  completed: CounterSeries;
  failed: CounterSeries;
  dead: CounterSeries;
  cancelled: CounterSeries;
  released: CounterSeries;
  staleWrites: CounterSeries;
  timedOut: CounterSeries;
  abandoned: CounterSeries;
  runSeconds: HistogramSeries;
  waitSeconds: HistogramSeries;
  endToEndSeconds: HistogramSeries;
}

/** What a worker reports to the process gauges; read at scrape time. */
export interface WorkerGaugeSource {
  readonly inFlight: number;
  readonly listening: boolean;
  readonly isLeader: boolean;
}

/** A postgres.js pool whose connections are counted for the pool gauges. */
export interface PoolGaugeSource {
  name: string;
  size: number;
  /** Statements running on the pool now (each holds one connection). */
  busy(): number;
}

export interface MetricsOptions {
  /** Register into this registry (a fresh one by default, so two Spools never clash). */
  registry?: client.Registry;
  /** The default Node process metrics (true). */
  defaultMetrics?: boolean;
  /** Distinct queue and kind values before `other` (100). */
  labelValuesMax?: number;
}

/**
 * Spool's Prometheus metrics (prom-client). One instance per process: pass
 * it to `createSpool({ metrics })` and every worker, enqueue and API request
 * of that Spool reports into it; `GET /metrics` serves `text()`.
 * docs/observability.md lists every metric and its labels.
 */
export class SpoolMetrics {
  readonly registry: client.Registry;
  readonly #queues: BoundedLabel;
  readonly #kinds: BoundedLabel;
  /** By queue, then kind: two lookups per job and no key string to build. */
  readonly #series = new Map<string, Map<string, JobSeries>>();
  readonly #workers = new Set<WorkerGaugeSource>();
  readonly #pools = new Set<PoolGaugeSource>();
  readonly #counters: Record<
    'enqueued' | 'started' | 'completed' | 'failed' | 'dead' | 'cancelled' | 'released' | 'rescued' | 'staleWrites' | 'timedOut' | 'abandoned',
    HotCounter
  >;
  readonly #histograms: Record<'runSeconds' | 'waitSeconds' | 'endToEndSeconds', HotHistogram>;
  readonly #queueJobs: client.Gauge<'queue' | 'state'>;
  readonly #oldestAvailable: client.Gauge<'queue'>;
  readonly #liveWorkers: client.Gauge;
  readonly #gaugesRefreshed: client.Gauge;
  readonly #storage: { tableBytes: client.Gauge<'table'>; hotRows: client.Gauge<'state'>; snapshotAge: client.Gauge; partitions: client.Gauge; autovacuum: client.Gauge };
  /** (queue, state) pairs reported before: set to 0 when they empty, rather than vanishing. */
  readonly #seenQueueStates = new Set<string>();
  readonly #seenQueues = new Set<string>();
  readonly http: { requests: client.Counter<'method' | 'route' | 'status'>; seconds: client.Histogram<'method' | 'route' | 'status'> };

  constructor(options: MetricsOptions = {}) {
    this.registry = options.registry ?? new client.Registry();
    const max = options.labelValuesMax ?? LABEL_VALUES_MAX_DEFAULT;
    this.#queues = new BoundedLabel(max);
    this.#kinds = new BoundedLabel(max);
    const registers = [this.registry];
    const jobCounter = (name: string, help: string) => new HotCounter(`spool_jobs_${name}_total`, help, ['queue', 'kind'], this.registry);
    this.#counters = {
      enqueued: jobCounter('enqueued', 'Jobs enqueued by this process (duplicates of a unique key not counted).'),
      started: jobCounter('started', 'Attempts started by this process\'s workers.'),
      completed: jobCounter('completed', 'Attempts that completed (written to the database).'),
      failed: jobCounter('failed', 'Attempts that failed and will be retried after a backoff.'),
      dead: jobCounter('dead', 'Jobs that went to the dead-letter queue (attempts used up, or a permanent error).'),
      cancelled: jobCounter('cancelled', 'Jobs cancelled: waiting ones by this process\'s client (API, CLI), running ones by the worker that stopped them.'),
      released: jobCounter('released', 'Running jobs handed back at shutdown without using an attempt.'),
      rescued: jobCounter('rescued', 'Jobs taken back from a worker whose lease expired (counted by the maintenance leader).'),
      staleWrites: jobCounter('stale_writes', 'Outcomes refused because this worker no longer held the job (its lease was lost).'),
      timedOut: jobCounter('timed_out', 'Attempts aborted at their timeout.'),
      abandoned: jobCounter('abandoned', 'Handlers that ignored their aborted signal past the grace period; their slot was freed.'),
    };
    const jobHistogram = (name: string, help: string) => new HotHistogram(name, help, ['queue', 'kind'], SECONDS_BUCKETS, this.registry);
    this.#histograms = {
      runSeconds: jobHistogram('spool_job_run_seconds', 'Handler run time of an attempt.'),
      waitSeconds: jobHistogram('spool_job_wait_seconds', 'From when the job was due (run_at) to when an attempt started, in database time.'),
      endToEndSeconds: jobHistogram('spool_job_end_to_end_seconds', 'From enqueue (created_at) to the end of the attempt that finished the job.'),
    };
    this.#queueJobs = new client.Gauge({
      name: 'spool_queue_jobs',
      help: `Jobs in the table by queue and state (${JOB_STATES.join(', ')}; completed jobs are counted by spool_jobs_completed_total instead).`,
      labelNames: ['queue', 'state'] as const,
      registers,
    });
    this.#oldestAvailable = new client.Gauge({
      name: 'spool_queue_oldest_available_seconds',
      help: 'Age of the oldest available job per queue (how long it has been due); 0 when none waits.',
      labelNames: ['queue'] as const,
      registers,
    });
    this.#storage = {
      tableBytes: new client.Gauge({ name: 'spool_table_bytes', help: 'Size on disk, indexes included: the hot table (unfinished jobs) and history (every partition).', labelNames: ['table'] as const, registers }),
      hotRows: new client.Gauge({ name: 'spool_hot_table_rows', help: 'Rows of the hot table by kind of row: live, dead (not vacuumed yet), finished (left from before the history layout).', labelNames: ['state'] as const, registers }),
      snapshotAge: new client.Gauge({ name: 'spool_oldest_snapshot_age_seconds', help: 'Age of the transaction whose snapshot holds back the cleanup of dead rows the longest (0: none).', registers }),
      partitions: new client.Gauge({ name: 'spool_history_partitions', help: 'Partitions of the history table (leaf tables).', registers }),
      autovacuum: new client.Gauge({ name: 'spool_autovacuum_enabled', help: '1 when autovacuum runs for the hot table.', registers }),
    };
    this.#liveWorkers = new client.Gauge({ name: 'spool_workers_live', help: 'Workers with a heartbeat in the last 30 s, across all hosts.', registers });
    this.#gaugesRefreshed = new client.Gauge({
      name: 'spool_queue_gauges_refreshed_timestamp_seconds',
      help: 'When the queue gauges were last read from the database (Unix time).',
      registers,
    });
    const workers = this.#workers;
    new client.Gauge({
      name: 'spool_jobs_in_flight',
      help: 'Attempts running in this process now.',
      registers,
      collect() {
        let total = 0;
        for (const worker of workers) total += worker.inFlight;
        this.set(total);
      },
    });
    new client.Gauge({
      name: 'spool_listener_connected',
      help: '1 while this process\'s LISTEN connection is subscribed (absent without workers).',
      registers,
      collect() {
        this.reset();
        if (workers.size > 0) this.set([...workers].every((w) => w.listening) ? 1 : 0);
      },
    });
    new client.Gauge({
      name: 'spool_leader',
      help: '1 while this process holds the maintenance lease.',
      registers,
      collect() {
        this.set([...workers].some((w) => w.isLeader) ? 1 : 0);
      },
    });
    const pools = this.#pools;
    new client.Gauge({
      name: 'spool_db_pool_connections',
      help: 'Connections of Spool\'s database pools: in_use (running a statement) or idle (free slots of the pool).',
      labelNames: ['pool', 'state'] as const,
      registers,
      collect() {
        this.reset();
        for (const pool of pools) {
          const busy = Math.min(pool.busy(), pool.size);
          this.set({ pool: pool.name, state: 'in_use' }, busy);
          this.set({ pool: pool.name, state: 'idle' }, pool.size - busy);
        }
      },
    });
    this.http = {
      requests: new client.Counter({
        name: 'spool_http_requests_total',
        help: 'HTTP API requests by method, route template and status.',
        labelNames: ['method', 'route', 'status'] as const,
        registers,
      }),
      seconds: new client.Histogram({
        name: 'spool_http_request_duration_seconds',
        help: 'HTTP API request duration by method, route template and status.',
        labelNames: ['method', 'route', 'status'] as const,
        buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
        registers,
      }),
    };
    if (options.defaultMetrics ?? true) client.collectDefaultMetrics({ register: this.registry });
  }

  /** The series of one (queue, kind), to update directly per job; label values are bounded first. */
  series(queue: string, kind: string): JobSeries {
    let byKind = this.#series.get(queue);
    if (!byKind) this.#series.set(queue, (byKind = new Map()));
    let series = byKind.get(kind);
    if (!series) {
      const labels = { queue: this.#queues.of(queue), kind: this.#kinds.of(kind) };
      const c = this.#counters;
      const h = this.#histograms;
      series = {
        started: c.started.labels(labels),
        completed: c.completed.labels(labels),
        failed: c.failed.labels(labels),
        dead: c.dead.labels(labels),
        cancelled: c.cancelled.labels(labels),
        released: c.released.labels(labels),
        staleWrites: c.staleWrites.labels(labels),
        timedOut: c.timedOut.labels(labels),
        abandoned: c.abandoned.labels(labels),
        runSeconds: h.runSeconds.labels(labels),
        waitSeconds: h.waitSeconds.labels(labels),
        endToEndSeconds: h.endToEndSeconds.labels(labels),
      };
      byKind.set(kind, series);
    }
    return series;
  }

  enqueued(queue: string, kind: string): void {
    this.#counters.enqueued.inc({ queue: this.#queues.of(queue), kind: this.#kinds.of(kind) });
  }

  /** A waiting (scheduled or available) job cancelled by this process's client. */
  cancelled(queue: string, kind: string): void {
    this.#counters.cancelled.inc({ queue: this.#queues.of(queue), kind: this.#kinds.of(kind) });
  }

  rescued(queue: string, kind: string): void {
    this.#counters.rescued.inc({ queue: this.#queues.of(queue), kind: this.#kinds.of(kind) });
  }

  /** A worker's in-flight count, listener and leadership, until the returned function is called. */
  addWorker(worker: WorkerGaugeSource): () => void {
    this.#workers.add(worker);
    return () => this.#workers.delete(worker);
  }

  addPool(pool: PoolGaugeSource): () => void {
    this.#pools.add(pool);
    return () => this.#pools.delete(pool);
  }

  /** Sets the queue gauges from one gauge query's rows. */
  #setQueueGauges(rows: readonly QueueGaugeRow[], liveWorkers: number): void {
    const now = new Map<string, number>();
    const oldest = new Map<string, number>();
    for (const row of rows) {
      if (row.queue === null) continue; // the live-workers-only row
      const queue = this.#queues.of(row.queue);
      const key = `${queue}\u0000${row.state}`;
      now.set(key, (now.get(key) ?? 0) + row.jobs); // folded queues add up under `other`
      this.#seenQueues.add(queue);
      if (row.oldest_available_s !== null) oldest.set(queue, Math.max(oldest.get(queue) ?? 0, Number(row.oldest_available_s)));
    }
    // Every pair reported before stays: one that emptied reads 0 rather than vanishing.
    for (const key of now.keys()) this.#seenQueueStates.add(key);
    for (const key of this.#seenQueueStates) {
      const [queue, state] = key.split('\u0000') as [string, string];
      this.#queueJobs.set({ queue, state }, now.get(key) ?? 0);
    }
    for (const queue of this.#seenQueues) this.#oldestAvailable.set({ queue }, oldest.get(queue) ?? 0);
    this.#liveWorkers.set(liveWorkers);
    this.#gaugesRefreshed.set(Date.now() / 1000);
  }

  /**
   * Refreshes the queue gauges every `intervalMs` (2 s) with one query, and
   * once at once; when the query itself takes longer than a twentieth of
   * that (a backlog of millions to count), it waits twenty times its
   * duration instead. Returns a function that stops it.
   */
  startQueueGauges(options: { executor: Executor; quotedSchema: string; schema: string; log: Logger; intervalMs?: number }): () => void {
    const sql = queueGaugesSql(options.quotedSchema);
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    // The storage gauges read catalogs and statistics only, every 30 s (they change slowly).
    const storageSql = storageHealthSql(options.quotedSchema);
    const refreshStorage = async () => {
      try {
        const [row] = await options.executor.query<StorageHealthRow>(storageSql, [options.schema]);
        if (row && !stopped) this.#setStorageGauges(row);
      } catch (error) {
        options.log.warn({ err: error }, 'could not refresh the storage gauges; keeping the last values');
      }
    };
    void refreshStorage();
    const storageTimer = setInterval(() => void refreshStorage(), STORAGE_GAUGE_REFRESH_MS);
    storageTimer.unref();
    const intervalMs = options.intervalMs ?? GAUGE_REFRESH_MS_DEFAULT;
    const refresh = async () => {
      const started = performance.now();
      try {
        const rows = await options.executor.query<QueueGaugeRow & { live_workers: number }>(sql, [LIVE_WORKER_MS_DEFAULT]);
        if (!stopped) this.#setQueueGauges(rows, rows[0]?.live_workers ?? 0);
      } catch (error) {
        options.log.warn({ err: error }, 'could not refresh the queue gauges; keeping the last values');
      }
      if (!stopped) {
        // Counting a backlog of millions takes a while: wait at least 20× what the query took,
        // so the gauges never cost the database more than ~5 % of a core.
        timer = setTimeout(refresh, Math.max(intervalMs, GAUGE_COST_FACTOR * (performance.now() - started)));
        timer.unref();
      }
    };
    void refresh();
    return () => {
      stopped = true;
      clearTimeout(timer);
      clearInterval(storageTimer);
    };
  }

  #setStorageGauges(row: StorageHealthRow): void {
    const g = this.#storage;
    g.tableBytes.set({ table: 'hot' }, Number(row.hot_bytes));
    g.tableBytes.set({ table: 'history' }, Number(row.history_bytes));
    g.hotRows.set({ state: 'live' }, Number(row.hot_live_rows));
    g.hotRows.set({ state: 'dead' }, Number(row.hot_dead_rows));
    g.hotRows.set({ state: 'finished' }, row.hot_finished_rows);
    g.snapshotAge.set(row.xmin_age_s ?? 0);
    g.partitions.set(row.history_partitions);
    g.autovacuum.set(row.autovacuum ? 1 : 0);
  }

  /** The Prometheus text exposition. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
