import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { Executor } from '../db/executor.js';
import { ValidationError, SpoolError, parseOrThrow } from '../errors.js';
import { kindSchema, queueSchema, tenantSchema } from '../job-fields.js';
import { eventTypeSchema } from '../events/event.js';
import type { EventType } from '../queries/events.js';
import { webhookUrlSchema } from './target.js';

/** The webhook whose secret signs deliveries to per-job URLs (the `webhook` job option). */
export const JOB_WEBHOOK_ID = 'job';
/** After a rotation, deliveries carry a signature by the old secret too, this long (24 h). */
export const ROTATION_OVERLAP_MS_DEFAULT = 24 * 3600 * 1000;

/** A webhook subscription as listed: never its secret. */
export interface Webhook {
  id: string;
  /** null for `job`, which has no URL of its own. */
  url: string | null;
  events: EventType[];
  queue: string | null;
  kind: string | null;
  tenant: string | null;
  allowPrivate: boolean;
  paused: boolean;
  createdAt: Date;
  updatedAt: Date;
  /** Until when the secret before the last rotation still signs too. */
  previousSecretUntil: Date | null;
}

/** A webhook and its secret, shown once (at creation and at rotation). */
export interface WebhookWithSecret {
  webhook: Webhook;
  secret: string;
}

export const createWebhookSchema = z.strictObject({
  url: webhookUrlSchema,
  events: z.array(eventTypeSchema).min(1, { error: 'give at least one event type, e.g. ["completed", "dead"]' }).max(8),
  queue: queueSchema.optional(),
  kind: kindSchema.optional(),
  tenant: tenantSchema.optional(),
  /** Let it reach private and loopback addresses (refused by default: SSRF). */
  allowPrivate: z.boolean().optional(),
});
export type CreateWebhookInput = z.input<typeof createWebhookSchema>;

export const webhookIdSchema = z.string().regex(/^[a-z0-9_]{1,40}$/, { error: 'expected a webhook id such as wh_3f9a1c2b7d4e (or job)' });

export class WebhookNotFoundError extends SpoolError {
  constructor(id: string) {
    super('not_found', `no webhook ${id}: see spool webhooks list`);
  }
}

interface WebhookRow {
  id: string;
  url: string | null;
  events: EventType[];
  queue: string | null;
  kind: string | null;
  tenant: string | null;
  allow_private: boolean;
  paused: boolean;
  created_at: Date;
  updated_at: Date;
  previous_expires_at: Date | null;
}

const COLUMNS = 'id, url, events, queue, kind, tenant, allow_private, paused, created_at, updated_at, previous_expires_at';

function toWebhook(row: WebhookRow): Webhook {
  return {
    id: row.id,
    url: row.url,
    events: row.events,
    queue: row.queue,
    kind: row.kind,
    tenant: row.tenant,
    allowPrivate: row.allow_private,
    paused: row.paused,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    previousSecretUntil: row.previous_expires_at && row.previous_expires_at > new Date() ? row.previous_expires_at : null,
  };
}

const newSecret = () => `whsec_${randomBytes(32).toString('base64url')}`;

/**
 * Webhook subscriptions (sql/0013, docs/events.md). A secret is made by
 * Spool, shown once when the webhook is created or rotated, and never
 * listed; it is kept in the table because signing needs it (unlike an API
 * key, which is only ever compared, and so kept as a hash).
 */
export class WebhookStore {
  readonly #executor: Executor;
  readonly #q: string;

  constructor(executor: Executor, quotedSchema: string) {
    this.#executor = executor;
    this.#q = quotedSchema;
  }

  async create(input: CreateWebhookInput): Promise<WebhookWithSecret> {
    const w = parseOrThrow(createWebhookSchema, input);
    const id = `wh_${randomBytes(6).toString('hex')}`;
    const secret = newSecret();
    const [row] = await this.#executor.query<WebhookRow>(
      `INSERT INTO ${this.#q}.webhooks (id, url, events, queue, kind, tenant, secret, allow_private)
       VALUES ($1, $2, $3::text[], $4, $5, $6, $7, $8) RETURNING ${COLUMNS}`,
      [id, w.url, [...new Set(w.events)], w.queue ?? null, w.kind ?? null, w.tenant ?? null, secret, w.allowPrivate ?? false],
    );
    return { webhook: toWebhook(row!), secret };
  }

  async list(): Promise<Webhook[]> {
    return (await this.#executor.query<WebhookRow>(`SELECT ${COLUMNS} FROM ${this.#q}.webhooks ORDER BY created_at, id`, [])).map(toWebhook);
  }

  async get(id: string): Promise<Webhook | null> {
    parseOrThrow(webhookIdSchema, id, 'id');
    const [row] = await this.#executor.query<WebhookRow>(`SELECT ${COLUMNS} FROM ${this.#q}.webhooks WHERE id = $1`, [id]);
    return row ? toWebhook(row) : null;
  }

  /** Removes a subscription; deliveries already queued for it are skipped. The `job` webhook stays (rotate its secret instead). */
  async remove(id: string): Promise<boolean> {
    parseOrThrow(webhookIdSchema, id, 'id');
    if (id === JOB_WEBHOOK_ID) throw new ValidationError([{ path: 'id', message: 'the job webhook signs per-job deliveries and cannot be removed: rotate its secret instead' }]);
    return (await this.#executor.query(`DELETE FROM ${this.#q}.webhooks WHERE id = $1 RETURNING id`, [id])).length > 0;
  }

  async setPaused(id: string, paused: boolean): Promise<Webhook> {
    parseOrThrow(webhookIdSchema, id, 'id');
    const [row] = await this.#executor.query<WebhookRow>(
      `UPDATE ${this.#q}.webhooks SET paused = $2, updated_at = now() WHERE id = $1 RETURNING ${COLUMNS}`,
      [id, paused],
    );
    if (!row) throw new WebhookNotFoundError(id);
    return toWebhook(row);
  }

  /**
   * A new secret; the old one still signs (a second v1 in Spool-Signature)
   * for `overlapMs` (24 h), so receivers can switch without dropping a delivery.
   */
  async rotate(id: string, options: { overlapMs?: number } = {}): Promise<WebhookWithSecret> {
    parseOrThrow(webhookIdSchema, id, 'id');
    const overlapMs = parseOrThrow(z.number().int().min(0).max(30 * 24 * 3600 * 1000).default(ROTATION_OVERLAP_MS_DEFAULT), options.overlapMs, 'overlapMs');
    const secret = newSecret();
    const [row] = await this.#executor.query<WebhookRow>(
      `UPDATE ${this.#q}.webhooks
          SET previous_secret = secret, previous_expires_at = now() + $3 * interval '1 millisecond', secret = $2, updated_at = now()
        WHERE id = $1 RETURNING ${COLUMNS}`,
      [id, secret, overlapMs],
    );
    if (!row) throw new WebhookNotFoundError(id);
    return { webhook: toWebhook(row), secret };
  }

  /** What a delivery needs: the secrets that sign (current first), and the target rules; null when the webhook is gone. */
  async signingOf(id: string): Promise<{ secrets: string[]; allowPrivate: boolean; paused: boolean } | null> {
    const [row] = await this.#executor.query<{ secret: string; previous_secret: string | null; previous_live: boolean; allow_private: boolean; paused: boolean }>(
      `SELECT secret, previous_secret, coalesce(previous_expires_at > now(), false) AS previous_live, allow_private, paused
         FROM ${this.#q}.webhooks WHERE id = $1`,
      [id],
    );
    if (!row) return null;
    return {
      secrets: row.previous_secret && row.previous_live ? [row.secret, row.previous_secret] : [row.secret],
      allowPrivate: row.allow_private,
      paused: row.paused,
    };
  }
}
