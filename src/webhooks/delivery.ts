import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { z } from 'zod';
import { defineJob } from '../job.js';
import { signatureHeader } from './signature.js';
import { guardedLookup, isPrivateAddress, WebhookTargetError } from './target.js';
import { PermanentError } from '../errors.js';
import type { Spool } from '../client.js';

/** The built-in kind that delivers webhooks, and its queue. */
export const WEBHOOK_KIND = 'spool.webhook';
export const WEBHOOK_QUEUE = 'spool.webhooks';
/** A receiver gets this long to answer (10 s). */
export const WEBHOOK_TIMEOUT_MS_DEFAULT = 10_000;
/** Attempts before a delivery is dead (its webhook's dead-letter queue): 12, about 10 hours with the default backoff. */
export const WEBHOOK_ATTEMPTS_DEFAULT = 12;
/** Most bytes of a receiver's answer that are read (and then dropped). */
const RESPONSE_BYTES_MAX = 64 * 1024;

export const deliveryPayloadSchema = z.object({
  webhook: z.string(),
  url: z.string(),
  event: z.object({ id: z.string(), type: z.string() }).passthrough(),
});
export type DeliveryPayload = z.infer<typeof deliveryPayloadSchema>;

export interface WebhookDeliveryOptions {
  /** A receiver gets this long to answer (10,000 ms). */
  timeoutMs?: number;
  /** Let per-job webhook URLs reach private and loopback addresses (false; SPOOL_WEBHOOK_ALLOW_PRIVATE). */
  allowPrivate?: boolean;
  /** Delay between attempts (the default backoff: 1 s doubling to 1 h, ±10 %). */
  backoff?: { baseMs: number; maxMs?: number; jitter?: number };
  maxAttempts?: number;
}

/**
 * POSTs a body; resolves with the status. No redirects are followed. The
 * target is checked on the address the socket connects to (guardedLookup),
 * and an address written in the URL is checked before anything is sent.
 */
export function postWebhook(
  url: string,
  body: string,
  headers: Record<string, string>,
  options: { allowPrivate: boolean; timeoutMs: number; signal?: AbortSignal },
): Promise<number> {
  const target = new URL(url);
  const host = target.hostname.replace(/^\[|\]$/g, '');
  if (!options.allowPrivate && ((isIP(host) && isPrivateAddress(host)) || host === 'localhost' || host.endsWith('.localhost'))) {
    return Promise.reject(new WebhookTargetError(`${target.host} is a private or loopback address: webhooks may not reach it (allow it with --allow-private or SPOOL_WEBHOOK_ALLOW_PRIVATE=true)`));
  }
  const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(target, {
      method: 'POST',
      headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
      timeout: options.timeoutMs,
      lookup: guardedLookup(options.allowPrivate),
      signal: options.signal,
    }, (res) => {
      let read = 0;
      res.on('data', (chunk: Buffer) => {
        read += chunk.length;
        if (read > RESPONSE_BYTES_MAX) res.destroy();
      });
      res.on('close', () => resolve(res.statusCode ?? 0));
      res.on('error', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${options.timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * The job definition that delivers webhooks: run it in a worker
 * (`spool serve` and `spool work` do) to send what the dispatcher queues.
 * Each delivery is a job of kind `spool.webhook` in queue `spool.webhooks`,
 * grouped by webhook id: retried with backoff on a network error or a
 * non-2xx answer, dead after its attempts (that webhook's dead-letter
 * queue: `spool webhooks deliveries <id> --state dead`, replay with
 * `spool webhooks replay <id>`). The body is the event as the stream
 * carries it; Spool-Signature signs it (verifyWebhook checks it).
 */
export function webhookDeliveryJob(spool: Spool, options: WebhookDeliveryOptions = {}) {
  const timeoutMs = options.timeoutMs ?? WEBHOOK_TIMEOUT_MS_DEFAULT;
  return defineJob({
    kind: WEBHOOK_KIND,
    queue: WEBHOOK_QUEUE,
    schema: deliveryPayloadSchema,
    maxAttempts: options.maxAttempts ?? WEBHOOK_ATTEMPTS_DEFAULT,
    ...(options.backoff ? { backoff: options.backoff } : {}),
    handler: async (delivery, ctx) => {
      const signing = await spool.webhooks.signingOf(delivery.webhook);
      if (!signing) return { skipped: 'the webhook was removed' };
      if (signing.paused) throw new Error(`webhook ${delivery.webhook} is paused: delivery waits for spool webhooks resume`);
      const body = JSON.stringify(delivery.event);
      const status = await postWebhook(delivery.url, body, {
        'content-type': 'application/json',
        'user-agent': 'Spool-Webhooks/1',
        'spool-signature': signatureHeader(signing.secrets, body),
        'spool-event-id': delivery.event.id,
        'spool-webhook-id': delivery.webhook,
        'spool-delivery-attempt': String(ctx.job.attempt),
      }, { allowPrivate: signing.allowPrivate || (delivery.webhook === 'job' && options.allowPrivate === true), timeoutMs, signal: ctx.signal }).catch((error: Error) => {
        if (error instanceof WebhookTargetError) throw new PermanentError(error.message);
        throw error;
      });
      if (status < 200 || status >= 300) throw new Error(`${delivery.url} answered ${status}`);
      return { status };
    },
  });
}
