import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import type { Executor } from '../db/executor.js';
import { ValidationError, toFieldIssues } from '../errors.js';
import { STORABLE_TEXT_RULE, storableDateSchema, timestampTextSchema, wellFormed } from '../job-fields.js';

/** A key's role (docs/security.md); ROLE_GRANTS says what each may do. */
export const ROLES = ['admin', 'operator', 'producer', 'reader'] as const;
export type Role = (typeof ROLES)[number];

/**
 * What a route needs. `read`: look at jobs, queues, kinds, schedules,
 * limits; `enqueue`: add jobs; `operate`: cancel, retry, replay, purge,
 * pause, schedules and limits; `admin`: keys and the audit log.
 */
export const PERMISSIONS = ['read', 'enqueue', 'operate', 'admin'] as const;
export type Permission = (typeof PERMISSIONS)[number];

export const ROLE_GRANTS: Record<Role, readonly Permission[]> = {
  admin: ['read', 'enqueue', 'operate', 'admin'],
  operator: ['read', 'operate'],
  producer: ['read', 'enqueue'],
  reader: ['read'],
};

export function allows(role: Role, permission: Permission): boolean {
  return ROLE_GRANTS[role].includes(permission);
}

/** A key as listed: never its secret. */
export interface ApiKey {
  id: string;
  prefix: string;
  name: string;
  role: Role;
  tenant: string | null;
  createdAt: Date;
  expiresAt: Date | null;
  revokedAt: Date | null;
  lastUsedAt: Date | null;
  rotatedFrom: string | null;
}

/** A key just made: `key` is the whole secret, shown this once. */
export interface CreatedKey {
  key: string;
  apiKey: ApiKey;
}

interface KeyRow {
  id: string;
  prefix: string;
  name: string;
  role: Role;
  tenant: string | null;
  created_at: Date;
  expires_at: Date | null;
  revoked_at: Date | null;
  last_used_at: Date | null;
  rotated_from: string | null;
}

const COLUMNS = 'id::text AS id, prefix, name, role, tenant, created_at, expires_at, revoked_at, last_used_at, rotated_from::text AS rotated_from';
const KEY_FORMAT = /^spool_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$/;
const PREFIX_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
/** How often a key's last_used_at is written (one write per key per minute, not per request). */
const LAST_USED_RESOLUTION_S = 60;

const label = z.string().min(1, { error: 'must not be empty' }).max(128, { error: 'must be at most 128 characters' })
  // eslint-disable-next-line no-control-regex
  .regex(/^[^\u0000-\u001f\u007f]*$/, { error: 'must not contain control characters' })
  .refine(wellFormed, { error: STORABLE_TEXT_RULE });

export const createKeySchema = z.strictObject({
  role: z.enum(ROLES, { error: `expected one of ${ROLES.join(', ')}` }),
  name: label.optional(),
  tenant: label.nullable().optional(),
  expiresAt: z.union([storableDateSchema('expected a valid Date'), timestampTextSchema('expected an ISO 8601 time with an offset, e.g. 2027-01-01T00:00:00Z')])
    .transform((value) => (value instanceof Date ? value : new Date(value)))
    .refine((value) => !Number.isNaN(value.getTime()), { error: 'expected a valid time' })
    .nullable()
    .optional(),
});
export type CreateKeyOptions = z.input<typeof createKeySchema>;

const ID = /^[1-9][0-9]{0,17}$/;

function toKey(row: KeyRow): ApiKey {
  return {
    id: row.id, prefix: row.prefix, name: row.name, role: row.role, tenant: row.tenant,
    createdAt: row.created_at, expiresAt: row.expires_at, revokedAt: row.revoked_at, lastUsedAt: row.last_used_at, rotatedFrom: row.rotated_from,
  };
}

function newPrefix(): string {
  const bytes = randomBytes(12);
  return [...bytes].map((b) => PREFIX_ALPHABET[b % PREFIX_ALPHABET.length]).join('');
}

const sha256 = (text: string) => createHash('sha256').update(text).digest();

/** A key id (digits) or prefix, as the CLI and API accept them; 400 naming `field` otherwise. */
function keyRef(ref: string, field = 'id'): { id: string | null; prefix: string | null } {
  if (ID.test(ref)) return { id: ref, prefix: null };
  if (/^[a-z0-9]{12}$/.test(ref)) return { id: null, prefix: ref };
  throw new ValidationError([{ path: field, message: 'expected a key id (digits) or its 12-character prefix, as `spool keys list` shows them' }]);
}

/**
 * API keys (sql/0008 `api_keys`): `spool.keys`. Keys are created here or by
 * `spool keys create`, shown once, and stored as a prefix and a SHA-256 of
 * the secret. `verify()` is what the API runs for each request.
 */
export class KeyStore {
  readonly #executor: Executor;
  readonly #q: string;

  constructor(executor: Executor, quotedSchema: string) {
    this.#executor = executor;
    this.#q = quotedSchema;
  }

  /**
   * Makes a key. The returned `key` is the only copy of the secret.
   *
   * @example
   * const { key } = await spool.keys.create({ role: 'producer', tenant: 'acme', name: 'acme backend' });
   */
  async create(options: CreateKeyOptions, internal: { rotatedFrom?: string } = {}): Promise<CreatedKey> {
    const parsed = createKeySchema.safeParse(options);
    if (!parsed.success) throw new ValidationError(toFieldIssues(parsed.error.issues, ''));
    const { role, name, tenant, expiresAt } = parsed.data;
    const prefix = newPrefix();
    const secret = randomBytes(32).toString('base64url');
    const [row] = await this.#executor.query<KeyRow>(
      `INSERT INTO ${this.#q}.api_keys (prefix, secret_hash, name, role, tenant, expires_at, rotated_from)
       VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ${COLUMNS}`,
      [prefix, sha256(secret), name ?? `${role} key`, role, tenant ?? null, expiresAt ?? null, internal.rotatedFrom ?? null],
    );
    return { key: `spool_${prefix}_${secret}`, apiKey: toKey(row!) };
  }

  /** Every key, newest first; revoked and expired ones too (`active` says which work). */
  async list(options: { includeRevoked?: boolean } = {}): Promise<ApiKey[]> {
    const rows = await this.#executor.query<KeyRow>(
      `SELECT ${COLUMNS} FROM ${this.#q}.api_keys WHERE $1 OR revoked_at IS NULL ORDER BY id DESC`,
      [options.includeRevoked === true],
    );
    return rows.map(toKey);
  }

  async get(ref: string): Promise<ApiKey | null> {
    const { id, prefix } = keyRef(ref);
    const rows = await this.#executor.query<KeyRow>(
      `SELECT ${COLUMNS} FROM ${this.#q}.api_keys WHERE id = $1::bigint OR prefix = $2`, [id, prefix]);
    return rows[0] ? toKey(rows[0]) : null;
  }

  /** Revokes a key at once; null if there is none by that id or prefix. Revoking twice keeps the first time. */
  async revoke(ref: string): Promise<ApiKey | null> {
    const { id, prefix } = keyRef(ref);
    const rows = await this.#executor.query<KeyRow>(
      `UPDATE ${this.#q}.api_keys SET revoked_at = coalesce(revoked_at, now())
        WHERE id = $1::bigint OR prefix = $2 RETURNING ${COLUMNS}`, [id, prefix]);
    return rows[0] ? toKey(rows[0]) : null;
  }

  /**
   * A new key with the same role, tenant, name and expiry; the old one is
   * revoked at once. Null if there is no such key; a revoked key cannot be rotated.
   */
  async rotate(ref: string): Promise<CreatedKey | null> {
    const old = await this.get(ref);
    if (!old) return null;
    if (old.revokedAt) throw new ValidationError([{ path: 'id', message: `key ${old.id} is revoked: create a new one with spool keys create` }]);
    const created = await this.create(
      { role: old.role, name: old.name, tenant: old.tenant, expiresAt: old.expiresAt && old.expiresAt > new Date() ? old.expiresAt : null },
      { rotatedFrom: old.id },
    );
    await this.revoke(old.id);
    return created;
  }

  /** Whether any admin key works now (the bootstrap key is made only when none does). */
  async hasActiveAdmin(): Promise<boolean> {
    const rows = await this.#executor.query(
      `SELECT 1 FROM ${this.#q}.api_keys WHERE role = 'admin' AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()) LIMIT 1`, []);
    return rows.length > 0;
  }

  /**
   * The key a bearer token names, if it is well formed, its secret matches
   * (constant-time), and it is neither revoked nor expired; null otherwise.
   */
  async verify(token: string): Promise<ApiKey | null> {
    const match = KEY_FORMAT.exec(token);
    if (!match) return null;
    const rows = await this.#executor.query<KeyRow & { secret_hash: Buffer; active: boolean }>(
      `SELECT ${COLUMNS}, secret_hash, (revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())) AS active
         FROM ${this.#q}.api_keys WHERE prefix = $1`,
      [match[1]],
    );
    const row = rows[0];
    // Hash even when no row matched, so the answer takes as long either way.
    const given = sha256(match[2]!);
    const stored = row?.secret_hash ?? Buffer.alloc(32);
    if (!timingSafeEqual(given, stored) || !row || !row.active) return null;
    if (!row.last_used_at || Date.now() - row.last_used_at.getTime() > LAST_USED_RESOLUTION_S * 1000) {
      await this.#executor.query(
        `UPDATE ${this.#q}.api_keys SET last_used_at = now()
          WHERE id = $1::bigint AND (last_used_at IS NULL OR last_used_at < now() - interval '${LAST_USED_RESOLUTION_S} seconds')`,
        [row.id],
      );
    }
    return toKey(row);
  }
}
