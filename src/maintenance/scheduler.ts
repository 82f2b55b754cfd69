import type postgres from 'postgres';
import type { Logger } from '../observability/logger.js';
import { CATCH_UP_GRACE_MS, CATCH_UP_MAX_TICKS, nextRun } from '../schedules/schedule.js';
import { scheduleJob, type ScheduleRow } from '../schedules/store.js';
import { Service } from './service.js';

/** The scheduler looks at least this often (a schedule added from SQL or another process is seen within it). */
export const SCHEDULER_INTERVAL_MAX_MS = 1_000;
/** Most ticks walked for one schedule in one run with catchUp 'none' or 'latest' (a per-second cron over 11 days). */
const CATCH_UP_WALK_MAX = 1_000_000;

/**
 * The leader's cron: for every due schedule, enqueues the job of each tick
 * its catch-up policy keeps, and moves next_run_at on. Both happen in one
 * transaction whose UPDATE is a compare-and-set on next_run_at, so a tick
 * is enqueued once even when an old leader and its successor both run it;
 * the tick's unique key (`schedule:<name>:<tick>`) is a second guard.
 * Ticks are computed from the database's clock, never the host's.
 */
export class Scheduler extends Service {
  /** Jobs enqueued for ticks since start. */
  enqueued = 0;
  readonly #sql: postgres.Sql;
  readonly #q: string;

  constructor(options: { sql: postgres.Sql; quotedSchema: string; log: Logger }) {
    super('scheduler', { intervalMs: SCHEDULER_INTERVAL_MAX_MS, jitter: 0, log: options.log });
    this.#sql = options.sql;
    this.#q = options.quotedSchema;
  }

  protected async runOnce(): Promise<number> {
    const due = await this.#sql.unsafe<Array<ScheduleRow & { now: Date }>>(
      `SELECT s.*, now() AS now FROM ${this.#q}.schedules s
        WHERE NOT s.paused AND (s.next_run_at IS NULL OR s.next_run_at <= now())
        -- Rows that cannot tick (a bad pattern from SQL) last, so they never crowd out the others.
        ORDER BY s.last_error IS NOT NULL, s.next_run_at NULLS FIRST LIMIT 100`,
    );
    for (const schedule of due) {
      try {
        await this.#tick(schedule, schedule.now);
      } catch (error) {
        this.log.error({ err: error, schedule: schedule.name }, 'schedule tick failed');
        await this.#sql.unsafe(`UPDATE ${this.#q}.schedules SET last_error = $2 WHERE name = $1`, [schedule.name, (error as Error).message]).catch(() => {});
      }
    }
    // More may be due, unless the page was all rows that cannot tick.
    if (due.length >= 100 && due.some((s) => s.last_error === null)) return 0;
    const [next] = await this.#sql.unsafe<Array<{ in_ms: number | null }>>(
      `SELECT (date_part('epoch', min(next_run_at) - now()) * 1000)::float8 AS in_ms FROM ${this.#q}.schedules WHERE NOT paused`,
    );
    const inMs = next?.in_ms;
    return inMs === null || inMs === undefined ? SCHEDULER_INTERVAL_MAX_MS : Math.min(Math.max(0, Math.ceil(inMs) + 1), SCHEDULER_INTERVAL_MAX_MS);
  }

  async #tick(s: ScheduleRow, now: Date): Promise<void> {
    let next: Date | null;
    try {
      next = nextRun(s.cron, s.timezone, s.next_run_at ?? now);
    } catch (error) {
      // From SQL, a bad pattern or zone: say so on the row and leave it.
      if (s.last_error !== (error as Error).message) {
        await this.#sql.unsafe(`UPDATE ${this.#q}.schedules SET last_error = $2 WHERE name = $1`, [s.name, `invalid cron or timezone: ${(error as Error).message}`]);
      }
      return;
    }
    if (s.next_run_at === null) {
      // Inserted from SQL: its first tick is the next one after now.
      await this.#sql.unsafe(`UPDATE ${this.#q}.schedules SET next_run_at = $2 WHERE name = $1 AND next_run_at IS NULL`, [s.name, next]);
      return;
    }
    // The ticks from next_run_at up to now. 'all' keeps each (at most CATCH_UP_MAX_TICKS per run: the
    // rest follow next run); 'none' keeps those within the grace; 'latest' only needs the last one.
    const kept: Date[] = [];
    let lastTick = s.next_run_at;
    let tick: Date | null = s.next_run_at;
    let walked = 0;
    while (tick !== null && tick <= now) {
      lastTick = tick;
      if (s.catch_up === 'all') kept.push(tick);
      else if (s.catch_up === 'none' && now.getTime() - tick.getTime() <= CATCH_UP_GRACE_MS) kept.push(tick);
      tick = nextRun(s.cron, s.timezone, tick);
      if ((s.catch_up === 'all' && kept.length >= CATCH_UP_MAX_TICKS) || ++walked >= CATCH_UP_WALK_MAX) break;
    }
    next = tick;
    // A walk cut short by its bound ('none' and 'latest' after a very long outage): start again after now.
    if (next !== null && next <= now && s.catch_up !== 'all') next = nextRun(s.cron, s.timezone, now);
    let ticks = s.catch_up === 'latest' ? [lastTick] : kept;

    await this.#sql.begin(async (tx) => {
      // Enqueues commit durably, even on a worker pool that commits asynchronously.
      await tx.unsafe('SET LOCAL synchronous_commit = on');
      const advanced = await tx.unsafe(
        // To the millisecond: a Date has no more, and a next_run_at written from SQL may.
        `UPDATE ${this.#q}.schedules SET next_run_at = $3, last_run_at = $4, last_error = NULL, updated_at = now()
          WHERE name = $1 AND date_trunc('milliseconds', next_run_at) = date_trunc('milliseconds', $2::timestamptz) AND NOT paused
          RETURNING last_job_id`,
        [s.name, s.next_run_at, next, lastTick],
      );
      // Another leader took these ticks, or the schedule was paused or changed meanwhile.
      if (advanced.length === 0) return;
      if (s.overlap === 'skip' && ticks.length > 0) {
        const previous = advanced[0]!.last_job_id;
        const unfinished = previous === null ? [] : await tx.unsafe(`SELECT 1 FROM ${this.#q}.jobs WHERE id = $1`, [previous]);
        if (unfinished.length > 0) {
          this.log.info({ schedule: s.name, tick: lastTick.toISOString(), job_id: String(previous) }, 'tick skipped: the previous tick\'s job is unfinished');
          return;
        }
        ticks = ticks.slice(-1);
      }
      if (ticks.length === 0) return;
      // Database time plus the jitter: a tick's job is due at the tick, or up to jitterMs after it.
      const elements = ticks.map((tick) => scheduleJob(s, `schedule:${s.name}:${tick.toISOString()}`, { scheduledFor: tick.toISOString() },
        new Date(tick.getTime() + Math.floor(Math.random() * (s.jitter_ms + 1)))));
      const rows = await tx.unsafe<Array<{ id: string }>>(`SELECT id FROM ${this.#q}.enqueue_batch($1::text::jsonb)`, [JSON.stringify(elements)]);
      const lastId = rows[rows.length - 1]?.id;
      await tx.unsafe(`UPDATE ${this.#q}.schedules SET last_job_id = $2 WHERE name = $1`, [s.name, lastId ?? null]);
      this.enqueued += rows.length;
      this.log.debug({ schedule: s.name, ticks: ticks.length, job_id: lastId === undefined ? undefined : String(lastId) }, 'schedule ticked');
    });
  }
}
