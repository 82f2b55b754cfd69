import { createHmac, timingSafeEqual } from 'node:crypto';

/** The header that carries a delivery's signature: `t=<unix seconds>,v1=<hex>[,v1=<hex>]`. */
export const SIGNATURE_HEADER = 'spool-signature';
/** A delivery older (or newer) than this is refused by `verifyWebhook` by default: 5 minutes. */
export const SIGNATURE_TOLERANCE_S = 300;

/** HMAC-SHA256 of `<t>.<body>` under a secret, in hex. */
function mac(secret: string, timestamp: number, body: string): string {
  return createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
}

/** The Spool-Signature value for a body: one v1 per secret (two during a rotation's overlap). */
export function signatureHeader(secrets: string[], body: string, timestamp = Math.floor(Date.now() / 1000)): string {
  return [`t=${timestamp}`, ...secrets.map((secret) => `v1=${mac(secret, timestamp, body)}`)].join(',');
}

export class WebhookVerificationError extends Error {
  constructor(
    readonly code: 'signature_missing' | 'signature_malformed' | 'signature_mismatch' | 'timestamp_out_of_range',
    message: string,
  ) {
    super(message);
    this.name = 'WebhookVerificationError';
  }
}

type HeaderSource = Headers | Record<string, string | string[] | undefined>;

function header(headers: HeaderSource, name: string): string | undefined {
  if (typeof (headers as Headers).get === 'function') return (headers as Headers).get(name) ?? undefined;
  const record = headers as Record<string, string | string[] | undefined>;
  const key = Object.keys(record).find((k) => k.toLowerCase() === name);
  const value = key === undefined ? undefined : record[key];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * For receivers: checks a delivery's Spool-Signature against the raw body
 * (the bytes as received, before any JSON parsing) and the webhook's
 * secret, and that its timestamp is within `toleranceSeconds` (300) of now.
 * Returns the parsed event; throws a WebhookVerificationError otherwise.
 * Store the Spool-Event-Id of what you processed to ignore a redelivery.
 *
 * @example
 * app.post('/hooks/spool', express.raw({ type: 'application/json' }), (req, res) => {
 *   const event = verifyWebhook(process.env.SPOOL_WEBHOOK_SECRET!, req.headers, req.body.toString('utf8'));
 *   res.sendStatus(204);
 * });
 */
export function verifyWebhook<T = unknown>(
  secret: string,
  headers: HeaderSource,
  body: string | Buffer,
  options: { toleranceSeconds?: number; now?: Date } = {},
): T {
  const value = header(headers, SIGNATURE_HEADER);
  if (!value) throw new WebhookVerificationError('signature_missing', 'no Spool-Signature header');
  const parts = value.split(',').map((part) => part.trim().split('=') as [string, string | undefined]);
  const t = parts.find(([k]) => k === 't')?.[1];
  const signatures = parts.filter(([k, v]) => k === 'v1' && v !== undefined && /^[0-9a-f]{64}$/.test(v)).map(([, v]) => v!);
  if (!t || !/^\d{1,12}$/.test(t) || signatures.length === 0) {
    throw new WebhookVerificationError('signature_malformed', 'Spool-Signature is not t=<seconds>,v1=<hex>');
  }
  const text = typeof body === 'string' ? body : body.toString('utf8');
  const expected = Buffer.from(mac(secret, Number(t), text), 'hex');
  if (!signatures.some((s) => timingSafeEqual(Buffer.from(s, 'hex'), expected))) {
    throw new WebhookVerificationError('signature_mismatch', 'the signature does not match this body and secret');
  }
  const tolerance = options.toleranceSeconds ?? SIGNATURE_TOLERANCE_S;
  const now = Math.floor((options.now ?? new Date()).getTime() / 1000);
  if (Math.abs(now - Number(t)) > tolerance) {
    throw new WebhookVerificationError('timestamp_out_of_range', `the signature is ${now - Number(t)} s old; at most ${tolerance} s is accepted (a replay?)`);
  }
  return JSON.parse(text) as T;
}
