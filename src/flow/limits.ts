import { z } from 'zod';
import type { Executor } from '../db/executor.js';
import { ValidationError, toFieldIssues } from '../errors.js';
import { groupSchema, kindSchema, queueSchema } from '../job-fields.js';

/** What a limit applies to: every job of a queue, of a kind, or of a group. */
export const LIMIT_SCOPES = ['queue', 'kind', 'group'] as const;
export type LimitScope = (typeof LIMIT_SCOPES)[number];

const DURATION = /^([0-9]+)(ms|s|m|h)?$/;
const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 } as const;
const RATE_RULE = 'expected "<starts>/<window>", e.g. "20/1s", "100/1m", "5/500ms", or { limit, windowMs }';

/** "20/1s" → { limit: 20, windowMs: 1000 } ("20/s" works too); undefined when it does not parse. */
export function parseRate(text: string): { limit: number; windowMs: number } | undefined {
  const [count, window] = text.trim().split('/');
  if (count === undefined || window === undefined || !/^[0-9]+$/.test(count)) return undefined;
  const match = DURATION.exec(/^[a-z]+$/.test(window) ? `1${window}` : window);
  if (!match) return undefined;
  return { limit: Number(count), windowMs: Number(match[1]) * UNIT_MS[(match[2] ?? 'ms') as keyof typeof UNIT_MS] };
}

const rateSchema = z.union(
  [
    z.strictObject({
      limit: z.number().int({ error: 'expected a whole number of starts' }).min(1, { error: 'must be at least 1' }).max(1_000_000, { error: 'must be at most 1000000' }),
      windowMs: z.number().int({ error: 'expected whole milliseconds' }).min(1, { error: 'must be at least 1' }).max(86_400_000, { error: 'must be at most 86400000 (a day)' }),
    }),
    z.string().transform((text, ctx) => {
      const rate = parseRate(text);
      if (!rate) ctx.addIssue({ code: 'custom', message: RATE_RULE });
      return rate ?? { limit: 0, windowMs: 0 };
    }).pipe(z.object({ limit: z.number().int().min(1, { error: 'the number of starts must be 1-1000000' }).max(1_000_000, { error: 'the number of starts must be 1-1000000' }), windowMs: z.number().int().min(1, { error: 'the window must be 1 ms to a day' }).max(86_400_000, { error: 'the window must be 1 ms to a day' }) })),
  ],
  { error: RATE_RULE },
);

/** The settings of one limiter; an omitted setting is none (or the default weight 1, fairness off). */
export const limitSettingsSchema = z.strictObject(
  {
    concurrency: z.number().int({ error: 'expected a whole number' }).min(1, { error: 'must be at least 1' }).max(1_000_000, { error: 'must be at most 1000000' }).nullable().optional()
      .describe('at most this many running at once, across all workers'),
    rate: rateSchema.nullable().optional().describe('at most `limit` starts in any window of `windowMs`, across all workers'),
    weight: z.number().int({ error: 'expected a whole number' }).min(1, { error: 'must be at least 1' }).max(1000, { error: 'must be at most 1000' }).optional()
      .describe('groups only: share in a fair queue, relative to other groups (1)'),
    fair: z.boolean({ error: 'expected true or false' }).optional().describe('queues only: share claims across groups by weight (false)'),
  },
  { error: (issue) => (issue.code === 'unrecognized_keys' ? undefined : 'expected an object of limit settings: concurrency, rate, weight, fair') },
);
export type LimitSettings = z.input<typeof limitSettingsSchema>;

/** A limiter as stored. */
export interface Limit {
  scope: LimitScope;
  name: string;
  concurrency: number | null;
  rate: { limit: number; windowMs: number } | null;
  weight: number;
  fair: boolean;
  source: string;
  updatedAt: Date;
}

/** `limits` in a config file: settings by queue, kind and group name. */
export const limitsConfigSchema = z.strictObject(
  {
    queues: z.record(queueSchema, limitSettingsSchema).optional(),
    kinds: z.record(kindSchema, limitSettingsSchema).optional(),
    groups: z.record(groupSchema, limitSettingsSchema).optional(),
  },
  { error: (issue) => (issue.code === 'unrecognized_keys' ? undefined : 'expected { "queues": {...}, "kinds": {...}, "groups": {...} } of limit settings') },
);
export type LimitsConfig = z.output<typeof limitsConfigSchema>;

const nameSchemas = { queue: queueSchema, kind: kindSchema, group: groupSchema } as const;

interface LimitRow {
  scope: LimitScope; name: string; concurrency: number | null; rate_limit: number | null; rate_window_ms: number | null;
  weight: number; fair: boolean; source: string; updated_at: Date;
}

function toLimit(row: LimitRow): Limit {
  return {
    scope: row.scope,
    name: row.name,
    concurrency: row.concurrency,
    rate: row.rate_limit === null ? null : { limit: row.rate_limit, windowMs: row.rate_window_ms! },
    weight: row.weight,
    fair: row.fair,
    source: row.source,
    updatedAt: row.updated_at,
  };
}

/** Checks a scope and name and the settings for it; throws a ValidationError naming each bad field. */
export function checkLimit(scope: unknown, name: unknown, settings: unknown): { scope: LimitScope; name: string; settings: z.output<typeof limitSettingsSchema> } {
  if (!LIMIT_SCOPES.includes(scope as LimitScope)) {
    throw new ValidationError([{ path: 'scope', message: `expected ${LIMIT_SCOPES.join(', ')} (got ${JSON.stringify(scope)})` }]);
  }
  const s = scope as LimitScope;
  const issues = [];
  const parsedName = nameSchemas[s].safeParse(name);
  if (!parsedName.success) issues.push(...toFieldIssues(parsedName.error.issues, 'name'));
  const parsed = limitSettingsSchema.safeParse(settings ?? {});
  if (!parsed.success) issues.push(...toFieldIssues(parsed.error.issues, ''));
  if (parsed.success && parsed.data.weight !== undefined && s !== 'group') issues.push({ path: 'weight', message: 'only groups have a weight; set it on a group' });
  if (parsed.success && parsed.data.fair !== undefined && s !== 'queue') issues.push({ path: 'fair', message: 'fairness is a queue setting; set it on the queue' });
  if (issues.length > 0 || !parsed.success || !parsedName.success) throw new ValidationError(issues);
  return { scope: s, name: parsedName.data, settings: parsed.data };
}

/**
 * Flow limits (sql/0006 `limits`): concurrency and rate per queue, kind or
 * group, group weights and queue fairness. Changes reach every worker at
 * once (a NOTIFY from the table's trigger). `spool.limits`.
 */
export class LimitStore {
  readonly #executor: Executor;
  readonly #q: string;

  constructor(executor: Executor, quotedSchema: string) {
    this.#executor = executor;
    this.#q = quotedSchema;
  }

  /**
   * Sets a limiter's settings, replacing what it had (an omitted setting is
   * none). The rate log is kept, also when the rate changes: the starts it
   * holds count against the new limit (wiping it would let a new window admit
   * a full limit right after the old one was used up).
   *
   * @example
   * await spool.limits.set('group', 'tenant-42', { concurrency: 3, rate: '20/1s' });
   * await spool.limits.set('queue', 'reports', { fair: true });
   */
  async set(scope: LimitScope, name: string, settings: LimitSettings, options: { source?: string } = {}): Promise<Limit> {
    const checked = checkLimit(scope, name, settings);
    const s = checked.settings;
    const [row] = await this.#executor.query<LimitRow>(
      `INSERT INTO ${this.#q}.limits AS l (scope, name, concurrency, rate_limit, rate_window_ms, weight, fair, source)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
       ON CONFLICT (scope, name) DO UPDATE SET
         concurrency = EXCLUDED.concurrency, rate_limit = EXCLUDED.rate_limit, rate_window_ms = EXCLUDED.rate_window_ms,
         weight = EXCLUDED.weight, fair = EXCLUDED.fair, source = EXCLUDED.source, updated_at = now()
       RETURNING l.scope, l.name, l.concurrency, l.rate_limit, l.rate_window_ms, l.weight, l.fair, l.source, l.updated_at`,
      [checked.scope, checked.name, s.concurrency ?? null, s.rate?.limit ?? null, s.rate?.windowMs ?? null, s.weight ?? 1, s.fair ?? false, options.source ?? 'api'],
    );
    return toLimit(row!);
  }

  /** Every limiter, or one scope's, by scope and name. */
  async list(scope?: LimitScope): Promise<Limit[]> {
    if (scope !== undefined && !LIMIT_SCOPES.includes(scope)) throw new ValidationError([{ path: 'scope', message: `expected ${LIMIT_SCOPES.join(', ')}` }]);
    const rows = await this.#executor.query<LimitRow>(
      `SELECT scope, name, concurrency, rate_limit, rate_window_ms, weight, fair, source, updated_at FROM ${this.#q}.limits
        WHERE $1::text IS NULL OR scope = $1 ORDER BY scope, name`,
      [scope ?? null],
    );
    return rows.map(toLimit);
  }

  async get(scope: LimitScope, name: string): Promise<Limit | null> {
    const checked = checkLimit(scope, name, {});
    const rows = await this.#executor.query<LimitRow>(
      `SELECT scope, name, concurrency, rate_limit, rate_window_ms, weight, fair, source, updated_at FROM ${this.#q}.limits WHERE scope = $1 AND name = $2`,
      [checked.scope, checked.name],
    );
    return rows[0] ? toLimit(rows[0]) : null;
  }

  /** Removes a limiter; true if there was one. */
  async remove(scope: LimitScope, name: string): Promise<boolean> {
    const checked = checkLimit(scope, name, {});
    const rows = await this.#executor.query(`DELETE FROM ${this.#q}.limits WHERE scope = $1 AND name = $2 RETURNING 1`, [checked.scope, checked.name]);
    return rows.length > 0;
  }

  /**
   * Applies a config file's `limits` (at `spool work` / `spool serve` start):
   * each limiter named there is set as written; limiters the config set
   * before and no longer names are removed. Others (set by the API, CLI or
   * SQL) are left alone.
   */
  async applyConfig(config: LimitsConfig): Promise<void> {
    const wanted: Array<[LimitScope, string, LimitSettings]> = [
      ...Object.entries(config.queues ?? {}).map(([n, s]) => ['queue', n, s] as [LimitScope, string, LimitSettings]),
      ...Object.entries(config.kinds ?? {}).map(([n, s]) => ['kind', n, s] as [LimitScope, string, LimitSettings]),
      ...Object.entries(config.groups ?? {}).map(([n, s]) => ['group', n, s] as [LimitScope, string, LimitSettings]),
    ];
    for (const [scope, name, settings] of wanted) await this.set(scope, name, settings, { source: 'config' });
    // Locked in (scope, name) order first, as claims lock limiters, so the two cannot deadlock.
    await this.#executor.query(
      `DELETE FROM ${this.#q}.limits WHERE (scope, name) IN (
         SELECT l.scope, l.name FROM ${this.#q}.limits l
          WHERE l.source = 'config' AND (l.scope, l.name) NOT IN (SELECT * FROM unnest($1::text[], $2::text[]))
          ORDER BY l.scope, l.name FOR UPDATE)`,
      [wanted.map((w) => w[0]), wanted.map((w) => w[1])],
    );
  }

  /** Per group: its limits and weight (if any) and its jobs waiting and running now. */
  async groups(): Promise<GroupInfo[]> {
    const rows = await this.#executor.query<LimitRow & { group: string; available: number; running: number; scheduled: number }>(
      `WITH counts AS (
         SELECT group_key::text AS name, count(*) FILTER (WHERE state = 'available')::int AS available,
                count(*) FILTER (WHERE state = 'running')::int AS running, count(*) FILTER (WHERE state = 'scheduled')::int AS scheduled
           FROM ${this.#q}.jobs WHERE group_key IS NOT NULL GROUP BY group_key
       )
       SELECT coalesce(c.name, l.name) AS "group", coalesce(c.available, 0) AS available, coalesce(c.running, 0) AS running,
              coalesce(c.scheduled, 0) AS scheduled, 'group' AS scope, l.name, l.concurrency, l.rate_limit, l.rate_window_ms,
              coalesce(l.weight, 1) AS weight, false AS fair, l.source, l.updated_at
         FROM counts c FULL JOIN (SELECT * FROM ${this.#q}.limits WHERE scope = 'group') l ON l.name = c.name
        ORDER BY 1 LIMIT 10000`,
      [],
    );
    return rows.map((row) => ({
      group: row.group,
      waiting: row.available,
      scheduled: row.scheduled,
      running: row.running,
      weight: row.weight,
      concurrency: row.concurrency,
      rate: row.rate_limit === null ? null : { limit: row.rate_limit, windowMs: row.rate_window_ms! },
      configured: row.name !== null,
    }));
  }
}

/** One line of `spool.limits.groups()`. */
export interface GroupInfo {
  group: string;
  waiting: number;
  scheduled: number;
  running: number;
  weight: number;
  concurrency: number | null;
  rate: { limit: number; windowMs: number } | null;
  /** It has a `limits` row (a weight or a limit). */
  configured: boolean;
}
