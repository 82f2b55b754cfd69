import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { z } from 'zod';
import type { Spool } from '../client.js';
import postgres from 'postgres';
import { countingExecutor, postgresExecutor, type Executor } from '../db/executor.js';
import { ValidationError, toFieldIssues } from '../errors.js';
import { isJobDefinition, type AnyJobDefinition } from '../job.js';
import { QUEUE_DEFAULT, queueSchema } from '../job-fields.js';
import { LeaderElector } from '../maintenance/leader.js';
import { Promoter } from '../maintenance/promoter.js';
import { Reaper } from '../maintenance/reaper.js';
import { Pruner } from '../maintenance/pruner.js';
import { Scheduler } from '../maintenance/scheduler.js';
import { isScheduleDefinition, type ScheduleDefinition } from '../schedules/schedule.js';
import { Listener, LISTENER_CHECK_INTERVAL_DEFAULT, type Notification } from '../notify/listener.js';
import { WebhookDispatcher } from '../webhooks/dispatcher.js';
import { createLogger, type Logger } from '../observability/logger.js';
import { SpoolMetrics, type JobSeries } from '../observability/metrics.js';
import { tracingEnabled } from '../observability/tracing.js';
import { claimSql, ORPHAN_SAMPLE, orphanKindsSql, type ClaimedRow, type FlowClaimedRow } from '../queries/claim.js';
import { claimFlowSql, flowGroupsSql, flowQueuesSql } from '../queries/flow.js';
import type { Outcome } from '../queries/finish.js';
import { unregisterSql } from '../queries/heartbeat.js';
import { progressSql } from '../queries/progress.js';
import { Completer, COMPLETION_BATCH_DEFAULT, COMPLETION_FLUSH_MS_DEFAULT, appliedState, type AppliedState, type FinishExceptions } from './completer.js';
import { execute, type AbortCause, type AttemptSettings, type Execution } from './executor.js';
import { Heartbeat, HEARTBEAT_MS_DEFAULT, LEASE_MS_DEFAULT } from './heartbeat.js';

export const CONCURRENCY_DEFAULT = 10;
export const POLL_INTERVAL_DEFAULT = 2_000;
export const POLL_INTERVAL_IDLE_MAX_DEFAULT = 30_000;
export const ABANDON_AFTER_MS_DEFAULT = 5_000;
export const SHUTDOWN_GRACE_MS_DEFAULT = 30_000;
export const PROMOTE_INTERVAL_MAX_DEFAULT = 1_000;
export const WORKER_POOL_SIZE_DEFAULT = 5;
/** Most one progress write per attempt this often (ms). */
export const PROGRESS_INTERVAL_MS_DEFAULT = 1_000;
/** Claim statements a worker keeps in flight at once: one runs in the database while the last one's rows are started. */
const CLAIMS_IN_FLIGHT = 2;
/** Most jobs a worker claims ahead of its free slots. */
export const PREFETCH_MAX_DEFAULT = 1_000;
/** The prefetch buffer holds about this much work, at the recent average run time. */
export const PREFETCH_WINDOW_MS = 100;
/** How often a worker reloads which of its queues are under flow control, besides the NOTIFY a change sends. */
const FLOW_REFRESH_MS = 5_000;
/** While a concurrency limit keeps a queue full, how often to look again (plus jitter); a local outcome written looks at once. */
const CONCURRENCY_RECHECK_MS = 250;
/** The most one claim_flow() call takes (sql/0007: the bound its shared limiter locks rely on). */
const FLOW_CLAIM_MAX = 1_000;
/**
 * How long a fair queue's list of groups with waiting jobs is reused between
 * claims (a NOTIFY of new jobs in the queue drops it at once): looking the
 * groups up is one index descent per group, which per claim cost as much as
 * the claim's own work over 100 groups.
 */
const FLOW_GROUPS_TTL_MS = 1_000;

const ms = (name: string, min = 1) =>
  z
    .number({ error: `expected ${name} in whole milliseconds` })
    .int({ error: 'expected whole milliseconds' })
    .min(min, { error: `must be at least ${min}` })
    .max(2_147_483_647, { error: 'must be at most 2147483647' });

const workerOptionsSchema = z.strictObject({
  jobs: z.array(z.unknown()).min(1, { error: 'give at least one job definition with a handler' }),
  schedules: z.array(z.custom<ScheduleDefinition>(isScheduleDefinition, { error: 'expected a defineSchedule(...) value' })).optional(),
  queues: z.array(queueSchema).min(1, { error: 'give at least one queue, or omit it' }).optional(),
  concurrency: z.number().int({ error: 'expected a whole number' }).min(1, { error: 'must be at least 1' }).max(10_000).optional(),
  prefetch: z.number().int({ error: 'expected a whole number' }).min(0, { error: 'must be at least 0' }).max(10_000).optional(),
  asyncCommit: z.boolean().optional(),
  poolSize: z.number().int().min(2, { error: 'must be at least 2' }).max(100).optional(),
  leaseMs: ms('leaseMs', 100).optional(),
  heartbeatMs: ms('heartbeatMs', 10).optional(),
  pollIntervalMs: ms('pollIntervalMs', 10).optional(),
  pollIntervalIdleMaxMs: ms('pollIntervalIdleMaxMs', 10).optional(),
  abandonAfterMs: ms('abandonAfterMs', 0).optional(),
  shutdownGraceMs: ms('shutdownGraceMs', 0).optional(),
  listenerCheckMs: ms('listenerCheckMs', 10).optional(),
  progressIntervalMs: ms('progressIntervalMs', 0).optional(),
  maintenance: z.boolean().optional(),
  webhooks: z.boolean().optional(),
  promoteIntervalMaxMs: ms('promoteIntervalMaxMs', 10).optional(),
  reapIntervalMs: ms('reapIntervalMs', 10).optional(),
  pruneIntervalMs: ms('pruneIntervalMs', 10).optional(),
  completionFlushMs: ms('completionFlushMs', 0).optional(),
  completionBatch: z.number().int().min(1).max(10_000).optional(),
  removeOnComplete: z.boolean().optional(),
  metrics: z.instanceof(SpoolMetrics, { error: 'expected a SpoolMetrics instance: new SpoolMetrics()' }).optional(),
  logPayloads: z.boolean().optional(),
  handleSignals: z.boolean().optional(),
  logger: z.custom<Logger>((v) => typeof v === 'object' && v !== null && typeof (v as Logger).child === 'function', {
    error: 'expected a pino logger',
  }).optional(),
  workerId: z.string().min(1).max(200).optional(),
});

/**
 * Options of `spool.work()`. Every duration is in milliseconds; defaults are
 * the exported `*_DEFAULT` constants.
 */
export interface WorkerOptions {
  /** Job definitions with handlers (`defineJob({ kind, schema, handler })`). Only their kinds are claimed. */
  jobs: AnyJobDefinition[];
  /**
   * Cron schedules (`defineSchedule(...)`) to create or update at start; the
   * maintenance leader enqueues their ticks. A schedule removed from code
   * stays until removed (`spool schedules remove`).
   */
  schedules?: ScheduleDefinition[];
  /** Queues to claim from; default: the queues of `jobs` (`default` for those without one). */
  queues?: string[];
  /** Jobs run at once by this worker (10). */
  concurrency?: number;
  /**
   * Most jobs claimed ahead of free slots into a local buffer, so that
   * claiming overlaps running (1,000). The buffer is sized to hold about 100 ms
   * of work at the recent average run time, so quick jobs are claimed in big
   * batches while slow ones (a buffered job holds a lease and waits for this
   * worker) are never hoarded. 0 turns it off.
   */
  prefetch?: number;
  /**
   * The worker's own connections commit without waiting for the WAL flush
   * (`synchronous_commit = off`; true). Safe for at-least-once: a claim or an
   * outcome lost in a server crash means the job runs again, never that it is
   * lost. Enqueues always commit synchronously. Set false behind a pooler
   * that refuses startup parameters.
   */
  asyncCommit?: boolean;
  /** Connections of the worker's own pool (5). */
  poolSize?: number;
  /** How long a claimed job stays this worker's without a heartbeat (30,000). */
  leaseMs?: number;
  /** How often leases are extended (10,000); keep it well under leaseMs. */
  heartbeatMs?: number;
  /** Fallback poll when no NOTIFY arrives (2,000); doubles while idle up to pollIntervalIdleMaxMs (30,000). */
  pollIntervalMs?: number;
  pollIntervalIdleMaxMs?: number;
  /** How long a handler may ignore its aborted signal before its slot is freed (5,000). */
  abandonAfterMs?: number;
  /** Default grace of `stop()` and of SIGTERM/SIGINT (30,000). */
  shutdownGraceMs?: number;
  /** How often the LISTEN connection checks it still listens (30,000). */
  listenerCheckMs?: number;
  /**
   * Most one progress write (and `progress` event) per attempt this often
   * (1,000): `ctx.progress()` called faster keeps only the last value, written
   * when the interval ends. 0 writes every call.
   */
  progressIntervalMs?: number;
  /** Take part in leader election for promotion and reaping (true). */
  maintenance?: boolean;
  /**
   * As the maintenance leader, turn recorded events into webhook deliveries
   * (true; docs/events.md). The deliveries run in workers that have
   * `webhookDeliveryJob(spool)` among their jobs (`spool serve` and `spool work` do).
   */
  webhooks?: boolean;
  /** The promoter sleeps until the next due job, at most this long (1,000). */
  promoteIntervalMaxMs?: number;
  /** How often the leader looks for expired leases (leaseMs / 6, at most 5,000). */
  reapIntervalMs?: number;
  /**
   * How often the leader keeps history in shape: partitions ahead, finished
   * rows from before the upgrade moved out of the hot table, expired history
   * dropped (60,000; docs/operations.md).
   */
  pruneIntervalMs?: number;
  /** Outcomes are written at most this long after the first one is buffered (20), */
  completionFlushMs?: number;
  /** ... or as soon as this many are buffered (2,000). */
  completionBatch?: number;
  /**
   * Delete completed jobs' rows instead of keeping them as `completed`, for
   * kinds whose definition does not say (false). A delete costs the
   * database about a third of the update that keeps the row.
   */
  removeOnComplete?: boolean;
  /** Where to count jobs and their timings; default: the Spool's `metrics`, if any. */
  metrics?: SpoolMetrics;
  /** Put each job's payload in its `job started` debug line (false: payloads stay out of logs). */
  logPayloads?: boolean;
  /** Stop gracefully on SIGTERM/SIGINT, then re-raise the signal (true). */
  handleSignals?: boolean;
  logger?: Logger;
  /** Default: `<hostname>:<pid>:<random>`. */
  workerId?: string;
}

/** Counters of a worker, for tests, logs and (later) metrics. */
export interface WorkerStats {
  /** Claim statements run, and jobs they returned. */
  claims: number;
  claimed: number;
  /** Outcome batches written. */
  flushes: number;
  completed: number;
  retried: number;
  dead: number;
  cancelled: number;
  released: number;
  staleWrites: number;
  abandoned: number;
  timedOut: number;
  leasesLost: number;
}

/** What the metrics need of an outcome once it is written, kept on the outcome under keys JSON skips. */
const SERIES = Symbol('series');
const END_TO_END_S = Symbol('endToEndSeconds');
type TaggedOutcome = Outcome & { [SERIES]?: JobSeries; [END_TO_END_S]?: number };

/**
 * A running worker: claims jobs of its kinds from its queues, runs them,
 * writes outcomes in batches, keeps leases alive, and (when elected) does the
 * maintenance. Create it with `spool.work(options)`; end it with `stop()`.
 */
export class Worker {
  readonly id: string;
  readonly queues: string[];
  readonly kinds: string[];
  readonly concurrency: number;
  readonly #spool: Spool;
  readonly #pool: postgres.Sql;
  readonly #executor: Executor;
  readonly #log: Logger;
  readonly #options: Required<Omit<WorkerOptions, 'jobs' | 'schedules' | 'queues' | 'logger' | 'workerId' | 'reapIntervalMs' | 'pruneIntervalMs' | 'asyncCommit' | 'poolSize' | 'metrics' | 'webhooks'>> & {
    reapIntervalMs: number;
  };
  readonly #definitions: Map<string, AnyJobDefinition>;
  readonly #statements: { claim: string; claimFlow: string; flowQueues: string; flowGroups: string; progress: string; unregister: string; orphans: string };
  readonly #running = new Map<string, Execution>();
  /** Claimed, waiting for a free slot; in reverse claim order, so the next is pop()ped (shift() is O(n)). */
  #buffer: ClaimedRow[] = [];
  /** Jobs this worker holds a lease on (claimed, running, or with an outcome not yet written), by id: the attempt. */
  readonly #held = new Map<string, number>();
  /** Shared by every attempt of this worker (one object, not one per job). */
  readonly #attemptSettings: AttemptSettings;
  readonly #metrics: SpoolMetrics | undefined;
  #untrackGauges: Array<() => void> = [];
  readonly #listener: Listener;
  /** Progress writes per attempt (`id:attempt`): when the last was written, and the value waiting for the interval to end. */
  readonly #progressWrites = new Map<string, { lastAt: number; pending: { text: string; done: Promise<void> } | undefined }>();
  readonly #heartbeat: Heartbeat;
  readonly #completer: Completer;
  readonly #elector: LeaderElector | undefined;
  readonly #promoter: Promoter | undefined;
  readonly #reaper: Reaper | undefined;
  readonly #pruner: Pruner | undefined;
  readonly #dispatcher: WebhookDispatcher | undefined;
  readonly #scheduler: Scheduler | undefined;
  readonly #schedules: ScheduleDefinition[];
  // flushes and staleWrites are the completer's own counters, added in `stats`.
  readonly #stats: Omit<WorkerStats, 'flushes' | 'staleWrites'> = {
    claims: 0, claimed: 0, completed: 0, retried: 0, dead: 0, cancelled: 0, released: 0, abandoned: 0, timedOut: 0, leasesLost: 0,
  };
  #state: 'new' | 'running' | 'stopping' | 'stopped' = 'new';
  /** Claim statements in flight, and the rows they asked for. */
  readonly #claims = new Set<Promise<void>>();
  #claiming = 0;
  #wakeAgain = false;
  #backlog = false;
  /** Moving average of recent run times, which sizes the prefetch buffer. */
  #averageRunMs = Number.POSITIVE_INFINITY;
  #pollTimer: NodeJS.Timeout | undefined;
  /** This worker's queues under flow control (claimed with claim_flow), reloaded on a `flow` NOTIFY and every FLOW_REFRESH_MS. */
  #flowQueues = new Set<string>();
  /** Of those, the fair ones, with their groups with waiting jobs when last looked up (performance.now()). */
  readonly #fairGroups = new Map<string, { groups: string[]; at: number } | null>();
  #flowTimer: NodeJS.Timeout | undefined;
  /** A wake-up at the moment a rate limit refills (or a concurrency recheck). */
  #limitTimer: NodeJS.Timeout | undefined;
  /** The last flow claim was cut by a concurrency limit: claim again once a local outcome is written. */
  #concurrencyBound = false;
  #pollDelay: number;
  #stopping: Promise<void> | undefined;
  #signalHandler: ((signal: NodeJS.Signals) => void) | undefined;

  constructor(spool: Spool, options: WorkerOptions) {
    const parsed = workerOptionsSchema.safeParse(options);
    if (!parsed.success) throw new ValidationError(toFieldIssues(parsed.error.issues, ''));
    this.#definitions = new Map();
    this.#schedules = options.schedules ?? [];
    const scheduleNames = new Set<string>();
    this.#schedules.forEach((schedule, index) => {
      if (scheduleNames.has(schedule.name)) throw new ValidationError([{ path: `schedules.${index}.name`, message: `schedule ${schedule.name} is given twice` }]);
      scheduleNames.add(schedule.name);
    });
    options.jobs.forEach((job, index) => {
      if (!isJobDefinition(job)) {
        throw new ValidationError([{ path: `jobs.${index}`, message: 'expected a defineJob(...) value' }]);
      }
      if (typeof job.handler !== 'function') {
        throw new ValidationError([{ path: `jobs.${index}.handler`, message: `job ${job.kind} has no handler: add handler: async (payload, ctx) => result` }]);
      }
      if (this.#definitions.has(job.kind)) {
        throw new ValidationError([{ path: `jobs.${index}.kind`, message: `kind ${job.kind} is defined twice` }]);
      }
      this.#definitions.set(job.kind, job);
    });
    this.#spool = spool;
    this.#pool = postgres({
      ...spool.connectionSettings(),
      max: options.poolSize ?? WORKER_POOL_SIZE_DEFAULT,
      onnotice: () => {},
      connection: {
        application_name: 'spool-worker',
        ...(options.asyncCommit === false ? {} : { synchronous_commit: 'off' }),
        // Not plan_cache_mode = force_generic_plan: it saved the re-planning of every claim (3 %
        // more drain throughput), but in bench/soak.ts (autovacuum on, millions of dead rows) generic
        // plans on this pool made the promoter's and reaper's runs pass their 10 and 20 s limits,
        // leases expired, and the soak fell from 18,000 to 659 jobs/s.
      },
    } as postgres.Options<Record<string, postgres.PostgresType>>);
    this.#metrics = options.metrics ?? spool.metrics;

    let executor = postgresExecutor(this.#pool, true);
    if (this.#metrics) {
      const counted = countingExecutor(executor);
      executor = counted.executor;
      this.#untrackGauges.push(this.#metrics.addPool({ name: 'worker', size: this.#pool.options.max, busy: counted.busy }));
    }
    this.#executor = executor;
    const leaseMs = options.leaseMs ?? LEASE_MS_DEFAULT;
    this.#options = {
      concurrency: options.concurrency ?? CONCURRENCY_DEFAULT,
      prefetch: options.prefetch ?? PREFETCH_MAX_DEFAULT,
      leaseMs,
      heartbeatMs: options.heartbeatMs ?? Math.min(HEARTBEAT_MS_DEFAULT, Math.floor(leaseMs / 3)),
      pollIntervalMs: options.pollIntervalMs ?? POLL_INTERVAL_DEFAULT,
      pollIntervalIdleMaxMs: Math.max(options.pollIntervalIdleMaxMs ?? POLL_INTERVAL_IDLE_MAX_DEFAULT, options.pollIntervalMs ?? 0),
      abandonAfterMs: options.abandonAfterMs ?? ABANDON_AFTER_MS_DEFAULT,
      shutdownGraceMs: options.shutdownGraceMs ?? SHUTDOWN_GRACE_MS_DEFAULT,
      listenerCheckMs: options.listenerCheckMs ?? LISTENER_CHECK_INTERVAL_DEFAULT,
      maintenance: options.maintenance ?? true,
      promoteIntervalMaxMs: options.promoteIntervalMaxMs ?? PROMOTE_INTERVAL_MAX_DEFAULT,
      reapIntervalMs: options.reapIntervalMs ?? Math.min(5_000, Math.max(10, Math.floor(leaseMs / 6))),
      completionFlushMs: options.completionFlushMs ?? COMPLETION_FLUSH_MS_DEFAULT,
      completionBatch: options.completionBatch ?? COMPLETION_BATCH_DEFAULT,
      handleSignals: options.handleSignals ?? true,
      removeOnComplete: options.removeOnComplete ?? false,
      logPayloads: options.logPayloads ?? false,
      progressIntervalMs: options.progressIntervalMs ?? PROGRESS_INTERVAL_MS_DEFAULT,
    };
    if (this.#options.heartbeatMs >= leaseMs) {
      throw new ValidationError([{ path: 'heartbeatMs', message: `must be less than leaseMs (${leaseMs}); a third of it is a good value` }]);
    }
    this.concurrency = this.#options.concurrency;
    this.kinds = [...this.#definitions.keys()];
    this.queues = options.queues ?? [...new Set([...this.#definitions.values()].map((d) => d.queue ?? QUEUE_DEFAULT))];
    this.id = options.workerId ?? `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
    this.#log = (options.logger ?? createLogger()).child({ worker_id: this.id });
    this.#pollDelay = this.#options.pollIntervalMs;

    const q = spool.quotedSchema;
    this.#statements = {
      claim: claimSql(q, { startedAt: this.#metrics !== undefined }),
      claimFlow: claimFlowSql(q),
      flowQueues: flowQueuesSql(q),
      flowGroups: flowGroupsSql(q),
      progress: progressSql(q),
      unregister: unregisterSql(q),
      orphans: orphanKindsSql(q),
    };
    this.#listener = new Listener(spool.connectionSettings(), {
      channel: spool.channel,
      log: this.#log,
      checkIntervalMs: this.#options.listenerCheckMs,
    });
    this.#listener.onNotification((message) => this.#onNotification(message));
    this.#listener.onResubscribe(() => {
      this.#backlog = true;
      this.#wake();
      this.#promoter?.trigger();
    });
    this.#completer = new Completer({
      executor,
      quotedSchema: q,
      workerId: this.id,
      channel: spool.channel,
      flushMs: this.#options.completionFlushMs,
      batch: this.#options.completionBatch,
      log: this.#log,
      onWritten: (outcomes, applied) => this.#written(outcomes, applied),
    });
    this.#attemptSettings = {
      log: this.#log,
      workerId: this.id,
      abandonAfterMs: this.#options.abandonAfterMs,
      logPayloads: this.#options.logPayloads,
      removeOnComplete: this.#options.removeOnComplete,
      debug: false,
      traced: false,
      context: { spool, progress: (jobId, attempt, value) => this.#progress(jobId, attempt, value) },
      report: (execution, outcome, info) => this.#report(execution, outcome, info),
      signer: spool.signer,
      // The claim does not return the tenant; a signed kind's check needs it (one primary-key read).
      tenantOf: async (jobId) => (await executor.query<{ tenant: string | null }>(`SELECT tenant::text AS tenant FROM ${q}.jobs WHERE id = $1::bigint`, [jobId]))[0]?.tenant ?? null,
    };
    this.#heartbeat = new Heartbeat({
      executor,
      quotedSchema: q,
      workerId: this.id,
      leaseMs,
      intervalMs: this.#options.heartbeatMs,
      queues: this.queues,
      kinds: this.kinds,
      concurrency: this.concurrency,
      log: this.#log,
      held: () => [...this.#held.entries()],
      onLost: (ids) => this.#abort(ids, 'lease'),
      onCancel: (ids) => this.#abort(ids, 'cancel'),
    });
    if (this.#options.maintenance) {
      this.#promoter = new Promoter({ executor, quotedSchema: q, channel: spool.channel, intervalMs: this.#options.promoteIntervalMaxMs, log: this.#log });
      const metrics = this.#metrics;
      this.#reaper = new Reaper({
        executor,
        quotedSchema: q,
        channel: spool.channel,
        intervalMs: this.#options.reapIntervalMs,
        leaseMs,
        log: this.#log,
        onReaped: metrics ? (job) => metrics.rescued(job.queue, job.kind) : undefined,
      });
      this.#scheduler = new Scheduler({ sql: this.#pool, quotedSchema: q, log: this.#log });
      this.#pruner = new Pruner({ executor, quotedSchema: q, schema: spool.schema, intervalMs: options.pruneIntervalMs, log: this.#log });
      if (options.webhooks !== false) this.#dispatcher = new WebhookDispatcher({ spool, sql: this.#pool, log: this.#log });
      this.#elector = new LeaderElector({
        executor,
        quotedSchema: q,
        workerId: this.id,
        ttlMs: leaseMs,
        log: this.#log,
        onChange: (leader) => {
          if (leader) {
            this.#promoter!.start();
            this.#reaper!.start();
            this.#pruner!.start();
            this.#dispatcher?.start();
            this.#scheduler!.start();
          } else {
            void this.#promoter!.stop();
            void this.#reaper!.stop();
            void this.#pruner!.stop();
            void this.#dispatcher?.stop();
            void this.#scheduler!.stop();
          }
        },
      });
    }
  }

  /** Counters since start. */
  get stats(): Readonly<WorkerStats> {
    return { ...this.#stats, staleWrites: this.#completer.counters.stale, flushes: this.#completer.counters.flushes };
  }

  /** Attempts running now. */
  get inFlight(): number {
    return this.#running.size;
  }

  /** True while this process holds the maintenance lease. */
  get isLeader(): boolean {
    return this.#elector?.isLeader ?? false;
  }

  /** True while the LISTEN connection is subscribed. */
  get listening(): boolean {
    return this.#listener.connected;
  }

  /** The background services, for tests that wait for a run. */
  get services(): { heartbeat: Heartbeat; leader?: LeaderElector; promoter?: Promoter; reaper?: Reaper; pruner?: Pruner; scheduler?: Scheduler; listener: Listener; dispatcher?: WebhookDispatcher } {
    return { heartbeat: this.#heartbeat, leader: this.#elector, promoter: this.#promoter, reaper: this.#reaper, pruner: this.#pruner, scheduler: this.#scheduler, listener: this.#listener, dispatcher: this.#dispatcher };
  }

  async start(): Promise<void> {
    if (this.#state !== 'new') throw new Error('a worker starts once');
    // Its kinds' defaults and schemas, for jobs enqueued by name (HTTP, CLI, SQL): one statement.
    // A kind without a queue of its own is registered in this worker's first queue, where it will be claimed.
    await this.#spool.registerKinds([...this.#definitions.values()], {
      registeredBy: this.id,
      removeOnComplete: this.#options.removeOnComplete,
      queue: this.queues[0],
    });
    if (this.#schedules.length > 0) await this.#spool.schedules.upsert(this.#schedules, 'code');
    this.#state = 'running';
    await this.#listener.start().catch((error: Error) => {
      // Not fatal: the poll still finds jobs, and the listener keeps retrying.
      this.#log.error({ err: error }, 'could not LISTEN; relying on polling until it can');
    });
    await this.#refreshFlowQueues();
    this.#heartbeat.start();
    this.#elector?.start();
    if (this.#metrics) {
      this.#untrackGauges.push(this.#metrics.addWorker(this));
      this.#spool.startQueueGauges({ log: this.#log, metrics: this.#metrics });
    }
    if (this.#options.handleSignals) this.#installSignalHandlers();
    this.#log.info({ queues: this.queues, kinds: this.kinds, concurrency: this.concurrency }, 'worker started');
    void this.#warnAboutOrphans();
    this.#backlog = true;
    this.#wake();
  }

  /**
   * Stops claiming, lets running jobs finish within `graceMs`, then aborts
   * the rest (signal reason ShutdownError) and puts them back to `available`
   * without using up an attempt; writes buffered outcomes, gives up the
   * maintenance lease and closes the LISTEN connection.
   */
  stop(options: { graceMs?: number } = {}): Promise<void> {
    this.#stopping ??= this.#shutdown(options.graceMs ?? this.#options.shutdownGraceMs);
    return this.#stopping;
  }

  async #shutdown(graceMs: number): Promise<void> {
    if (this.#state === 'new') {
      this.#state = 'stopped';
      for (const untrack of this.#untrackGauges.splice(0)) untrack();
      await this.#listener.stop();
      await this.#pool.end({ timeout: 5 });
      return;
    }
    this.#state = 'stopping';
    this.#removeSignalHandlers();
    clearTimeout(this.#pollTimer);
    clearTimeout(this.#flowTimer);
    clearTimeout(this.#limitTimer);
    this.#log.info({ in_flight: this.#running.size, grace_ms: graceMs }, 'worker stopping');
    await Promise.all(this.#claims);
    // Claimed but never started: back to the queue at once, attempt not used.
    for (const row of this.#buffer.splice(0)) this.#completer.push(this.#unstarted(row, 'released'));
    await this.#settleWithin(graceMs);
    if (this.#running.size > 0) {
      for (const execution of this.#running.values()) execution.abort('shutdown');
      await this.#settleWithin(Math.min(this.#options.abandonAfterMs, 1_000));
      for (const execution of this.#running.values()) execution.abandon('shutdown');
      await this.#settleWithin(1_000);
    }
    await this.#completer.drain();
    await this.#heartbeat.stop();
    await this.#elector?.resign();
    await this.#promoter?.stop();
    await this.#reaper?.stop();
    await this.#pruner?.stop();
    await this.#dispatcher?.stop();
    await this.#scheduler?.stop();
    await this.#executor.query(this.#statements.unregister, [this.id]).catch(() => {});
    await this.#listener.stop();
    await this.#pool.end({ timeout: 5 });
    for (const untrack of this.#untrackGauges.splice(0)) untrack();
    this.#state = 'stopped';
    this.#log.info({ stats: this.stats }, 'worker stopped');
  }

  async #settleWithin(ms: number): Promise<void> {
    if (this.#running.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.#running.values()].map((e) => e.done)),
      new Promise((resolve) => (timer = setTimeout(resolve, ms))),
    ]);
    clearTimeout(timer);
  }

  #onNotification(message: Notification): void {
    if (message.type === 'events') return;
    if (message.type === 'cancel') {
      this.#abort(message.ids, 'cancel');
      return;
    }
    if (message.type === 'flow') {
      void this.#refreshFlowQueues().then(() => {
        this.#backlog = true;
        this.#wake();
      });
      return;
    }
    if (message.scheduled) this.#promoter?.trigger();
    // New jobs may be of new groups: look the fair queues' groups up again.
    for (const queue of this.#fairGroups.keys()) if (message.queues === null || message.queues.includes(queue)) this.#fairGroups.set(queue, null);
    if (message.queues === null || message.queues.some((queue) => this.queues.includes(queue))) {
      this.#backlog = true;
      this.#wake();
    }
  }

  #abort(ids: string[], cause: AbortCause): void {
    for (const id of ids) {
      const index = this.#buffer.findIndex((row) => row.id === id);
      if (index >= 0) {
        const [row] = this.#buffer.splice(index, 1);
        if (cause === 'cancel') this.#completer.push(this.#unstarted(row!, 'cancelled'));
        else this.#held.delete(id);
        continue;
      }
      const execution = this.#running.get(id);
      if (!execution) continue;
      if (cause === 'lease') this.#stats.leasesLost++;
      execution.log.warn({ cause }, 'aborting a running job');
      execution.abort(cause);
    }
  }

  /**
   * Claims when there is room (free slots plus the prefetch buffer) and
   * fewer than CLAIMS_IN_FLIGHT claims are in flight; otherwise remembers to. Under load it waits for a
   * quarter of the room, so claims come in batches rather than one by one.
   */
  #wake(): void {
    if (this.#state !== 'running') return;
    if (this.#claims.size >= CLAIMS_IN_FLIGHT) {
      this.#wakeAgain = true;
      return;
    }
    // About PREFETCH_WINDOW_MS of work, at the recent average run time (none until one job ran).
    const prefetch = Math.min(
      this.#options.prefetch,
      Math.floor((this.concurrency * PREFETCH_WINDOW_MS) / Math.max(this.#averageRunMs, 0.01)),
    );
    const capacity = this.concurrency + prefetch;
    const room = capacity - this.#running.size - this.#buffer.length - this.#claiming;
    const idle = this.#running.size === 0 && this.#buffer.length === 0 && this.#claims.size === 0;
    // A flow claim costs more per statement (its limiters, one index scan per group), so it waits for more room.
    const batch = Math.ceil(capacity / (this.#flowQueues.size > 0 ? 2 : 4));
    if (room <= 0 || (!idle && room < batch)) {
      if (this.#claims.size > 0) this.#wakeAgain = true;
      return;
    }
    this.#wakeAgain = false;
    this.#claiming += room;
    const claim: Promise<void> = this.#claimUpTo(room).finally(() => {
      this.#claiming -= room;
      this.#claims.delete(claim);
      if (this.#wakeAgain || this.#backlog) this.#wake();
    });
    this.#claims.add(claim);
  }

  /** Reloads which of this worker's queues are under flow control; keeps the last list if the database does not answer. */
  async #refreshFlowQueues(): Promise<void> {
    clearTimeout(this.#flowTimer);
    try {
      const rows = await this.#executor.query<{ queue: string; fair: boolean }>(this.#statements.flowQueues, [this.queues, this.kinds]);
      this.#flowQueues = new Set(rows.map((row) => row.queue));
      for (const queue of [...this.#fairGroups.keys()]) if (!rows.some((row) => row.fair && row.queue === queue)) this.#fairGroups.delete(queue);
      for (const row of rows) if (row.fair && !this.#fairGroups.has(row.queue)) this.#fairGroups.set(row.queue, null);
    } catch (error) {
      this.#log.debug({ err: error }, 'could not reload the queues under flow control');
    }
    if (this.#state !== 'running') return;
    this.#flowTimer = setTimeout(() => void this.#refreshFlowQueues(), FLOW_REFRESH_MS);
    this.#flowTimer.unref();
  }

  /**
   * The plain claim for the queues without flow control, then claim_flow()
   * for each queue under it while there is room. Returns the rows and, when
   * a limit cut a flow claim, when to look again (ms; -1: a concurrency limit).
   */
  async #claimRows(limit: number): Promise<{ rows: ClaimedRow[]; retryMs: number | undefined; full: boolean }> {
    if (this.#flowQueues.size === 0) {
      const rows = await this.#executor.query<ClaimedRow>(this.#statements.claim, [this.queues, this.kinds, limit, this.id, this.#options.leaseMs]);
      return { rows, retryMs: undefined, full: rows.length === limit };
    }
    const plain = this.queues.filter((queue) => !this.#flowQueues.has(queue));
    const rows = plain.length > 0
      ? await this.#executor.query<ClaimedRow>(this.#statements.claim, [plain, this.kinds, limit, this.id, this.#options.leaseMs])
      : [];
    let retryMs: number | undefined;
    // A full batch means more may be waiting (claim again when slots free up).
    let full = rows.length === limit;
    for (const queue of this.queues) {
      if (!this.#flowQueues.has(queue) || rows.length >= limit) continue;
      const asked = Math.min(limit - rows.length, FLOW_CLAIM_MAX);
      const got = await this.#executor.query<FlowClaimedRow>(this.#statements.claimFlow, [
        queue, this.kinds, asked, this.id, this.#options.leaseMs, await this.#groupsOf(queue),
      ]);
      if (got.length === asked && got[0]?.id !== null) full = true;
      for (const row of got) {
        if (row.retry_in_ms !== null) {
          const hint = Number(row.retry_in_ms);
          retryMs = retryMs === undefined ? hint : hint === -1 ? retryMs : retryMs === -1 ? hint : Math.min(retryMs, hint);
        }
        if (row.id !== null) rows.push(row as ClaimedRow);
      }
    }
    return { rows, retryMs, full: full || rows.length === limit };
  }

  /** A fair queue's groups with waiting jobs, looked up again when older than FLOW_GROUPS_TTL_MS; null for other queues. */
  async #groupsOf(queue: string): Promise<string[] | null> {
    if (!this.#fairGroups.has(queue)) return null;
    const known = this.#fairGroups.get(queue);
    if (known && performance.now() - known.at < FLOW_GROUPS_TTL_MS) return known.groups;
    const at = performance.now();
    const [row] = await this.#executor.query<{ groups: string[] }>(this.#statements.flowGroups, [queue]);
    this.#fairGroups.set(queue, { groups: row?.groups ?? [], at });
    return row?.groups ?? [];
  }

  /** Wakes when a limit that cut the last claim may let more start: at the refill (plus jitter), or soon for a concurrency limit. */
  #scheduleLimitWake(retryMs: number | undefined): void {
    this.#concurrencyBound = retryMs === -1;
    if (retryMs === undefined) return;
    clearTimeout(this.#limitTimer);
    // Jitter, so that many workers waiting on one limiter do not all claim at the same instant.
    const base = retryMs === -1 ? CONCURRENCY_RECHECK_MS : retryMs;
    const delay = base + Math.random() * Math.min(50, 5 + base * 0.05);
    this.#limitTimer = setTimeout(() => {
      this.#backlog = true;
      this.#wake();
    }, Math.min(delay, this.#options.pollIntervalMs));
    this.#limitTimer.unref();
  }

  async #claimUpTo(limit: number): Promise<void> {
    let rows: ClaimedRow[];
    let full: boolean;
    try {
      const claimed = await this.#claimRows(limit);
      rows = claimed.rows;
      full = claimed.full;
      this.#scheduleLimitWake(claimed.retryMs);
    } catch (error) {
      this.#log.error({ err: error }, 'claim failed; retrying at the next poll');
      this.#backlog = false;
      this.#schedulePoll(false);
      return;
    }
    this.#stats.claims++;
    // A full batch means more may be waiting: claim again when slots free up.
    this.#backlog = full;
    this.#schedulePoll(rows.length > 0);
    if (rows.length === 0) return;
    this.#stats.claimed += rows.length;
    // Checked once per batch rather than per job.
    this.#attemptSettings.traced = tracingEnabled();
    this.#attemptSettings.debug = this.#log.isLevelEnabled('debug');
    rows.sort(claimOrder);
    for (const row of rows) {
      row.id = String(row.id);
      this.#held.set(row.id, row.attempt);
    }
    // Buffered jobs start in claim order: priority, run_at, id. With flow
    // control, a batch starts after the ones before it: merged by id, a fair
    // claim's jobs of a group enqueued late would wait behind every older job
    // of the big groups that later claims bring in.
    if (this.#buffer.length === 0) this.#buffer = rows.reverse();
    else if (this.#flowQueues.size > 0) this.#buffer = [...rows.reverse(), ...this.#buffer];
    else this.#buffer = [...this.#buffer, ...rows].sort((a, b) => claimOrder(b, a));
    this.#startBuffered();
  }

  /** Starts buffered jobs while slots are free. */
  #startBuffered(): void {
    while (this.#running.size < this.concurrency && this.#buffer.length > 0 && this.#state === 'running') {
      this.#run(this.#buffer.pop()!);
    }
  }

  #run(row: ClaimedRow): void {
    if (this.#metrics) {
      const series = this.#metrics.series(row.queue, row.kind);
      series.started.value++;
      series.waitSeconds.observe(Math.max(0, row.started_ms! - row.run_at_ms) / 1000);
    }
    this.#running.set(row.id, execute(row, this.#definitions.get(row.kind)!, this.#attemptSettings));
  }

  /** The outcome of a claimed job that never started (cancelled in the buffer, or released at shutdown). */
  #unstarted(row: ClaimedRow, outcome: 'released' | 'cancelled'): Outcome {
    const unstarted: Outcome = { id: row.id, attempt: row.attempt, outcome };
    this.#count(unstarted, row);
    if (this.#metrics) this.#tagForMetrics(unstarted, row, this.#metrics.series(row.queue, row.kind), 0);
    return unstarted;
  }

  /** An attempt ended: free its slot, count it, buffer its outcome, start the next. */
  #report(execution: Execution, outcome: Outcome | null, info: { abandoned: boolean; cause: AbortCause | undefined; ms: number }): void {
    const row = execution.row;
    this.#running.delete(row.id);
    this.#averageRunMs = Number.isFinite(this.#averageRunMs) ? this.#averageRunMs * 0.9 + info.ms * 0.1 : info.ms;
    const timedOut = outcome?.error?.timeout === true;
    if (info.abandoned) {
      this.#stats.abandoned++;
      execution.log.warn({ cause: info.cause }, 'handler ignored its aborted signal: abandoned');
    }
    if (timedOut) this.#stats.timedOut++;
    if (this.#metrics) {
      const series = this.#metrics.series(row.queue, row.kind);
      series.runSeconds.observe(info.ms / 1000);
      if (timedOut) series.timedOut.value++;
      if (info.abandoned) series.abandoned.value++;
      if (outcome) this.#tagForMetrics(outcome, row, series, info.ms);
    }
    if (outcome) {
      this.#count(outcome, row);
      this.#completer.push(outcome);
    } else {
      this.#held.delete(row.id);
    }
    this.#startBuffered();
    if (this.#backlog || this.#wakeAgain) this.#wake();
  }

  /**
   * Puts what the metrics need once the outcome is written (its series, its
   * end-to-end time) on the outcome itself, under symbols JSON skips, so the
   * claimed row can be dropped now: rows kept until the flush outlived
   * young-generation collections and doubled the GC's time.
   */
  #tagForMetrics(outcome: Outcome, row: ClaimedRow, series: JobSeries, runMs: number): void {
    const tagged = outcome as TaggedOutcome;
    tagged[SERIES] = series;
    // Created → finished: database time up to the claim, then the handler's own run time.
    tagged[END_TO_END_S] = (row.started_ms! - row.created_at_ms + runMs) / 1000;
  }

  #count(outcome: Outcome, row: ClaimedRow): void {
    switch (outcome.outcome) {
      case 'completed': this.#stats.completed++; break;
      // A failure of the last attempt ends dead, as the finish statement decides (and /metrics counts).
      case 'failed': if (row.attempt >= row.max_attempts) this.#stats.dead++; else this.#stats.retried++; break;
      case 'dead': this.#stats.dead++; break;
      case 'cancelled': this.#stats.cancelled++; break;
      case 'released': this.#stats.released++; break;
    }
  }

  #written(outcomes: readonly Outcome[], exceptions: FinishExceptions): void {
    for (const outcome of outcomes) {
      if (this.#held.get(outcome.id) !== outcome.attempt) continue;
      if (this.#metrics) this.#countWritten(outcome as TaggedOutcome, appliedState(exceptions, outcome));
      // An outcome is pushed once its attempt left #running, so the lease is no longer needed.
      this.#held.delete(outcome.id);
    }
    // A concurrency limit held the last claim back: these jobs no longer count against it.
    if (this.#concurrencyBound && outcomes.length > 0) {
      this.#backlog = true;
      this.#wake();
    }
  }

  /** Counts an outcome by the state the database left the job in (none: a stale write). */
  #countWritten(outcome: TaggedOutcome, state: AppliedState | undefined): void {
    const series = outcome[SERIES];
    if (!series) return;
    const endToEnd = outcome[END_TO_END_S] ?? 0;
    switch (state) {
      case undefined: series.staleWrites.value++; break;
      case 'completed': series.completed.value++; series.endToEndSeconds.observe(endToEnd); break;
      case 'scheduled': series.failed.value++; break;
      case 'dead': series.dead.value++; series.endToEndSeconds.observe(endToEnd); break;
      case 'cancelled': series.cancelled.value++; series.endToEndSeconds.observe(endToEnd); break;
      case 'available': series.released.value++; break;
    }
  }

  /**
   * At most one progress write per attempt per progressIntervalMs: a report
   * within the interval replaces the one waiting and is written when the
   * interval ends (the last value wins; every caller's promise settles then).
   */
  #progress(id: string, attempt: number, value: unknown): Promise<void> {
    const key = `${id}:${attempt}`;
    const write = (text: string) => this.#executor.query(this.#statements.progress, [id, attempt, text, this.id]).then(() => {});
    const now = performance.now();
    const entry = this.#progressWrites.get(key);
    const text = JSON.stringify(value ?? null);
    // Forget the attempt once a write is an interval old (the entry only bounds the rate).
    const forgetLater = () => setTimeout(() => {
      const current = this.#progressWrites.get(key);
      if (current && !current.pending && performance.now() - current.lastAt >= this.#options.progressIntervalMs) this.#progressWrites.delete(key);
    }, this.#options.progressIntervalMs + 1).unref();
    if (!entry || (now - entry.lastAt >= this.#options.progressIntervalMs && !entry.pending)) {
      this.#progressWrites.set(key, { lastAt: now, pending: undefined });
      forgetLater();
      return write(text);
    }
    if (entry.pending) {
      entry.pending.text = text;
      return entry.pending.done;
    }
    let settle!: (result: Promise<void>) => void;
    const done = new Promise<void>((resolve) => (settle = resolve as (result: Promise<void>) => void));
    const pending = { text, done };
    entry.pending = pending;
    setTimeout(() => {
      entry.pending = undefined;
      entry.lastAt = performance.now();
      forgetLater();
      settle(write(pending.text));
    }, Math.max(0, entry.lastAt + this.#options.progressIntervalMs - now)).unref();
    return done;
  }

  #schedulePoll(found: boolean): void {
    clearTimeout(this.#pollTimer);
    if (this.#state !== 'running') return;
    this.#pollDelay = found ? this.#options.pollIntervalMs : Math.min(this.#pollDelay * 2, this.#options.pollIntervalIdleMaxMs);
    this.#pollTimer = setTimeout(() => {
      this.#backlog = true;
      this.#wake();
    }, this.#pollDelay);
    this.#pollTimer.unref();
  }

  async #warnAboutOrphans(): Promise<void> {
    try {
      const rows = await this.#executor.query<{ kind: string; waiting: number }>(this.#statements.orphans, [this.queues, this.kinds]);
      for (const row of rows) {
        this.#log.warn(
          { kind: row.kind, waiting: row.waiting, looked_at: ORPHAN_SAMPLE, queues: this.queues },
          'jobs of this kind wait in these queues (waiting: how many among the first looked_at of each queue), but no handler here runs them',
        );
      }
    } catch (error) {
      this.#log.debug({ err: error }, 'could not check for kinds without handlers');
    }
  }

  #installSignalHandlers(): void {
    this.#signalHandler = (signal) => {
      this.#log.info({ signal }, 'signal received: stopping gracefully');
      void this.stop().finally(() => {
        if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
      });
    };
    process.once('SIGTERM', this.#signalHandler);
    process.once('SIGINT', this.#signalHandler);
  }

  #removeSignalHandlers(): void {
    if (!this.#signalHandler) return;
    process.off('SIGTERM', this.#signalHandler);
    process.off('SIGINT', this.#signalHandler);
  }
}

function claimOrder(a: ClaimedRow, b: ClaimedRow): number {
  return a.priority - b.priority || a.run_at_ms - b.run_at_ms || Number(a.id) - Number(b.id);
}
