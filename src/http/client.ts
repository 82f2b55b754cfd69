/**
 * A typed client of Spool's HTTP API, for producers in other services:
 * `import { SpoolHttpClient } from 'spool-queue/http'`. Responses are
 * checked with the same zod schemas the server documents them with.
 */
import type { z } from 'zod';
import {
  enqueueBody,
  enqueueResponse,
  eventResponse,
  HTTP_WAIT_MS_MAX,
  jobEnvelope,
  jobPageResponse,
  problemResponse,
} from '../api/schemas.js';

export type HttpJob = z.infer<typeof jobEnvelope>['job'];
export type HttpEvent = z.infer<typeof eventResponse>;
export type HttpJobPage = z.infer<typeof jobPageResponse>;
/** POST /jobs's body without kind and payload: queue, priority, delayMs, runAt, uniqueKey, webhook, … */
export type HttpEnqueueOptions = Omit<z.input<typeof enqueueBody>, 'kind' | 'payload'> & { idempotencyKey?: string };

export interface SpoolHttpClientOptions {
  /** Where the API is, e.g. http://spool:8080 (a path prefix is kept). */
  baseUrl: string;
  /** A key allowed to do what you call (spool keys create --role producer). */
  apiKey?: string;
  /** Each request's own limit, waits excepted (30,000 ms). */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

/** An error answer of the API: its status and `{ error: { code, message, details, requestId } }`. */
export class SpoolHttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: { path: string; message: string }[] = [],
    readonly requestId?: string,
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = 'SpoolHttpError';
  }
}

export interface HttpEventOptions {
  queue?: string[];
  kind?: string[];
  job?: string[];
  group?: string[];
  /** Event types, e.g. ['completed', 'dead']. */
  type?: HttpEvent['type'][];
  /** Replay from just after this event id. */
  after?: string;
  signal?: AbortSignal;
  /** Wait before reconnecting after a drop (the server's retry: hint wins; 2,000 ms). */
  reconnectMs?: number;
}

export class SpoolHttpClient {
  readonly #base: string;
  readonly #headers: Record<string, string>;
  readonly #timeoutMs: number;
  readonly #fetch: typeof fetch;

  constructor(options: SpoolHttpClientOptions) {
    this.#base = options.baseUrl.replace(/\/+$/, '');
    this.#headers = options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {};
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#fetch = options.fetch ?? fetch;
  }

  /** Enqueues a job: `{ job, duplicate }` (duplicate: its unique key or idempotency key was taken by an unfinished job, which this is). */
  async enqueue(kind: string, payload?: unknown, options: HttpEnqueueOptions = {}): Promise<{ job: HttpJob; duplicate: boolean }> {
    const { idempotencyKey, ...body } = options;
    const headers = idempotencyKey ? { 'idempotency-key': idempotencyKey } : undefined;
    return this.#call('POST', '/jobs', enqueueResponse, { body: { kind, payload, ...body }, headers });
  }

  /**
   * Enqueues a job and waits until it is completed, dead or cancelled, or
   * `timeoutMs` passes: `{ job, duplicate, timedOut }`. Give an
   * idempotencyKey to retry it safely after a network error.
   */
  async enqueueAndWait(kind: string, payload?: unknown, options: HttpEnqueueOptions & { timeoutMs?: number } = {}): Promise<{ job: HttpJob; duplicate: boolean; timedOut: boolean }> {
    const { timeoutMs = 30_000, idempotencyKey, ...body } = options;
    const started = Date.now();
    const wait = Math.min(timeoutMs, HTTP_WAIT_MS_MAX);
    const headers = idempotencyKey ? { 'idempotency-key': idempotencyKey } : undefined;
    const first = await this.#call('POST', `/jobs?wait=${wait}ms`, enqueueResponse, { body: { kind, payload, ...body }, headers, waitMs: wait });
    if (!first.timedOut || Date.now() - started >= timeoutMs) return { ...first, timedOut: first.timedOut ?? false };
    const rest = await this.waitFor(first.job.id, { timeoutMs: timeoutMs - (Date.now() - started) });
    return { ...rest, duplicate: first.duplicate };
  }

  /** One job, or null when there is none (or it is another tenant's). */
  async get(id: string): Promise<HttpJob | null> {
    try {
      return (await this.#call('GET', `/jobs/${encodeURIComponent(id)}`, jobEnvelope)).job;
    } catch (error) {
      if (error instanceof SpoolHttpError && error.status === 404) return null;
      throw error;
    }
  }

  /** Waits (server-side, woken by NOTIFY) until the job finishes or `timeoutMs` (30,000) passes. */
  async waitFor(id: string, options: { timeoutMs?: number } = {}): Promise<{ job: HttpJob; timedOut: boolean }> {
    const deadline = Date.now() + (options.timeoutMs ?? 30_000);
    for (;;) {
      const wait = Math.max(0, Math.min(deadline - Date.now(), HTTP_WAIT_MS_MAX));
      const answer = await this.#call('GET', `/jobs/${encodeURIComponent(id)}?wait=${wait}ms`, jobEnvelope, { waitMs: wait });
      if (!answer.timedOut || Date.now() >= deadline) return { job: answer.job, timedOut: answer.timedOut ?? false };
    }
  }

  /** A page of jobs (GET /jobs): filters as the API takes them; pass nextCursor back as cursor. */
  async list(filter: { state?: string[]; queue?: string[]; kind?: string[]; tag?: string; limit?: number; cursor?: string; order?: 'asc' | 'desc' } = {}): Promise<HttpJobPage> {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(filter)) {
      if (value !== undefined) query.set(key, Array.isArray(value) ? value.join(',') : String(value));
    }
    const text = query.toString();
    return this.#call('GET', `/jobs${text ? `?${text}` : ''}`, jobPageResponse);
  }

  async cancel(id: string): Promise<HttpJob> {
    return (await this.#call('DELETE', `/jobs/${encodeURIComponent(id)}`, jobEnvelope)).job;
  }

  async retry(id: string): Promise<HttpJob> {
    return (await this.#call('POST', `/jobs/${encodeURIComponent(id)}/retry`, jobEnvelope)).job;
  }

  /**
   * The event stream (GET /events) as an async iterator. It reconnects by
   * itself after a network error or a drop, with Last-Event-ID, so it
   * misses nothing within the events retention and repeats nothing. Ends
   * when `signal` aborts; an error answer (bad filter, key refused) throws.
   */
  async *events(options: HttpEventOptions = {}): AsyncGenerator<HttpEvent> {
    let last = options.after;
    let reconnectMs = options.reconnectMs ?? 2_000;
    const query = new URLSearchParams();
    for (const key of ['queue', 'kind', 'job', 'group'] as const) if (options[key]) query.set(key, options[key]!.join(','));
    if (options.type) query.set('state', options.type.join(','));
    while (!options.signal?.aborted) {
      let response: Response;
      try {
        response = await this.#fetch(`${this.#base}/events${query.size ? `?${query}` : ''}`, {
          headers: { ...this.#headers, accept: 'text/event-stream', ...(last ? { 'last-event-id': last } : {}) },
          signal: options.signal,
        });
      } catch (error) {
        if (options.signal?.aborted) return;
        await sleep(reconnectMs, options.signal);
        continue;
      }
      if (!response.ok) {
        if (response.status >= 500 || response.status === 429) {
          await response.body?.cancel();
          await sleep(Number(response.headers.get('retry-after') ?? 0) * 1000 || reconnectMs, options.signal);
          continue;
        }
        throw await errorOf(response);
      }
      try {
        for await (const message of sseMessages(response.body!)) {
          if (message.retry !== undefined) reconnectMs = message.retry;
          if (message.event === 'dropped') break;
          if (!message.data) continue;
          const event = eventResponse.parse(JSON.parse(message.data));
          last = event.id;
          yield event;
        }
      } catch (error) {
        if (options.signal?.aborted) return;
        // The connection broke: reconnect from the last event.
      }
      if (options.signal?.aborted) return;
      await sleep(reconnectMs, options.signal);
    }
  }

  async #call<S extends z.ZodType>(
    method: string,
    path: string,
    schema: S,
    options: { body?: unknown; headers?: Record<string, string>; waitMs?: number } = {},
  ): Promise<z.output<S>> {
    const response = await this.#fetch(`${this.#base}${path}`, {
      method,
      headers: { ...this.#headers, ...(options.body === undefined ? {} : { 'content-type': 'application/json' }), ...options.headers },
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      signal: AbortSignal.timeout(this.#timeoutMs + (options.waitMs ?? 0)),
    });
    if (!response.ok) throw await errorOf(response);
    return schema.parse(await response.json());
  }
}

async function errorOf(response: Response): Promise<SpoolHttpError> {
  const text = await response.text();
  const retryAfter = response.headers.get('retry-after');
  try {
    const { error } = problemResponse.parse(JSON.parse(text));
    return new SpoolHttpError(response.status, error.code, error.message, error.details, error.requestId, retryAfter ? Number(retryAfter) : undefined);
  } catch {
    return new SpoolHttpError(response.status, 'http_error', `HTTP ${response.status}: ${text.slice(0, 200)}`);
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}

interface SseMessage {
  event?: string;
  data?: string;
  id?: string;
  retry?: number;
}

/** The messages of a text/event-stream body (the WHATWG parsing rules, the parts Spool sends). */
async function* sseMessages(body: ReadableStream<Uint8Array>): AsyncGenerator<SseMessage> {
  const decoder = new TextDecoder();
  let buffer = '';
  let message: SseMessage = {};
  const data: string[] = [];
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let newline: number;
    while ((newline = buffer.search(/\r\n|\n|\r/)) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + (buffer.startsWith('\r\n', newline) ? 2 : 1));
      if (line === '') {
        if (data.length > 0 || message.event || message.retry !== undefined) yield { ...message, data: data.join('\n') };
        message = {};
        data.length = 0;
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'data') data.push(value);
      else if (field === 'event') message.event = value;
      else if (field === 'id') message.id = value;
      else if (field === 'retry' && /^\d+$/.test(value)) message.retry = Number(value);
    }
  }
}
