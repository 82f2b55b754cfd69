import { z } from 'zod';
import { ValidationError, toFieldIssues } from '../errors.js';
import type { Executor } from '../db/executor.js';
import { storableDateSchema, timestampProblem } from '../job-fields.js';

/** What an audited request came to: done, refused by the role check (403), or failed otherwise. */
export type AuditResult = 'ok' | 'refused' | 'failed';

/** One audit row (sql/0010 `audit_log`). */
export interface AuditEntry {
  id: string;
  at: Date;
  keyId: string | null;
  keyName: string | null;
  role: string | null;
  tenant: string | null;
  /** e.g. `job.cancel`, `dead.purge`, `key.create`. */
  action: string;
  /** What it acted on: a job id, a queue, a key id, a filter. */
  target: string | null;
  result: AuditResult;
  /** The HTTP status (null for the CLI). */
  status: number | null;
  /** Client address (API), or `cli:<user>@<host>`. */
  client: string | null;
  requestId: string | null;
  details: Record<string, unknown>;
}

/** What a caller records; `at` and `id` come from the database. */
export type AuditRecord = Omit<AuditEntry, 'id' | 'at' | 'details'> & { details?: Record<string, unknown> };

interface AuditRow {
  id: string; at: Date; key_id: string | null; key_name: string | null; role: string | null; tenant: string | null; action: string;
  target: string | null; result: AuditResult; status: number | null; client: string | null; request_id: string | null; details: Record<string, unknown>;
}

export const AUDIT_LIMIT_MAX = 1000;

const UNIT_MS: Record<string, number> = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 };

/** `since` as people write it: a duration back from now (30m, 12h, 7d, 2w) or an ISO time with a zone; 400 naming `field` otherwise. */
export function parseSince(text: string, field = 'since'): Date {
  const relative = /^([1-9][0-9]{0,5})([mhdw])$/.exec(text);
  if (relative) return new Date(Date.now() - Number(relative[1]) * UNIT_MS[relative[2]!]!);
  if (!timestampProblem(text) && /^\d{4}-\d{2}-\d{2}T.*(Z|[+-]\d{2}:?\d{2})$/i.test(text) && Number.isFinite(Date.parse(text))) return new Date(text);
  throw new ValidationError([{ path: field, message: `expected a duration back from now (30m, 12h, 7d, 2w) or an ISO time with a zone; got ${JSON.stringify(text.slice(0, 64))}` }]);
}

export const auditFilterSchema = z.strictObject({
  /** Rows at or after this time. */
  since: storableDateSchema('expected a valid Date').optional(),
  /** Rows of this action (`job.cancel`) or of every action under a prefix (`job`, `key`). */
  action: z.string().regex(/^[a-z]+(\.[a-z]+)*$/, { error: 'expected an action such as job.cancel, or a prefix such as job' }).max(64).optional(),
  keyId: z.string().regex(/^[1-9][0-9]{0,17}$/, { error: 'expected a key id (digits)' }).optional(),
  limit: z.number().int().min(1, { error: 'must be at least 1' }).max(AUDIT_LIMIT_MAX, { error: `must be at most ${AUDIT_LIMIT_MAX}` }).optional(),
  /** Rows with a smaller id than this (the previous page's nextBefore): newest first. */
  before: z.string().regex(/^[1-9][0-9]{0,17}$/, { error: 'expected the nextBefore of the previous page' }).optional(),
});
export type AuditFilter = z.input<typeof auditFilterSchema>;

const COLUMNS = `id::text AS id, at, key_id::text AS key_id, key_name, role, tenant, action, target, result, status, client, request_id, details`;

function toEntry(row: AuditRow): AuditEntry {
  return {
    id: row.id, at: row.at, keyId: row.key_id, keyName: row.key_name, role: row.role, tenant: row.tenant, action: row.action,
    target: row.target, result: row.result, status: row.status, client: row.client, requestId: row.request_id, details: row.details,
  };
}

/** The audit log (`spool.audit`): what the API and `spool keys` changed, and who did (docs/security.md). */
export class AuditLog {
  readonly #executor: Executor;
  readonly #q: string;

  constructor(executor: Executor, quotedSchema: string) {
    this.#executor = executor;
    this.#q = quotedSchema;
  }

  async record(entry: AuditRecord): Promise<void> {
    await this.#executor.query(
      `INSERT INTO ${this.#q}.audit_log (key_id, key_name, role, tenant, action, target, result, status, client, request_id, details)
       VALUES ($1::bigint, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::text::jsonb)`,
      [
        entry.keyId, entry.keyName, entry.role, entry.tenant, entry.action, entry.target?.slice(0, 1000) ?? null, entry.result, entry.status,
        entry.client, entry.requestId, JSON.stringify(entry.details ?? {}),
      ],
    );
  }

  /** Newest first, a page at a time (`nextBefore` continues). */
  async list(filter: AuditFilter = {}): Promise<{ entries: AuditEntry[]; nextBefore: string | null }> {
    const parsed = auditFilterSchema.safeParse(filter);
    if (!parsed.success) throw new ValidationError(toFieldIssues(parsed.error.issues, ''));
    const f = parsed.data;
    const limit = f.limit ?? 100;
    const rows = await this.#executor.query<AuditRow>(
      `SELECT ${COLUMNS} FROM ${this.#q}.audit_log
        WHERE ($1::timestamptz IS NULL OR at >= $1)
          AND ($2::text IS NULL OR action = $2 OR action LIKE $2 || '.%')
          AND ($3::bigint IS NULL OR key_id = $3)
          AND ($4::bigint IS NULL OR id < $4)
        ORDER BY id DESC LIMIT $5`,
      [f.since ?? null, f.action ?? null, f.keyId ?? null, f.before ?? null, limit + 1],
    );
    const entries = rows.slice(0, limit).map(toEntry);
    return { entries, nextBefore: rows.length > limit ? entries[entries.length - 1]!.id : null };
  }
}
