import { LimitStore } from './flow/limits.js';
import { KeyStore } from './auth/keys.js';
import { ScheduleStore } from './schedules/store.js';
import postgres from 'postgres';
import { Kysely } from 'kysely';
import { PostgresJSDialect } from 'kysely-postgres-js';
import { z } from 'zod';
import { openPool, POOL_SIZE_DEFAULT } from './db/pool.js';
import { AuditLog } from './audit/log.js';
import { Signer, signingKeysSchema } from './signing.js';
import { countingExecutor, executorFor, postgresExecutor, type Executor } from './db/executor.js';
import { channelFor, checkSchemaName, quoteSchema, SCHEMA_DEFAULT } from './db/identifier.js';
import type { Database } from './db/tables.js';
import {
  IllegalTransitionError,
  JobNotFoundError,
  issuesOf,
  parseOrThrow,
  UniqueConflictError,
  ValidationError,
  toFieldIssues,
} from './errors.js';
import { FINISHED_STATES, isJobDefinition, toJob, type AnyJobDefinition, type Job, type JobRow, type PayloadOf } from './job.js';
import { jobInput, type JobOptions, type WriteOptions } from './job-options.js';
import { SpoolMetrics } from './observability/metrics.js';
import { createLogger, type Logger } from './observability/logger.js';
import { enqueueSql, runEnqueue, type EnqueueResult } from './queries/enqueue.js';
import { buildListQuery, encodeCursor, type JobPage, type ListFilter } from './queries/list.js';
import { CANCELLABLE_STATES, RETRYABLE_STATES, cancelSql, getJobSql, retrySql } from './queries/transitions.js';
import { migrationStatus, runMigrations, type MigrationReport, type MigrationStatus } from './migrate/migrate.js';
import { queueStatsSql, tenantQueueStatsSql, setPausedSql, toQueueStats, type QueueStats, type QueueStatsRow } from './queries/queues.js';
import { purgeDeadQuery, replayDeadQuery, replayHistoryDeadSql, type DeadFilter } from './queries/dead.js';
import { isJobIdText, queueSchema, tenantSchema } from './job-fields.js';
import { Worker, type WorkerOptions } from './worker/worker.js';
import { listKindsSql, registerKindsSql, type KindRow } from './queries/kinds.js';
import { clientRegistrant, kindRegistration } from './kinds/registration.js';
import { connectionOf } from './notify/listener.js';
import { prune, type PruneReport } from './maintenance/pruner.js';
import { doctor, type DoctorReport } from './health/doctor.js';
import { EventHub, type Subscription } from './events/hub.js';
import { WebhookStore } from './webhooks/store.js';
import { parseEventId, type EventFilter, type SpoolEvent } from './events/event.js';
import { eventStreamOptionsSchema, waitOptionsSchema, type EventStreamOptions, type WaitOptions, type WaitResult } from './events/options.js';

/** How to reach the database. */
export interface SpoolOptions {
  /** postgres:// URL. Defaults to the DATABASE_URL environment variable. */
  connectionString?: string;
  /** Bring your own postgres.js pool instead; `close()` leaves it open. */
  sql?: postgres.Sql;
  /** The schema that holds Spool's tables (`spool`). */
  schema?: string;
  /** Connections in the pool Spool opens (10). */
  poolSize?: number;
  /**
   * The HMAC keys this process signs and verifies payloads with, by key id
   * (docs/security.md, "Signed payloads"): producers of kinds defined with
   * `signing: { keyId }` need that key; their workers need it too, and may
   * hold older ones during a rotation. Secrets of at least 32 characters.
   */
  signingKeys?: Record<string, string>;
  /**
   * statement_timeout of the pool Spool opens, in ms (none by default; `spool
   * serve` and `spool api` set SPOOL_API_STATEMENT_TIMEOUT_MS). Migrations are exempt.
   */
  statementTimeoutMs?: number;
  /**
   * Prometheus metrics (`new SpoolMetrics()`): enqueues, this Spool's
   * workers and the API report into it. None by default (no cost).
   */
  metrics?: SpoolMetrics;
}

const spoolOptionsSchema = z.strictObject({
  connectionString: z.string().min(1, { error: 'must not be empty' }).optional(),
  sql: z.custom<postgres.Sql>((v) => typeof v === 'function' && typeof (v as postgres.Sql).unsafe === 'function', {
    error: 'expected a postgres.js instance: postgres(url)',
  }).optional(),
  schema: z.string().optional(),
  poolSize: z.number().int().min(1, { error: 'must be at least 1' }).max(1000).optional(),
  statementTimeoutMs: z.number().int().min(0, { error: 'must be >= 0 (0: none)' }).max(2147483647).optional(),
  signingKeys: signingKeysSchema.optional(),
  metrics: z.instanceof(SpoolMetrics, { error: 'expected a SpoolMetrics instance: new SpoolMetrics()' }).optional(),
});

/** One job of an `enqueueMany` batch. */
export type EnqueueItem<J extends AnyJobDefinition | string = AnyJobDefinition | string> = {
  /** A job definition (payload type-checked and validated) or a bare kind. */
  job: J;
  payload?: PayloadOf<J>;
} & JobOptions;

/** Checks each item's payload against its own job definition, so one batch may mix kinds. */
type CheckedItems<T extends readonly unknown[]> = {
  [K in keyof T]: T[K] extends { job: infer J extends AnyJobDefinition | string } ? EnqueueItem<J> : EnqueueItem;
};

/**
 * The Spool client: enqueue, inspect, cancel and retry jobs.
 * Create it with `createSpool`; call `close()` when done.
 */
export class Spool {
  /** The schema that holds Spool's tables. */
  readonly schema: string;
  /** The postgres.js pool Spool uses. */
  readonly sql: postgres.Sql;
  /** A Kysely instance over the same pool, typed with Spool's tables. */
  readonly db: Kysely<Database>;

  /** The schema name quoted for SQL text. */
  readonly quotedSchema: string;
  /** The NOTIFY channel of this schema (`<schema>_jobs`). */
  readonly channel: string;
  /** Where this Spool's enqueues, workers and API report metrics, if anywhere. */
  readonly metrics: SpoolMetrics | undefined;

  /** Flow limits: concurrency, rate, group weights, fairness (docs/flow-control.md). */
  readonly limits: LimitStore;
  /** Cron schedules (docs/flow-control.md). */
  readonly schedules: ScheduleStore;
  /** API keys (docs/security.md). */
  readonly keys: KeyStore;
  /** The audit log: who changed what through the API and `spool keys` (docs/security.md). */
  readonly audit: AuditLog;
  /** Signs the payloads of signed kinds at enqueue, and verifies them in this Spool's workers. */
  readonly signer: Signer;
  /** Outgoing webhook subscriptions (docs/events.md). */
  readonly webhooks: WebhookStore;

  readonly #ownsPool: boolean;
  #eventHub: EventHub | undefined;
  #tenantRole: Promise<boolean> | undefined;
  readonly #pool: Executor;
  readonly #untrackPool: (() => void) | undefined;
  readonly #queueGauges = new Map<SpoolMetrics, () => void>();
  readonly #statements: {
    enqueue: string; cancel: string; retry: string; getJob: string; setPaused: string; queueStats: string; tenantQueueStats: string;
    registerKinds: string; listKinds: string;
  };

  constructor(options: SpoolOptions = {}) {
    const parsed = spoolOptionsSchema.safeParse(options);
    if (!parsed.success) throw new ValidationError(toFieldIssues(parsed.error.issues, ''));
    this.schema = checkSchemaName(options.schema ?? SCHEMA_DEFAULT);
    const connectionString = options.connectionString ?? process.env.DATABASE_URL;
    if (options.sql) {
      this.sql = options.sql;
      this.#ownsPool = false;
    } else if (connectionString) {
      this.sql = openPool(connectionString, { max: options.poolSize ?? POOL_SIZE_DEFAULT, statementTimeoutMs: options.statementTimeoutMs });
      this.#ownsPool = true;
    } else {
      throw new ValidationError([
        {
          path: 'connectionString',
          message: 'no database given: pass connectionString (postgres://user:pass@host:5432/db), an sql pool, or set DATABASE_URL',
        },
      ]);
    }
    this.db = new Kysely<Database>({ dialect: new PostgresJSDialect({ postgres: this.sql }) });
    this.metrics = options.metrics;
    this.#pool = postgresExecutor(this.sql, true);
    if (this.metrics) {
      const counted = countingExecutor(this.#pool);
      this.#pool = counted.executor;
      this.#untrackPool = this.metrics.addPool({ name: 'client', size: this.sql.options.max, busy: counted.busy });
    }
    this.channel = channelFor(this.schema);
    const q = quoteSchema(this.schema);
    this.quotedSchema = q;
    this.limits = new LimitStore(this.#pool, q);
    this.schedules = new ScheduleStore(this.#pool, this.sql, q);
    this.keys = new KeyStore(this.#pool, q);
    this.audit = new AuditLog(this.#pool, q);
    this.webhooks = new WebhookStore(this.#pool, q);
    this.signer = new Signer(parsed.data.signingKeys);
    this.#statements = {
      enqueue: enqueueSql(q),
      cancel: cancelSql(q),
      retry: retrySql(q),
      getJob: getJobSql(q),
      setPaused: setPausedSql(q),
      queueStats: queueStatsSql(q),
      tenantQueueStats: tenantQueueStatsSql(q),
      registerKinds: registerKindsSql(q),
      listKinds: listKindsSql(q),
    };
  }

  /** Creates or upgrades Spool's schema (idempotent; safe to call from many processes at once). */
  migrate(): Promise<MigrationReport> {
    return runMigrations(this.sql, this.schema);
  }

  /**
   * Enqueues one job. With a job definition the payload is type-checked and
   * validated by its schema; with a kind string it may be any JSON.
   *
   * @example
   * const { id } = await spool.enqueue(sendEmail, { to: 'a@b.c' }, { delayMs: 60_000 });
   * await sql.begin((tx) => spool.enqueue('audit.write', { user: 1 }, { tx })); // joins tx
   */
  async enqueue<J extends AnyJobDefinition | string>(
    job: J,
    payload?: PayloadOf<J>,
    options: JobOptions & WriteOptions = {},
  ): Promise<EnqueueResult> {
    const { tx, ...jobOptions } = options ?? {};
    const element = jobInput(job, payload, jobOptions, '', this.signer);
    const [result] = await runEnqueue(this.#executor(tx), this.#statements.enqueue, [element.text]);
    if (this.metrics && !result!.duplicate) this.metrics.enqueued(result!.queue, element.kind);
    return result!;
  }

  /**
   * Enqueues many jobs in one statement (one round trip, one NOTIFY).
   * Results are in input order. Every item is validated before anything is
   * sent: one bad item rejects the batch and names its index.
   *
   * @example
   * await spool.enqueueMany(users.map((u) => ({ job: sendEmail, payload: { to: u.email } })));
   */
  async enqueueMany<const T extends readonly EnqueueItem[]>(
    items: T & CheckedItems<T>,
    options: WriteOptions = {},
  ): Promise<EnqueueResult[]> {
    if (!Array.isArray(items)) throw new ValidationError([{ path: 'items', message: 'expected an array of { job, payload, ...options }' }]);
    const elements = items.map((item, index) => {
      if (typeof item !== 'object' || item === null) {
        throw new ValidationError([{ path: `items.${index}`, message: 'expected { job, payload, ...options }' }]);
      }
      const { job, payload, ...jobOptions } = item as EnqueueItem;
      return jobInput(job, payload, jobOptions, `items.${index}`, this.signer);
    });
    const results = await runEnqueue(this.#executor(options?.tx), this.#statements.enqueue, elements.map((e) => e.text));
    if (this.metrics) {
      results.forEach((result, index) => {
        if (!result.duplicate) this.metrics!.enqueued(result.queue, elements[index]!.kind);
      });
    }
    return results;
  }

  /** One job by id, or null. */
  async getJob(id: string | number | bigint, options: ScopeOptions = {}): Promise<Job | null> {
    const rows = await this.#executor(options?.tx).query<JobRow>(this.#statements.getJob, [jobId(id), scopeOf(options)]);
    return rows[0] ? toJob(rows[0]) : null;
  }

  /**
   * Waits until job `id` is completed, dead or cancelled, or `timeoutMs`
   * (30,000) passes, or `signal` aborts; then gives the job as it is, with
   * `timedOut` telling which. Woken by NOTIFY through the process's one
   * LISTEN connection: thousands of waiters cost no connection each.
   *
   * @example
   * const { job, timedOut } = await spool.waitFor(id, { timeoutMs: 10_000 });
   */
  async waitFor(id: string | number | bigint, options: WaitOptions = {}): Promise<WaitResult> {
    const { timeoutMs, signal, tenant } = parseOrThrow(waitOptionsSchema, options ?? {});
    const text = jobId(id);
    const read = async () => {
      const job = await this.getJob(text, { tenant });
      if (!job) throw new JobNotFoundError(text);
      return job;
    };
    const finished = (job: Job) => (FINISHED_STATES as readonly string[]).includes(job.state);
    const outcome = await this.eventHub.waitForEnd(text, async () => {
      const job = await read();
      return finished(job) ? job : undefined;
    }, { timeoutMs, signal });
    if (outcome.checked) return { job: outcome.checked, timedOut: false };
    const job = await read();
    return { job, timedOut: !finished(job) };
  }

  /**
   * Enqueues a job and waits for it to finish (see `waitFor`). A duplicate
   * (its unique key held by an unfinished job) waits for that job. Not
   * inside a transaction: the job would not exist for workers until it commits.
   *
   * @example
   * const { job } = await spool.enqueueAndWait(resize, { url }, { timeoutMs: 5_000 });
   * if (job.state === 'completed') use(job.result);
   */
  async enqueueAndWait<J extends AnyJobDefinition | string>(
    job: J,
    payload?: PayloadOf<J>,
    options: JobOptions & Omit<WaitOptions, 'tenant'> = {},
  ): Promise<WaitResult & { duplicate: boolean }> {
    if ((options as WriteOptions).tx !== undefined) {
      throw new ValidationError([{ path: 'tx', message: 'enqueueAndWait cannot join a transaction (the job is not visible to workers before it commits): enqueue in the transaction, then waitFor after the commit' }]);
    }
    const { timeoutMs, signal, ...jobOptions } = options;
    const { id, duplicate } = await this.enqueue(job, payload, jobOptions);
    return { ...(await this.waitFor(id, { timeoutMs, signal, tenant: jobOptions.tenant })), duplicate };
  }

  /**
   * The job events (enqueued, started, progress, retrying, released,
   * completed, dead, cancelled) matching the filter, as an async iterator:
   * from now on, or replayed in order from just after `after` (an event's
   * id) within the events retention (1 day). Ends when `signal` aborts, or
   * (with `dropped` set on the iterator's subscription) when this reader
   * falls more than `maxBuffer` events behind.
   *
   * @example
   * for await (const event of spool.events({ type: ['completed'], queue: ['mail'] })) console.log(event.job.id);
   */
  events(options: EventStreamOptions = {}): Subscription {
    const { after, signal, maxBuffer, ...filter } = parseOrThrow(eventStreamOptionsSchema, options ?? {});
    const subscription = this.eventHub.subscribe(filter as EventFilter, { after: after === undefined ? undefined : parseEventId(after, 'after'), maxBuffer });
    if (signal) {
      if (signal.aborted) subscription.close();
      else signal.addEventListener('abort', () => subscription.close(), { once: true });
    }
    return subscription;
  }

  /** This process's one reader of events and its LISTEN connection (started on first use). */
  get eventHub(): EventHub {
    this.#eventHub ??= new EventHub({
      executor: this.#pool,
      quotedSchema: this.quotedSchema,
      channel: this.channel,
      connection: this.connectionSettings(),
      log: createLogger({ level: process.env.SPOOL_LOG_LEVEL ?? 'info' }),
    });
    return this.#eventHub;
  }

  /**
   * A page of jobs, newest first unless `order: 'asc'`, filtered by state,
   * queue, kind, tag and creation time. Pass `nextCursor` back for the next page.
   */
  async listJobs(filter: ListFilter = {}, options: WriteOptions = {}): Promise<JobPage<Job>> {
    const { query, limit, order, maxBytes } = buildListQuery(this.db, this.schema, filter);
    const compiled = query.compile();
    const executor = this.#executor(options?.tx);
    const jobs: Job[] = [];
    let bytes = 0;
    let more = false;
    let truncated = false;
    const take = (rows: JobRow[]): boolean => {
      for (const row of rows) {
        if (jobs.length === limit) return !(more = true);
        const job = toJob(row);
        const size = Buffer.byteLength(JSON.stringify(job));
        if (jobs.length > 0 && bytes + size > maxBytes) return !(more = truncated = true);
        jobs.push(job);
        bytes += size;
      }
      return true;
    };
    // A cursor reads a few rows at a time, so a page of large jobs stops at the budget in the database too.
    if (executor.cursor) await executor.cursor<JobRow>(compiled.sql, compiled.parameters, LIST_CURSOR_BATCH, take);
    else take(await executor.query<JobRow>(compiled.sql, compiled.parameters));
    const last = jobs[jobs.length - 1];
    return { jobs, nextCursor: more && last ? encodeCursor(last.id, order) : null, truncated };
  }

  /**
   * Cancels a job. A scheduled or available job is `cancelled` at once; a
   * running one is flagged (`cancelRequestedAt`) and its worker is told to
   * abort the handler's signal; the worker then records `cancelled`.
   * Throws JobNotFoundError, or IllegalTransitionError if it already finished.
   */
  async cancelJob(id: string | number | bigint, options: ScopeOptions = {}): Promise<Job> {
    const key = jobId(id);
    const tenant = scopeOf(options);
    const executor = this.#executor(options?.tx);
    const rows = await executor.query<JobRow>(this.#statements.cancel, [key, this.channel, tenant]);
    if (rows[0]) {
      // A waiting job ends cancelled here; a running one is counted by its worker when it stops.
      if (rows[0].state === 'cancelled') this.metrics?.cancelled(rows[0].queue, rows[0].kind);
      return toJob(rows[0]);
    }
    throw await this.#whyNot(executor, key, 'cancel', CANCELLABLE_STATES, tenant);
  }

  /**
   * Runs a finished (completed, dead or cancelled) job again: it becomes
   * `available` now with at least one attempt left. Throws JobNotFoundError,
   * IllegalTransitionError if it has not finished, or UniqueConflictError if
   * another unfinished job now holds its unique key.
   */
  async retryJob(id: string | number | bigint, options: ScopeOptions = {}): Promise<Job> {
    const key = jobId(id);
    const tenant = scopeOf(options);
    const executor = this.#executor(options?.tx);
    let rows: JobRow[];
    try {
      rows = await executor.query<JobRow>(this.#statements.retry, [key, this.channel, tenant]);
    } catch (error) {
      if ((error as { code?: string }).code === '23505') {
        throw new UniqueConflictError(
          `cannot retry job ${key}: another unfinished job in its queue holds its unique key; wait for it to finish or cancel it`,
          { cause: error },
        );
      }
      throw error;
    }
    if (rows[0]) return toJob(rows[0]);
    throw await this.#whyNot(executor, key, 'retry', RETRYABLE_STATES, tenant);
  }

  /**
   * Starts a worker that runs the given job definitions' handlers.
   *
   * @example
   * const worker = await spool.work({ jobs: [sendEmail], concurrency: 20 });
   * // …
   * await worker.stop({ graceMs: 10_000 });
   */
  async work(options: WorkerOptions): Promise<Worker> {
    const worker = new Worker(this, options);
    await worker.start();
    return worker;
  }

  /**
   * Registers job kinds in the database (the `kinds` table) without running
   * a worker, for producers that have the definitions: jobs enqueued by kind
   * name alone (HTTP, CLI, SQL) then get their defaults, and the API checks
   * their payloads against the kinds' schemas. Workers register the kinds
   * they handle by themselves at start. One statement; the latest
   * registration of a kind wins.
   *
   * @example
   * await spool.registerKinds([sendEmail, resizeImage]);
   */
  async registerKinds(
    definitions: readonly AnyJobDefinition[],
    options: { registeredBy?: string; removeOnComplete?: boolean; queue?: string } = {},
  ): Promise<void> {
    if (!Array.isArray(definitions)) throw new ValidationError([{ path: 'definitions', message: 'expected an array of defineJob(...) values' }]);
    const seen = new Set<string>();
    const rows = definitions.map((definition, index) => {
      if (!isJobDefinition(definition)) throw new ValidationError([{ path: `definitions.${index}`, message: 'expected a defineJob(...) value' }]);
      if (seen.has(definition.kind)) throw new ValidationError([{ path: `definitions.${index}.kind`, message: `kind ${definition.kind} is given twice: register each kind once` }]);
      seen.add(definition.kind);
      return kindRegistration(definition, options);
    });
    if (rows.length === 0) return;
    await this.#pool.query(this.#statements.registerKinds, [JSON.stringify(rows), options.registeredBy ?? clientRegistrant()]);
  }

  /** Every registered kind: its defaults, payload schema, waiting jobs, live workers, and when a worker last had it. */
  async listKinds(): Promise<Kind[]> {
    const rows = await this.#pool.query<KindRow>(this.#statements.listKinds, []);
    return rows.map(toKind);
  }

  /** Workers stop claiming from this queue (running jobs finish). */
  async pauseQueue(queue: string): Promise<void> {
    await this.#setPaused(queue, true);
  }

  /** Workers claim from this queue again, and are woken at once. */
  async resumeQueue(queue: string): Promise<void> {
    await this.#setPaused(queue, false);
  }

  /**
   * Every queue with jobs or settings: jobs by state, the age of the oldest
   * available job, and whether it is paused. Scans the jobs table.
   */
  async queueStats(options: ScopeOptions = {}): Promise<QueueStats[]> {
    const executor = this.#executor(options.tx);
    const tenant = scopeOf(options);
    const rows = tenant === null
      ? await executor.query<QueueStatsRow>(this.#statements.queueStats, [])
      : await executor.query<QueueStatsRow>(this.#statements.tenantQueueStats, [tenant]);
    return rows.map(toQueueStats);
  }

  /**
   * Replays dead jobs (the dead-letter queue): each becomes available now
   * with one more attempt; workers are woken. `{}` replays every dead job.
   * Jobs whose unique key an unfinished job now holds are skipped.
   *
   * @example
   * await spool.replayDead({ ids: ['42', '43'] });
   * await spool.replayDead({ queue: 'mail', kind: 'email.send' });
   */
  async replayDead(filter: DeadFilter = {}, options: WriteOptions = {}): Promise<{ ids: string[] }> {
    const executor = this.#executor(options.tx);
    // Dead rows still in the hot table from before sql/0005 (updated in place), then those in history (moved back).
    const legacy = replayDeadQuery(this.db, this.schema, filter).compile();
    const channel = `$${legacy.parameters.length + 1}`;
    const inPlace = await executor.query<{ id: string }>(
      `WITH replayed AS (${legacy.sql})
       SELECT replayed.id::text AS id,
              (SELECT count(*) FROM (SELECT pg_notify(${channel}::text, json_build_object('queues', array_agg(DISTINCT queue), 'scheduled', false)::text)
                                       FROM replayed) wake) AS woke
         FROM replayed`,
      [...legacy.parameters, this.channel],
    );
    const history = replayHistoryDeadSql(this.db, this.schema, filter, this.channel);
    const moved = await executor.query<{ id: string }>(history.sql, history.parameters);
    const ids = [...inPlace, ...moved].map((row) => row.id);
    return { ids: ids.sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0)) };
  }

  /** Deletes dead jobs for good; returns how many. `{}` purges every dead job. */
  async purgeDead(filter: DeadFilter = {}, options: WriteOptions = {}): Promise<number> {
    const executor = this.#executor(options.tx);
    let deleted = 0;
    for (const table of ['jobs', 'job_history'] as const) {
      const compiled = purgeDeadQuery(this.db, this.schema, filter, table).compile();
      const rows = await executor.query<{ n: number }>(`WITH purged AS (${compiled.sql}) SELECT count(*)::int AS n FROM purged`, compiled.parameters);
      deleted += rows[0]?.n ?? 0;
    }
    return deleted;
  }

  /**
   * Keeps history in shape now, as the maintenance leader does every
   * minute: day partitions created ahead, finished rows from before the
   * upgrade moved out of the hot table, expired day partitions dropped and
   * the rest of expired history deleted in batches (retention per state and
   * queue: the `retention` table). `{ dryRun: true }` changes nothing and
   * reports what would go.
   */
  prune(options: { dryRun?: boolean } = {}): Promise<PruneReport> {
    return prune(this.#pool, this.quotedSchema, this.schema, { dryRun: options.dryRun === true });
  }

  /**
   * The storage's health: hot-table and history sizes, dead rows and the
   * last (auto)vacuum of the hot table, the session whose snapshot holds
   * back cleanup the longest, partitions and the next one to drop, and
   * plain-language warnings (`spool doctor`).
   */
  doctor(options: { xminWarnSeconds?: number } = {}): Promise<DoctorReport> {
    return doctor(this.#pool, this.schema, this.quotedSchema, options);
  }

  /** Which migrations the schema has and which this version of Spool would still apply. */
  migrationStatus(): Promise<MigrationStatus> {
    return migrationStatus(this.sql, this.schema);
  }

  async #setPaused(queue: string, paused: boolean): Promise<void> {
    const issues = issuesOf(queueSchema, queue, 'queue');
    if (issues.length > 0) throw new ValidationError(issues);
    await this.#pool.query(this.#statements.setPaused, [queue, paused, this.channel]);
  }

  /** Settings for dedicated connections to the same database (a worker's pool, the LISTEN connection). */
  connectionSettings(): postgres.Options<Record<string, postgres.PostgresType>> {
    return connectionOf(this.sql);
  }

  /**
   * Keeps `metrics`' queue gauges (jobs by queue and state, oldest
   * available age, live workers) fresh: one query every 2 s until close().
   * Idempotent; workers and the API call it. Nothing without metrics.
   */
  startQueueGauges(options: { log?: Logger; metrics?: SpoolMetrics } = {}): void {
    const metrics = options.metrics ?? this.metrics;
    if (!metrics || this.#queueGauges.has(metrics)) return;
    this.#queueGauges.set(
      metrics,
      metrics.startQueueGauges({ executor: this.#pool, quotedSchema: this.quotedSchema, schema: this.schema, log: options.log ?? createLogger() }),
    );
  }

  /** Closes the pool Spool opened (a pool passed in as `sql` stays open). */
  async close(): Promise<void> {
    await this.#eventHub?.close();
    for (const stop of this.#queueGauges.values()) stop();
    this.#queueGauges.clear();
    this.#untrackPool?.();
    if (this.#ownsPool) await this.sql.end({ timeout: 5 });
  }

  /**
   * Runs `fn` in a transaction limited to one tenant, for the API's
   * tenant-bound keys: `spool.tenant` is set for row-level security
   * (sql/0011), and the transaction runs as the role `spool_tenant` when this
   * database user may become it, so the policies bind even where Spool
   * connects as the tables' owner or a superuser. Pass the transaction and
   * the tenant to each call: the SQL filters are the first wall, RLS the second.
   *
   * @example
   * await spool.asTenant('acme', (tx) => spool.getJob(id, { tx, tenant: 'acme' }));
   */
  async asTenant<T>(tenant: string, fn: (tx: postgres.TransactionSql) => Promise<T>): Promise<T> {
    const scoped = scopeOf({ tenant })!;
    const underRls = await this.tenantRoleAvailable();
    return (await this.sql.begin(async (tx) => {
      // Both settings in one round trip: set_config('role', …, true) is SET LOCAL ROLE.
      if (underRls) await tx`SELECT set_config('spool.tenant', ${scoped}, true), set_config('role', 'spool_tenant', true)`;
      else await tx`SELECT set_config('spool.tenant', ${scoped}, true)`;
      return fn(tx);
    })) as T;
  }

  /** Whether this database user may become `spool_tenant` (sql/0011), so tenant transactions run under row-level security. */
  tenantRoleAvailable(): Promise<boolean> {
    this.#tenantRole ??= this.sql<{ ok: boolean }[]>`
      SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'spool_tenant')
                  THEN pg_has_role(current_user, 'spool_tenant', 'MEMBER') ELSE false END AS ok`
      .then((rows) => rows[0]?.ok === true)
      .catch((error: unknown) => {
        this.#tenantRole = undefined;
        throw error;
      });
    return this.#tenantRole;
  }

  #executor(tx: unknown): Executor {
    return tx === undefined ? this.#pool : executorFor(tx);
  }

  async #whyNot(executor: Executor, id: string, action: string, allowed: readonly string[], tenant: string | null): Promise<Error> {
    // Scoped like the action: another tenant's job is not found, not "in the wrong state".
    const rows = await executor.query<JobRow>(this.#statements.getJob, [id, tenant]);
    return rows[0] ? new IllegalTransitionError(id, rows[0].state, action, allowed) : new JobNotFoundError(id);
  }
}

/** A registered job kind, as `listKinds()`, `GET /kinds` and `spool kinds` show it. */
export interface Kind {
  kind: string;
  /** Defaults for jobs enqueued by this kind's name alone; the caller's own values win. */
  queue: string;
  priority: number;
  maxAttempts: number;
  timeoutMs: number | null;
  /** null: the worker's own setting decides. */
  removeOnComplete: boolean | null;
  tags: string[];
  /** JSON Schema of the payload (from the kind's zod schema); null: any JSON. */
  payloadSchema: unknown;
  /** The worker id (or `client:<host>:<pid>`) of the latest registration. */
  registeredBy: string;
  registeredAt: Date;
  /** When a worker last had it: its latest registration, or a live worker's heartbeat. */
  lastSeenAt: Date;
  /** Live workers that handle it. */
  workers: number;
  /** Its jobs that are scheduled or available. */
  waiting: number;
}

function toKind(row: KindRow): Kind {
  return {
    kind: row.kind,
    queue: row.queue,
    priority: row.priority,
    maxAttempts: row.max_attempts,
    timeoutMs: row.timeout_ms,
    removeOnComplete: row.remove_on_complete,
    tags: row.tags,
    payloadSchema: row.payload_schema,
    registeredBy: row.registered_by,
    registeredAt: row.registered_at,
    lastSeenAt: row.last_seen_at,
    workers: row.workers,
    waiting: row.waiting,
  };
}

/** Creates a Spool client. */
export function createSpool(options: SpoolOptions = {}): Spool {
  return new Spool(options);
}

/** Options of a read or change of jobs: the caller's transaction, and the tenant it is limited to. */
export interface ScopeOptions extends WriteOptions {
  /** Only this tenant's jobs: another tenant's job is not found (the API sets it from a tenant-bound key). */
  tenant?: string;
}

function scopeOf(options: ScopeOptions | undefined): string | null {
  const tenant = options?.tenant;
  if (tenant === undefined) return null;
  const issues = issuesOf(tenantSchema, tenant, 'tenant');
  if (issues.length > 0) throw new ValidationError(issues);
  return tenant;
}

/** Rows per read of a listing's cursor: few round trips for small jobs, little memory for large ones. */
const LIST_CURSOR_BATCH = 25;

function jobId(id: unknown): string {
  const text = typeof id === 'number' || typeof id === 'bigint' ? String(id) : id;
  if (typeof text !== 'string' || !isJobIdText(text)) {
    throw new ValidationError([{ path: 'id', message: `expected a positive integer job id, got ${JSON.stringify(String(id))}` }]);
  }
  return text;
}

