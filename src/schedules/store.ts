import type postgres from 'postgres';
import type { Executor } from '../db/executor.js';
import { SpoolError, ValidationError } from '../errors.js';
import { NAME_PATTERN } from '../job-fields.js';
import { nextRun, nextRuns, type ScheduleDefinition } from './schedule.js';

/** A schedule as stored, with its state. */
export interface Schedule {
  name: string;
  cron: string;
  timezone: string;
  kind: string;
  payload: unknown;
  options: Record<string, unknown>;
  jitterMs: number;
  overlap: 'allow' | 'skip';
  catchUp: 'none' | 'latest' | 'all';
  paused: boolean;
  nextRunAt: Date | null;
  lastRunAt: Date | null;
  lastJobId: string | null;
  lastError: string | null;
  source: string;
  createdAt: Date;
  updatedAt: Date;
}

export interface ScheduleRow {
  name: string; cron: string; timezone: string; kind: string; payload: unknown; options: Record<string, unknown>;
  jitter_ms: number; overlap: 'allow' | 'skip'; catch_up: 'none' | 'latest' | 'all'; paused: boolean;
  next_run_at: Date | null; last_run_at: Date | null; last_job_id: string | null; last_error: string | null;
  source: string; created_at: Date; updated_at: Date;
}

export function toSchedule(row: ScheduleRow): Schedule {
  return {
    name: row.name, cron: row.cron, timezone: row.timezone, kind: row.kind, payload: row.payload, options: row.options,
    jitterMs: row.jitter_ms, overlap: row.overlap, catchUp: row.catch_up, paused: row.paused,
    nextRunAt: row.next_run_at, lastRunAt: row.last_run_at, lastJobId: row.last_job_id === null ? null : String(row.last_job_id),
    lastError: row.last_error, source: row.source, createdAt: row.created_at, updatedAt: row.updated_at,
  };
}

/**
 * One job of a schedule as an enqueue_batch element: its options, kind and
 * payload, the unique key, and metadata saying which schedule made it (the
 * leader's ticks and `trigger()` both build theirs here).
 */
export function scheduleJob(
  schedule: Pick<ScheduleRow, 'name' | 'kind' | 'payload' | 'options'>,
  uniqueKey: string,
  metadata: Record<string, unknown>,
  runAt?: Date,
): Record<string, unknown> {
  return {
    ...schedule.options,
    kind: schedule.kind,
    payload: schedule.payload,
    unique_key: uniqueKey,
    ...(runAt ? { run_at: runAt.toISOString() } : {}),
    metadata: { ...((schedule.options.metadata as object | undefined) ?? {}), schedule: schedule.name, ...metadata },
  };
}

export class ScheduleNotFoundError extends SpoolError {
  constructor(name: string) {
    super('not_found', `no schedule named ${JSON.stringify(name)}: \`spool schedules list\` shows them`);
  }
}

function checkName(name: unknown): string {
  if (typeof name !== 'string' || name.length > 128 || !NAME_PATTERN.test(name)) {
    throw new ValidationError([{ path: 'name', message: 'expected a schedule name: 1-128 letters, digits and _ . : / -' }]);
  }
  return name;
}

/**
 * Cron schedules (sql/0006 `schedules`): `spool.schedules`. The maintenance
 * leader's Scheduler turns them into jobs; this is how they are declared
 * and managed.
 */
export class ScheduleStore {
  readonly #executor: Executor;
  readonly #sql: postgres.Sql;
  readonly #q: string;

  constructor(executor: Executor, sql: postgres.Sql, quotedSchema: string) {
    this.#executor = executor;
    this.#sql = sql;
    this.#q = quotedSchema;
  }

  /**
   * Creates or updates schedules (one statement each). A changed cron or
   * zone starts over from the next tick after now, as does resuming with
   * `paused: false`; otherwise the schedule keeps its next tick, and it keeps
   * its paused state unless `paused` is given.
   */
  async upsert(definitions: readonly ScheduleDefinition[], source = 'code'): Promise<Schedule[]> {
    const out: Schedule[] = [];
    if (definitions.length === 0) return out;
    const [{ now }] = (await this.#executor.query<{ now: Date }>('SELECT now() AS now', [])) as [{ now: Date }];
    for (const d of definitions) {
      const first = nextRun(d.cron, d.timezone, now);
      const [row] = await this.#executor.query<ScheduleRow>(
        `INSERT INTO ${this.#q}.schedules AS s (name, cron, timezone, kind, payload, options, jitter_ms, overlap, catch_up, paused, next_run_at, source)
         VALUES ($1, $2, $3, $4, $5::text::jsonb, $6::text::jsonb, $7, $8, $9, coalesce($10::boolean, false), $11, $12)
         ON CONFLICT (name) DO UPDATE SET
           cron = EXCLUDED.cron, timezone = EXCLUDED.timezone, kind = EXCLUDED.kind, payload = EXCLUDED.payload,
           options = EXCLUDED.options, jitter_ms = EXCLUDED.jitter_ms, overlap = EXCLUDED.overlap, catch_up = EXCLUDED.catch_up,
           paused = coalesce($10::boolean, s.paused), source = EXCLUDED.source, last_error = NULL,
           -- Kept unless the cron or zone changed, or this resumes it (then from the next tick after now, as resume() does).
           next_run_at = CASE WHEN s.cron = EXCLUDED.cron AND s.timezone = EXCLUDED.timezone AND s.next_run_at IS NOT NULL
                                   AND NOT (s.paused AND NOT coalesce($10::boolean, s.paused))
                              THEN s.next_run_at ELSE EXCLUDED.next_run_at END,
           updated_at = now()
         RETURNING s.*`,
        [d.name, d.cron, d.timezone, d.kind, JSON.stringify(d.payload ?? {}), JSON.stringify(d.options), d.jitterMs, d.overlap, d.catchUp,
          d.paused ?? null, first, source],
      );
      out.push(toSchedule(row!));
    }
    return out;
  }

  async list(): Promise<Schedule[]> {
    const rows = await this.#executor.query<ScheduleRow>(`SELECT * FROM ${this.#q}.schedules ORDER BY name`, []);
    return rows.map(toSchedule);
  }

  /** One schedule, with its next `count` runs (from its next tick, in database time; none while paused). */
  async get(name: string, count = 5): Promise<(Schedule & { nextRuns: Date[] }) | null> {
    const rows = await this.#executor.query<ScheduleRow & { now: Date }>(`SELECT s.*, now() AS now FROM ${this.#q}.schedules s WHERE name = $1`, [checkName(name)]);
    const row = rows[0];
    if (!row) return null;
    let runs: Date[] = [];
    if (!row.paused) {
      try {
        const from = row.next_run_at ?? row.now;
        runs = row.next_run_at ? [row.next_run_at, ...nextRuns(row.cron, row.timezone, from, count - 1)] : nextRuns(row.cron, row.timezone, from, count);
      } catch {
        runs = [];
      }
    }
    return { ...toSchedule(row), nextRuns: runs.slice(0, count) };
  }

  async #require(name: string): Promise<Schedule> {
    const rows = await this.#executor.query<ScheduleRow>(`SELECT * FROM ${this.#q}.schedules WHERE name = $1`, [checkName(name)]);
    if (!rows[0]) throw new ScheduleNotFoundError(name);
    return toSchedule(rows[0]);
  }

  /** No more ticks until resumed. */
  async pause(name: string): Promise<Schedule> {
    const rows = await this.#executor.query<ScheduleRow>(
      `UPDATE ${this.#q}.schedules SET paused = true, updated_at = now() WHERE name = $1 RETURNING *`, [checkName(name)]);
    if (!rows[0]) throw new ScheduleNotFoundError(name);
    return toSchedule(rows[0]);
  }

  /** Ticks again from the next one after now (ticks missed while paused are not caught up). */
  async resume(name: string): Promise<Schedule> {
    const schedule = await this.#require(name);
    const [{ now }] = (await this.#executor.query<{ now: Date }>('SELECT now() AS now', [])) as [{ now: Date }];
    const rows = await this.#executor.query<ScheduleRow>(
      `UPDATE ${this.#q}.schedules SET paused = false, next_run_at = $2, updated_at = now() WHERE name = $1 RETURNING *`,
      [schedule.name, nextRun(schedule.cron, schedule.timezone, now)],
    );
    if (!rows[0]) throw new ScheduleNotFoundError(name);
    return toSchedule(rows[0]);
  }

  /** Enqueues one job of the schedule now, outside its ticks (paused or not); returns its id. */
  async trigger(name: string): Promise<string> {
    const schedule = await this.#require(name);
    const element = scheduleJob(schedule, `schedule:${schedule.name}:manual:${crypto.randomUUID()}`, { trigger: 'manual' });
    const [row] = await this.#executor.query<{ id: string }>(`SELECT id FROM ${this.#q}.enqueue_batch($1::text::jsonb)`, [JSON.stringify([element])]);
    return String(row!.id);
  }

  /** Deletes a schedule; its jobs stay. True if there was one. A code schedule comes back at the next worker start unless its code is gone. */
  async remove(name: string): Promise<boolean> {
    const rows = await this.#executor.query(`DELETE FROM ${this.#q}.schedules WHERE name = $1 RETURNING 1`, [checkName(name)]);
    return rows.length > 0;
  }

  /** For the scheduler: the pool to open transactions on. */
  get sql(): postgres.Sql {
    return this.#sql;
  }
}
