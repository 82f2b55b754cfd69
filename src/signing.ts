import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { PermanentError, ValidationError } from './errors.js';

/**
 * Signed payloads (docs/security.md, "Signed payloads"): a kind defined with
 * `signing: { keyId }` is enqueued with an HMAC-SHA256 of its kind, tenant
 * and payload under that key, in `metadata.spool_signature`; workers check
 * it before the handler runs. Whoever can write jobs (a producer, a SQL
 * user) but does not hold the key cannot make work of that kind, nor change
 * a signed job's payload.
 */

/** Where the signature travels: `v1:<keyId>:<base64url HMAC>`. */
export const SIGNATURE_FIELD = 'spool_signature';

const KEY_ID = /^[A-Za-z0-9_.-]{1,64}$/;
const SECRET_MIN = 32;
const KEYS_RULE = `expected keyId:secret pairs, comma-separated (key ids of letters, digits and _ . -; secrets of at least ${SECRET_MIN} characters)`;

/** A keyring: key id → secret. */
export type SigningKeys = Record<string, string>;

export const signingKeysSchema = z
  .union([
    z.string().transform((text, ctx) => {
      const keys: SigningKeys = {};
      for (const pair of text.split(',').map((p) => p.trim()).filter(Boolean)) {
        const at = pair.indexOf(':');
        const id = pair.slice(0, at);
        const secret = pair.slice(at + 1);
        if (at < 1 || !KEY_ID.test(id) || secret.length < SECRET_MIN) {
          ctx.addIssue({ code: 'custom', message: KEYS_RULE });
          return z.NEVER;
        }
        keys[id] = secret;
      }
      return keys;
    }),
    z.record(z.string().regex(KEY_ID, { error: KEYS_RULE }), z.string().min(SECRET_MIN, { error: `each secret needs at least ${SECRET_MIN} characters` })),
  ], { error: KEYS_RULE });

/** What a signature covers, as one text: any change to the kind, tenant or payload changes it. */
function signedText(kind: string, tenant: string | null | undefined, payload: unknown): string {
  return `spool-v1\n${kind}\n${tenant ?? ''}\n${canonicalJson(payload)}`;
}

/**
 * JSON with object keys sorted, at every depth: PostgreSQL's jsonb keeps
 * neither the key order nor the spacing it was given, so the worker signs
 * what it reads back the same way the producer signed what it sent.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return canonicalJson((value as { toJSON: () => unknown }).toJSON());
  if (Array.isArray(value)) return `[${value.map((item) => (item === undefined ? 'null' : canonicalJson(item))).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined && typeof v !== 'function')
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/** A job whose signature is missing or does not verify: dead at once, its handler never runs. */
export class SignatureError extends PermanentError {
  readonly code = 'signature_invalid';
  constructor(message: string) {
    super(message);
    this.name = 'SignatureError';
  }
}

/** Signs and verifies with a keyring. */
export class Signer {
  readonly #keys: Map<string, Buffer>;

  constructor(keys: SigningKeys = {}) {
    this.#keys = new Map(Object.entries(keys).map(([id, secret]) => [id, Buffer.from(secret, 'utf8')]));
  }

  #mac(keyId: string, kind: string, tenant: string | null | undefined, payload: unknown): Buffer {
    return createHmac('sha256', this.#keys.get(keyId)!).update(signedText(kind, tenant, payload)).digest();
  }

  /** The signature of a job, under `keyId`; a ValidationError naming `field` if this keyring does not hold it. */
  sign(keyId: string, kind: string, tenant: string | null | undefined, payload: unknown, field = 'signing.keyId'): string {
    if (!this.#keys.has(keyId)) {
      throw new ValidationError([{ path: field, message: `kind ${kind} is signed with key ${JSON.stringify(keyId)}, which this process does not hold: pass signingKeys to createSpool or set SPOOL_SIGNING_KEYS` }]);
    }
    return `v1:${keyId}:${this.#mac(keyId, kind, tenant, payload).toString('base64url')}`;
  }

  /** Throws SignatureError unless `signature` is a valid signature of this job by a key of this keyring. */
  verify(signature: unknown, kind: string, tenant: string | null | undefined, payload: unknown): void {
    if (typeof signature !== 'string') throw new SignatureError(`kind ${kind} needs a signed payload and this job has none (metadata.${SIGNATURE_FIELD})`);
    const match = /^v1:([A-Za-z0-9_.-]{1,64}):([A-Za-z0-9_-]{43})$/.exec(signature);
    if (!match) throw new SignatureError(`the signature of this ${kind} job is malformed`);
    const [, keyId, mac] = match;
    if (!this.#keys.has(keyId!)) throw new SignatureError(`this ${kind} job is signed with key ${JSON.stringify(keyId)}, which this worker does not hold (SPOOL_SIGNING_KEYS)`);
    const expected = this.#mac(keyId!, kind, tenant, payload);
    const given = Buffer.from(mac!, 'base64url');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new SignatureError(`the signature of this ${kind} job does not match its kind, tenant and payload: it was changed, or signed with another secret`);
    }
  }
}
