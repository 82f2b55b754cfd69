import { Kysely, sql, type SelectQueryBuilder } from 'kysely';
import { z } from 'zod';
import { ValidationError, toFieldIssues } from '../errors.js';
import { JOB_STATES, type JobRow } from '../job.js';
import { STORABLE_TEXT_RULE, groupSchema, isJobIdText, kindSchema, queueSchema, storableDateSchema, storableText, tenantSchema } from '../job-fields.js';
import type { Database } from '../db/tables.js';

/** Jobs per page when `limit` is not given. */
export const LIST_LIMIT_DEFAULT = 50;
/** The largest page `listJobs` returns. */
export const LIST_LIMIT_MAX = 1000;
/**
 * Most bytes of jobs (as JSON) in one page, 4 MiB: past it the page ends
 * early with `truncated: true` and a cursor to the rest. 600 jobs of 1 MiB
 * once made one page 416 MB.
 */
export const LIST_BYTES_DEFAULT = 4 * 1024 * 1024;

const oneOrMany = <T extends z.ZodType>(item: T, rule: string) =>
  z.union([item, z.array(item).min(1)], { error: `${rule}, or a non-empty array of them` });

const CURSOR_PREFIX = 'v1:';

/** Filters and paging of `listJobs`. Every filter is optional; they combine with AND. */
export const listFilterSchema = z.strictObject({
  state: oneOrMany(z.enum(JOB_STATES), `expected one of ${JOB_STATES.join(', ')}`).optional(),
  queue: oneOrMany(queueSchema, 'expected a queue name').optional(),
  kind: oneOrMany(kindSchema, 'expected a kind').optional(),
  /** Only this tenant's jobs (the API sets it from a tenant-bound key). */
  tenant: tenantSchema.optional(),
  /** Jobs of this group. */
  group: groupSchema.optional(),
  /** Jobs carrying this tag. */
  tag: z.string().min(1).max(128).refine(storableText, { error: STORABLE_TEXT_RULE }).optional(),
  /** created_at >= createdAfter. */
  createdAfter: storableDateSchema('expected a valid Date').optional(),
  /** created_at < createdBefore. */
  createdBefore: storableDateSchema('expected a valid Date').optional(),
  limit: z
    .number({ error: `expected a whole number from 1 to ${LIST_LIMIT_MAX}` })
    .int({ error: `expected a whole number from 1 to ${LIST_LIMIT_MAX}` })
    .min(1, { error: 'must be at least 1' })
    .max(LIST_LIMIT_MAX, { error: `must be at most ${LIST_LIMIT_MAX}` })
    .optional(),
  /** `nextCursor` of the previous page. */
  cursor: z.string().optional(),
  /** `desc` (newest first, the default) or `asc`. */
  order: z.enum(['asc', 'desc'], { error: 'expected "asc" or "desc"' }).optional(),
  /** The page's byte budget (LIST_BYTES_DEFAULT): a page holds at least one job, and no more once the next would pass it. */
  maxBytes: z
    .number({ error: 'expected a whole number of bytes' })
    .int({ error: 'expected a whole number of bytes' })
    .min(1024, { error: 'must be at least 1024' })
    .optional(),
});

export type ListFilter = z.input<typeof listFilterSchema>;

/** A page of jobs and the cursor of the next one (null on the last page). */
export interface JobPage<J> {
  jobs: J[];
  nextCursor: string | null;
  /** True when the byte budget ended the page before `limit` jobs: follow nextCursor for the rest. */
  truncated: boolean;
}

/** Opaque keyset cursor: the last id seen and the direction. */
export function encodeCursor(id: string, order: 'asc' | 'desc'): string {
  return Buffer.from(`${CURSOR_PREFIX}${order}:${id}`).toString('base64url');
}

function decodeCursor(cursor: string, order: 'asc' | 'desc'): string {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const match = /^v1:(asc|desc):([1-9][0-9]{0,18})$/.exec(text);
  if (!match || !isJobIdText(match[2]!)) {
    throw new ValidationError([{ path: 'cursor', message: 'is malformed: pass the nextCursor of a previous page unchanged' }]);
  }
  if (match[1] !== order) {
    throw new ValidationError([{ path: 'cursor', message: `was made for order "${match[1]}", not "${order}"` }]);
  }
  return match[2]!;
}

const asArray = <T>(value: T | T[]): T[] => (Array.isArray(value) ? value : [value]);

/**
 * Builds the listing query: filters with AND, keyset pagination by id
 * (never OFFSET), one row more than the page to know if another follows.
 * Served by the primary key; filters are applied while walking it.
 */
export function buildListQuery(
  db: Kysely<Database>,
  schema: string,
  filter: ListFilter,
): { query: SelectQueryBuilder<Database, 'all_jobs', JobRow>; limit: number; order: 'asc' | 'desc'; maxBytes: number } {
  const parsed = listFilterSchema.safeParse(filter ?? {});
  if (!parsed.success) throw new ValidationError(toFieldIssues(parsed.error.issues, ''));
  const f = parsed.data;
  const order = f.order ?? 'desc';
  const limit = f.limit ?? LIST_LIMIT_DEFAULT;

  let query = db.withSchema(schema).selectFrom('all_jobs').selectAll();
  if (f.state !== undefined) query = query.where('state', 'in', asArray(f.state));
  if (f.queue !== undefined) query = query.where('queue', 'in', asArray(f.queue));
  if (f.kind !== undefined) query = query.where('kind', 'in', asArray(f.kind));
  if (f.tenant !== undefined) query = query.where('tenant', '=', f.tenant);
  if (f.group !== undefined) query = query.where('group_key', '=', f.group);
  if (f.tag !== undefined) query = query.where(sql<boolean>`tags @> ARRAY[${f.tag}]::text[]`);
  if (f.createdAfter !== undefined) query = query.where('created_at', '>=', f.createdAfter);
  if (f.createdBefore !== undefined) query = query.where('created_at', '<', f.createdBefore);
  if (f.cursor !== undefined) {
    const after = decodeCursor(f.cursor, order);
    query = query.where(sql<boolean>`id ${sql.raw(order === 'desc' ? '<' : '>')} ${after}::bigint`);
  }
  query = query.orderBy('id', order).limit(limit + 1);
  return { query, limit, order, maxBytes: f.maxBytes ?? LIST_BYTES_DEFAULT };
}
