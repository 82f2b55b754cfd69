import { Cron } from 'croner';
import { z } from 'zod';
import { ValidationError, toFieldIssues, type FieldIssue } from '../errors.js';
import { isJobDefinition, type AnyJobDefinition } from '../job.js';
import { jobInput } from '../job-options.js';
import { NAME_PATTERN } from '../job-fields.js';

export const OVERLAP_POLICIES = ['allow', 'skip'] as const;
export const CATCH_UP_POLICIES = ['none', 'latest', 'all'] as const;
/** With catchUp 'none', a tick at most this late still runs (a leader failover, a quick restart). */
export const CATCH_UP_GRACE_MS = 60_000;
/** Most missed ticks one scheduler run enqueues for a schedule (catchUp 'all'); the rest follow in the next runs. */
export const CATCH_UP_MAX_TICKS = 1_000;

const cronRule = 'expected a cron pattern of 5 or 6 fields (seconds first), e.g. "0 * * * *" or "*/10 * * * * *"';

/** Throws unless `pattern` parses and `timezone` is an IANA zone; returns its next `count` runs after `from`. */
export function nextRuns(pattern: string, timezone: string, from: Date, count: number): Date[] {
  return cronOf(pattern, timezone).nextRuns(count, from);
}

/** The first tick after `from`, or null if the pattern has none. */
export function nextRun(pattern: string, timezone: string, from: Date): Date | null {
  return cronOf(pattern, timezone).nextRun(from);
}

function cronOf(pattern: string, timezone: string): Cron {
  return new Cron(pattern, { timezone, paused: true });
}

/** Problems of a cron pattern and zone, as field issues (empty: fine). */
export function cronIssues(pattern: unknown, timezone: unknown): FieldIssue[] {
  const issues: FieldIssue[] = [];
  if (typeof timezone !== 'string' || timezone.length === 0 || timezone.length > 64) {
    issues.push({ path: 'timezone', message: 'expected an IANA time zone, e.g. "UTC" or "Europe/Berlin"' });
  } else {
    try {
      new Intl.DateTimeFormat('en', { timeZone: timezone });
    } catch {
      issues.push({ path: 'timezone', message: `unknown time zone ${JSON.stringify(timezone)}: use an IANA name, e.g. "UTC" or "Europe/Berlin"` });
    }
  }
  if (typeof pattern !== 'string' || pattern.length === 0 || pattern.length > 256) {
    issues.push({ path: 'cron', message: cronRule });
  } else if (issues.length === 0) {
    try {
      cronOf(pattern, timezone as string);
    } catch (error) {
      issues.push({ path: 'cron', message: `${(error as Error).message.replace(/^CronPattern: /, '')}: ${cronRule}` });
    }
  }
  return issues;
}

const scheduleSchema = z.strictObject(
  {
    name: z.string({ error: 'expected a name' }).regex(NAME_PATTERN, { error: 'use 1-128 letters, digits and _ . : / - (starting with a letter, digit or _)' }).max(128),
    cron: z.string({ error: cronRule }),
    timezone: z.string({ error: 'expected an IANA time zone' }).optional(),
    job: z.unknown().refine((job) => typeof job === 'string' || isJobDefinition(job), { error: 'expected a job kind or a defineJob(...) value' }),
    payload: z.unknown().optional(),
    options: z.record(z.string(), z.unknown(), { error: 'expected job options: queue, priority, maxAttempts, timeoutMs, tags, group, metadata' }).optional(),
    jitterMs: z.number().int({ error: 'expected whole milliseconds' }).min(0, { error: 'must be at least 0' }).max(86_400_000, { error: 'must be at most 86400000 (a day)' }).optional(),
    overlap: z.enum(OVERLAP_POLICIES, { error: 'expected allow (every tick enqueues) or skip (not while the last tick\'s job is unfinished)' }).optional(),
    catchUp: z.enum(CATCH_UP_POLICIES, { error: 'expected none, latest or all' }).optional(),
    paused: z.boolean({ error: 'expected true or false' }).optional(),
  },
  { error: (issue) => (issue.code === 'unrecognized_keys' ? undefined : 'expected a schedule: { name, cron, job, ... }') },
);

/** A cron schedule as `defineSchedule` takes it (and the API, with `job` a kind name). */
export interface ScheduleInput {
  /** Unique name (1-128 letters, digits and _ . : / -). */
  name: string;
  /** Cron pattern, 5 fields or 6 with seconds first (croner syntax). */
  cron: string;
  /** IANA zone the pattern is read in ('UTC'); DST follows croner's rules. */
  timezone?: string;
  /** The kind to enqueue, or its definition (its payload schema checks `payload`). */
  job: AnyJobDefinition | string;
  payload?: unknown;
  /** Options of each tick's job: queue, priority, maxAttempts, timeoutMs, tags, group, metadata. */
  options?: Record<string, unknown>;
  /** Each tick's job runs up to this many ms after the tick, at random (0). */
  jitterMs?: number;
  /** 'skip': no job for a tick while the previous tick's job is unfinished ('allow'). */
  overlap?: (typeof OVERLAP_POLICIES)[number];
  /** Ticks missed while no leader ran: 'none' (skip them; a tick up to 60 s late still runs), 'latest' (one job for the last), 'all' ('none'). */
  catchUp?: (typeof CATCH_UP_POLICIES)[number];
  /** Start paused (API/CLI); a code schedule's pause state is kept across restarts. */
  paused?: boolean;
}

/** A schedule checked and in the form the `schedules` table stores. */
export interface ScheduleDefinition {
  readonly name: string;
  readonly cron: string;
  readonly timezone: string;
  readonly kind: string;
  readonly payload: unknown;
  /** The job options as enqueue_batch keys (queue, priority, max_attempts, …). */
  readonly options: Record<string, unknown>;
  readonly jitterMs: number;
  readonly overlap: (typeof OVERLAP_POLICIES)[number];
  readonly catchUp: (typeof CATCH_UP_POLICIES)[number];
  readonly paused: boolean | undefined;
  readonly [SCHEDULE]: true;
}

const SCHEDULE = Symbol.for('spool.schedule');

export function isScheduleDefinition(value: unknown): value is ScheduleDefinition {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[SCHEDULE] === true;
}

/**
 * Declares a cron schedule; pass it to `spool.work({ schedules })` (or export
 * it from a tasks folder) and the maintenance leader enqueues one job per
 * tick, in database time.
 *
 * @example
 * export const nightly = defineSchedule({ name: 'nightly-report', cron: '0 2 * * *', timezone: 'Europe/Berlin', job: report, payload: {} });
 */
export function defineSchedule(input: ScheduleInput): ScheduleDefinition {
  const parsed = scheduleSchema.safeParse(input);
  if (!parsed.success) throw new ValidationError(toFieldIssues(parsed.error.issues, ''));
  const s = parsed.data;
  const timezone = s.timezone ?? 'UTC';
  const issues = cronIssues(s.cron, timezone);
  const forbidden = Object.keys(s.options ?? {}).filter((key) => ['runAt', 'delayMs', 'uniqueKey', 'tx'].includes(key));
  for (const key of forbidden) issues.push({ path: `options.${key}`, message: 'is set by the schedule for each tick; leave it out' });
  let element: Record<string, unknown> = {};
  if (issues.length === 0) {
    try {
      element = JSON.parse(jobInput(s.job as AnyJobDefinition | string, s.payload ?? {}, s.options ?? {}).text) as Record<string, unknown>;
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      issues.push(...error.issues.map((issue) => ({ ...issue, path: issue.path === 'kind' ? 'job' : issue.path.startsWith('payload') ? issue.path : `options.${issue.path}` })));
    }
  }
  if (issues.length > 0) throw new ValidationError(issues);
  const { kind, payload, ...options } = element;
  return {
    name: s.name,
    cron: s.cron,
    timezone,
    kind: kind as string,
    payload,
    options,
    jitterMs: s.jitterMs ?? 0,
    overlap: s.overlap ?? 'allow',
    catchUp: s.catchUp ?? 'none',
    paused: s.paused,
    [SCHEDULE]: true,
  };
}
