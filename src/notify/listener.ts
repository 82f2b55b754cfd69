import postgres from 'postgres';
import type { Logger } from '../observability/logger.js';

/** What arrives on a schema's channel (see docs/schema.md, "Trigger and NOTIFY"). */
export type Notification =
  | { type: 'jobs'; queues: string[] | null; scheduled: boolean }
  | { type: 'cancel'; ids: string[] }
  /** A flow limit changed (sql/0006): reload which queues are under flow control. */
  | { type: 'flow' }
  /** Job events were recorded (sql/0013; sent only while a process is registered in event_listeners). */
  | { type: 'events' };

export interface ListenerOptions {
  channel: string;
  log: Logger;
  /** How often to check the connection still listens (30,000 ms). */
  checkIntervalMs?: number;
  /** First delay before re-subscribing after a failure; doubles up to 10 s (250 ms). */
  retryBaseMs?: number;
}

export const LISTENER_CHECK_INTERVAL_DEFAULT = 30_000;

/**
 * One LISTEN connection per process, for every queue of one schema.
 * It is a dedicated single-connection postgres.js instance, so the self-check
 * (`pg_listening_channels()`) runs on the very connection that listens.
 * When the connection drops (server restart, pg_terminate_backend, network),
 * it re-subscribes with backoff and then calls `onResubscribe`, so the worker
 * fetches at once whatever was enqueued while it was deaf.
 */
export class Listener {
  readonly #sql: postgres.Sql;
  readonly #options: Required<ListenerOptions>;
  readonly #handlers = new Set<(n: Notification) => void>();
  readonly #resubscribeHandlers = new Set<() => void>();
  #connected = false;
  #stopped = true;
  #checkTimer: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #subscribing: Promise<void> | undefined;
  #failures = 0;
  /** Subscriptions made so far, the first included (for tests and metrics). */
  resubscriptions = 0;
  /** The server process of the listening connection (pg_stat_activity.pid). */
  backendPid: number | undefined;

  constructor(connection: postgres.Options<Record<string, postgres.PostgresType>>, options: ListenerOptions) {
    this.#options = {
      checkIntervalMs: LISTENER_CHECK_INTERVAL_DEFAULT,
      retryBaseMs: 250,
      ...options,
    };
    this.#sql = postgres({
      ...connection,
      max: 1,
      max_lifetime: null,
      fetch_types: false,
      onnotice: () => {},
      connection: { application_name: 'spool-listener' },
      onnotify: (channel: string, payload: string) => this.#dispatch(channel, payload),
      onclose: () => this.#lost('connection closed'),
    } as postgres.Options<Record<string, postgres.PostgresType>>);
  }

  /** True while the LISTEN is known to be in place. */
  get connected(): boolean {
    return this.#connected;
  }

  onNotification(handler: (n: Notification) => void): () => void {
    this.#handlers.add(handler);
    return () => this.#handlers.delete(handler);
  }

  /** Called after every (re)subscription, including the first. */
  onResubscribe(handler: () => void): () => void {
    this.#resubscribeHandlers.add(handler);
    return () => this.#resubscribeHandlers.delete(handler);
  }

  async start(): Promise<void> {
    this.#stopped = false;
    await this.#subscribe();
    this.#scheduleCheck();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#checkTimer);
    clearTimeout(this.#retryTimer);
    this.#connected = false;
    await this.#sql.end({ timeout: 1 }).catch(() => {});
  }

  /** Checks now that the connection listens; re-subscribes if not. */
  async check(): Promise<void> {
    if (this.#stopped) return;
    try {
      const rows = await this.#sql`SELECT pg_listening_channels() AS channel`;
      if (!rows.some((row) => row.channel === this.#options.channel)) {
        this.#options.log.warn({ channel: this.#options.channel }, 'listener was not listening; subscribing again');
        this.#connected = false;
        await this.#subscribe();
      }
    } catch (error) {
      this.#lost((error as Error).message);
    }
  }

  #scheduleCheck(): void {
    clearTimeout(this.#checkTimer);
    if (this.#stopped) return;
    this.#checkTimer = setTimeout(() => void this.check().finally(() => this.#scheduleCheck()), this.#options.checkIntervalMs);
    this.#checkTimer.unref();
  }

  #subscribe(): Promise<void> {
    this.#subscribing ??= (async () => {
      try {
        await this.#sql.unsafe(`LISTEN "${this.#options.channel}"`);
        const [row] = await this.#sql`SELECT pg_backend_pid() AS pid`;
        this.backendPid = row!.pid as number;
        const wasSubscribed = this.resubscriptions > 0 || this.#failures > 0;
        this.#connected = true;
        this.#failures = 0;
        if (wasSubscribed) this.#options.log.info({ channel: this.#options.channel }, 'listener subscribed again');
        this.resubscriptions++;
        for (const handler of this.#resubscribeHandlers) handler();
      } finally {
        this.#subscribing = undefined;
      }
    })();
    return this.#subscribing;
  }

  #lost(reason: string): void {
    if (this.#stopped) return;
    this.#connected = false;
    if (this.#retryTimer) return;
    const delay = Math.min(10_000, this.#options.retryBaseMs * 2 ** this.#failures);
    this.#options.log.warn({ channel: this.#options.channel, reason, retry_in_ms: delay }, 'listener lost its connection');
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      if (this.#stopped) return;
      this.#subscribe().catch((error: Error) => {
        this.#failures++;
        this.#lost(error.message);
      });
    }, delay);
    this.#retryTimer.unref();
  }

  #dispatch(channel: string, payload: string): void {
    if (channel !== this.#options.channel) return;
    let message: Notification;
    try {
      const parsed = JSON.parse(payload) as { queues?: unknown; scheduled?: unknown; cancel?: unknown; flow?: unknown; events?: unknown };
      if (parsed.events === true) {
        message = { type: 'events' };
      } else if (parsed.flow === true) {
        message = { type: 'flow' };
      } else if (Array.isArray(parsed.cancel)) {
        message = { type: 'cancel', ids: parsed.cancel.map(String) };
      } else if ('queues' in parsed) {
        message = {
          type: 'jobs',
          queues: Array.isArray(parsed.queues) ? parsed.queues.map(String) : null,
          scheduled: parsed.scheduled === true,
        };
      } else {
        return;
      }
    } catch {
      return; // Not ours (someone else NOTIFYing on the channel).
    }
    for (const handler of this.#handlers) handler(message);
  }
}

/** Connection settings of a postgres.js pool, for opening a dedicated connection like it. */
export function connectionOf(sql: postgres.Sql): postgres.Options<Record<string, postgres.PostgresType>> {
  // postgres.js keeps host and port as arrays and accepts them back as such.
  const o = sql.options as unknown as Record<string, unknown>;
  return {
    host: o.host,
    port: o.port,
    path: o.path || undefined,
    database: o.database,
    user: o.user,
    pass: o.pass,
    ssl: o.ssl,
  } as postgres.Options<Record<string, postgres.PostgresType>>;
}
