import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Executor } from '../db/executor.js';
import { Listener } from '../notify/listener.js';
import type { Logger } from '../observability/logger.js';
import { compareCursors, matches, STREAM_START, type EventCursor, type EventFilter, type SpoolEvent } from './event.js';
import { EVENT_PAGE_EVENTS, TAIL_POSITION_COLUMNS, endedJobsSql, readEndedJobs, readEvents, readEventsSql, streamHeadSql, type TailPosition } from './reader.js';
import { TERMINAL_EVENT_TYPES } from '../queries/events.js';
import type postgres from 'postgres';

/** Events a subscriber may have waiting before it is dropped (10,000). */
export const SUBSCRIBER_BUFFER_DEFAULT = 10_000;
/** How often the hub reads anyway while anyone listens: a NOTIFY missed (a statement that began before this process registered) costs at most this. */
export const EVENT_POLL_MS = 1_000;
/** How long the reader waits for a slow subscriber to make room before it drops it. */
const ROOM_WAIT_MS = 2_000;
/** A position after every event of its row (pos is an array index or a job id, both below this). */
const END_OF_ROW = '9223372036854775807';
/** While transactions older than the last events are still open, read again this soon. */
const PENDING_POLL_MS = 15;
/** A registration in event_listeners lives this long and is renewed at a third of it. */
const REGISTRATION_MS = 60_000;
/** With no subscriber and no waiter for this long, the hub stops listening (and statements stop notifying). */
const IDLE_STOP_MS = 60_000;

export interface HubOptions {
  executor: Executor;
  quotedSchema: string;
  channel: string;
  connection: postgres.Options<Record<string, postgres.PostgresType>>;
  log: Logger;
}

/** A stream of events for one subscriber; `close()` ends it. */
export interface Subscription extends AsyncIterable<SpoolEvent> {
  close(reason?: string): void;
  /** Why it ended, when it was dropped for falling behind. */
  readonly dropped: string | undefined;
}

interface Subscriber {
  filter: EventFilter;
  /** The last event read for it (delivered or filtered out): it gets only events after this. */
  last: EventCursor;
  live: boolean;
  queue: SpoolEvent[];
  max: number;
  wake: (() => void) | undefined;
  ended: boolean;
  dropped: string | undefined;
}

/**
 * One per Spool: a single LISTEN connection and a single reader of
 * job_events feed every subscriber of this process (GET /events,
 * `spool.events()`) and every waiter (`waitFor`, `?wait=`). While anyone
 * listens, the process is registered in event_listeners so that the
 * statements that record events also NOTIFY; with nobody, they do not.
 */
export class EventHub {
  readonly #options: HubOptions;
  readonly #statement: string;
  readonly #endedStatement: string;
  readonly #pendingStatement: string;
  readonly #process = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  readonly #subscribers = new Set<Subscriber>();
  /** Waiters by job id: each is called once its job ended. */
  readonly #waiters = new Map<string, Set<() => void>>();
  #listener: Listener | undefined;
  #starting: Promise<void> | undefined;
  #cursor: EventCursor | undefined;
  /** Where the waiters' read of the tail (endedJobsSql) goes on from. */
  #tail: TailPosition | undefined;
  /** The stream was not read while nobody subscribed: #cursor may be behind the head. */
  #cursorBehind = false;
  #reading = false;
  #again = false;
  #pollTimer: NodeJS.Timeout | undefined;
  #renewTimer: NodeJS.Timeout | undefined;
  #idleTimer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: HubOptions) {
    this.#options = options;
    this.#statement = readEventsSql(options.quotedSchema);
    this.#endedStatement = endedJobsSql(options.quotedSchema);
    // Whether events of open transactions wait behind the gate, and the tail's position now.
    // Bounded on both sides, so the planner reads the range by the primary key (see endedJobsSql).
    this.#pendingStatement = `SELECT EXISTS (SELECT 1 FROM ${options.quotedSchema}.job_events WHERE xid >= pg_snapshot_xmin(pg_current_snapshot())
         AND xid < pg_snapshot_xmax(pg_current_snapshot())) AS pending,
       ${TAIL_POSITION_COLUMNS}`;
  }

  /** Subscribers and waiters now. */
  get listeners(): number {
    let waiting = 0;
    for (const set of this.#waiters.values()) waiting += set.size;
    return this.#subscribers.size + waiting;
  }

  /** Resolves once the hub listens and knows where the stream is (started on first use). */
  ready(): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('this Spool is closed'));
    if (this.#cursor) return Promise.resolve();
    this.#starting ??= this.#start().finally(() => (this.#starting = undefined));
    return this.#starting;
  }

  /**
   * Events matching `filter`, from just after `after` (an event id's
   * cursor: the past is replayed first, in order) or from now on.
   */
  subscribe(filter: EventFilter, options: { after?: EventCursor; maxBuffer?: number } = {}): Subscription {
    const subscriber: Subscriber = {
      filter,
      last: options.after ?? STREAM_START,
      live: false,
      queue: [],
      max: Math.max(options.maxBuffer ?? SUBSCRIBER_BUFFER_DEFAULT, 2 * EVENT_PAGE_EVENTS),
      wake: undefined,
      ended: false,
      dropped: undefined,
    };
    this.#subscribers.add(subscriber);
    this.#busy();
    const replay = this.#catchUp(subscriber, options.after !== undefined).catch((error: Error) => this.#end(subscriber, `the stream failed: ${error.message}`));
    const hub = this;
    return {
      get dropped() {
        return subscriber.dropped;
      },
      close: (reason?: string) => this.#end(subscriber, reason, false),
      async *[Symbol.asyncIterator]() {
        try {
          await replay;
          for (;;) {
            while (subscriber.queue.length > 0) yield subscriber.queue.shift()!;
            if (subscriber.ended) return;
            await new Promise<void>((resolve) => (subscriber.wake = resolve));
            subscriber.wake = undefined;
          }
        } finally {
          hub.#end(subscriber, undefined, false);
        }
      },
    };
  }

  /**
   * Resolves `{ ended: true }` once job `id` has ended (completed, dead,
   * cancelled) after this call, or `{ ended: false }` when `timeoutMs`
   * passes or `signal` aborts. `check` runs once the waiter is in place (so
   * nothing that ends the job after it is missed) and may settle it at
   * once (`checked`). Woken by the tail read (endedJobsSql) as soon as the
   * ending commits, and by the stream as a fallback.
   */
  async waitForEnd<T>(id: string, check: () => Promise<T | undefined>, options: { timeoutMs: number; signal?: AbortSignal }): Promise<{ ended: boolean; checked?: T }> {
    await this.ready();
    let listener: (() => void) | undefined;
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const ended = new Promise<boolean>((resolve) => {
      listener = () => resolve(true);
      timer = setTimeout(() => resolve(false), options.timeoutMs);
      onAbort = () => resolve(false);
      options.signal?.addEventListener('abort', onAbort, { once: true });
    });
    const set = this.#waiters.get(id) ?? new Set();
    set.add(listener!);
    this.#waiters.set(id, set);
    this.#busy();
    try {
      if (options.signal?.aborted) return { ended: false };
      const checked = await check();
      if (checked !== undefined) return { ended: true, checked };
      return { ended: await ended };
    } finally {
      clearTimeout(timer);
      if (onAbort) options.signal?.removeEventListener('abort', onAbort);
      set.delete(listener!);
      if (set.size === 0) this.#waiters.delete(id);
      this.#maybeIdle();
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const subscriber of this.#subscribers) this.#end(subscriber, 'the process is stopping', false);
    await this.#stop();
  }

  async #start(): Promise<void> {
    const { executor } = this.#options;
    if (!this.#listener) {
      this.#listener = new Listener(this.#options.connection, { channel: this.#options.channel, log: this.#options.log });
      this.#listener.onNotification((message) => {
        if (message.type === 'events') this.#read();
      });
      this.#listener.onResubscribe(() => this.#read());
    }
    await this.#listener.start();
    await this.#register();
    // The registration committed before this: statements that start from now on notify.
    const [head] = await executor.query<{ xid: string; next: string; running: string[] }>(streamHeadSql(), []);
    this.#tail = { next: head!.next, running: head!.running };
    this.#cursor = { xid: head!.xid, seq: '0', pos: '0' };
    this.#renewTimer = setInterval(() => void this.#register().catch((error: Error) => this.#options.log.warn({ err: error.message }, 'could not renew the event listener registration')), REGISTRATION_MS / 3);
    this.#renewTimer.unref();
    this.#schedulePoll(EVENT_POLL_MS);
  }

  async #register(): Promise<void> {
    await this.#options.executor.query(
      `INSERT INTO ${this.#options.quotedSchema}.event_listeners (process, expires_at) VALUES ($1, now() + $2 * interval '1 millisecond')
       ON CONFLICT (process) DO UPDATE SET expires_at = EXCLUDED.expires_at`,
      [this.#process, REGISTRATION_MS],
    );
  }

  async #stop(): Promise<void> {
    clearTimeout(this.#pollTimer);
    clearInterval(this.#renewTimer);
    clearTimeout(this.#idleTimer);
    const wasListening = this.#cursor !== undefined;
    this.#cursor = undefined;
    this.#tail = undefined;
    await this.#listener?.stop();
    this.#listener = undefined;
    if (wasListening) {
      await this.#options.executor.query(`DELETE FROM ${this.#options.quotedSchema}.event_listeners WHERE process = $1`, [this.#process]).catch(() => {});
    }
  }

  #busy(): void {
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
  }

  #maybeIdle(): void {
    if (this.listeners > 0 || this.#closed || this.#idleTimer) return;
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = undefined;
      if (this.listeners === 0 && !this.#starting) void this.#stop();
    }, IDLE_STOP_MS);
    this.#idleTimer.unref();
  }

  #schedulePoll(ms: number): void {
    clearTimeout(this.#pollTimer);
    if (this.#closed || !this.#cursor) return;
    this.#pollTimer = setTimeout(() => this.#read(), ms);
    this.#pollTimer.unref();
  }

  /** Reads what is new (one reader at a time; a wake-up during a read reads again after it). */
  #read(): void {
    if (!this.#cursor || this.#closed) return;
    if (this.#reading) {
      this.#again = true;
      return;
    }
    this.#reading = true;
    void (async () => {
      let pending = false;
      try {
        for (;;) {
          this.#again = false;
          const waiting = this.#waiters.size > 0;
          if (waiting) await this.#readTail();
          if (this.#subscribers.size === 0) {
            // Waiters need only the tail: the stream (and its gate) is read for subscribers alone.
            this.#cursorBehind = true;
            if (!waiting) await this.#tailToHere(streamHeadSql());
            if (this.#again) continue;
            break;
          }
          const page = await readEvents(this.#options.executor, this.#statement, this.#cursor!);
          this.#cursor = page.last;
          for (const { event } of page.read) this.#dispatch(event);
          if (page.full) await this.#roomForAPage();
          if (page.full || this.#again) continue;
          // Events of transactions still open wait behind them: look again soon rather than at the next NOTIFY.
          const state = await this.#tailToHere<{ pending: boolean }>(this.#pendingStatement);
          pending = state.pending;
          break;
        }
      } catch (error) {
        this.#options.log.warn({ err: (error as Error).message }, 'could not read events; trying again');
        pending = true;
      } finally {
        this.#reading = false;
        if (this.#cursor) this.#schedulePoll(pending ? PENDING_POLL_MS : EVENT_POLL_MS);
      }
    })();
  }

  /**
   * Before the next page: waits (up to ROOM_WAIT_MS) until every live
   * subscriber has room for a page, so a backlog is handed over at the pace
   * of the subscribers; one still without room after that reads too slowly
   * and is dropped (it reconnects from its last event).
   */
  async #roomForAPage(): Promise<void> {
    const full = () => [...this.#subscribers].filter((s) => s.live && !s.ended && s.queue.length > s.max - EVENT_PAGE_EVENTS);
    const deadline = performance.now() + ROOM_WAIT_MS;
    while (full().length > 0 && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    for (const subscriber of full()) this.#end(subscriber, `more than ${subscriber.max - EVENT_PAGE_EVENTS} events waited for this subscriber for ${ROOM_WAIT_MS} ms: it reads too slowly; reconnect with the last event id`);
  }

  #dispatch(event: SpoolEvent): void {
    for (const subscriber of this.#subscribers) {
      if (subscriber.live) this.#offer(subscriber, event);
    }
    if (TERMINAL_EVENT_TYPES.includes(event.type)) this.#ended(event.job.id);
  }

  /** Wakes the waiters of jobs that ended in transactions committed since the last tail read. */
  async #readTail(): Promise<void> {
    if (!this.#tail) return;
    const { ids, next } = await readEndedJobs(this.#options.executor, this.#endedStatement, this.#tail);
    if (this.#tail) this.#tail = next;
    for (const id of ids) this.#ended(id);
  }

  /**
   * Runs `statement` (which returns the TailPosition columns) and, if nobody
   * waited before or after it, moves the tail there: the next waiter's first
   * tail read then starts from now rather than from the last one. A waiter
   * that came meanwhile keeps the older position, which misses nothing.
   */
  async #tailToHere<T>(statement: string): Promise<T & TailPosition> {
    const noWaiters = this.#waiters.size === 0;
    const [row] = await this.#options.executor.query<T & TailPosition>(statement, []);
    if (noWaiters && this.#waiters.size === 0 && this.#tail) this.#tail = { next: row!.next, running: row!.running };
    return row!;
  }

  #ended(id: string): void {
    const waiting = this.#waiters.get(id);
    if (waiting) for (const resolve of waiting) resolve();
  }

  /** Hands the subscriber an event after its position; drops it when it has fallen too far behind. */
  #offer(subscriber: Subscriber, event: SpoolEvent): void {
    if (subscriber.ended) return;
    const cursor = cursorOf(event);
    if (compareCursors(cursor, subscriber.last) <= 0) return;
    subscriber.last = cursor;
    if (!matches(subscriber.filter, event)) return;
    if (subscriber.queue.length >= subscriber.max) {
      this.#end(subscriber, `more than ${subscriber.max} events waited for this subscriber: it reads too slowly; reconnect with the last event id`);
      return;
    }
    subscriber.queue.push(event);
    subscriber.wake?.();
  }

  /** Replays the past a subscriber asked for, page by page, then hands it over to the live feed without a gap or a repeat. */
  async #catchUp(subscriber: Subscriber, replay: boolean): Promise<void> {
    await this.ready();
    if (this.#cursorBehind) await this.#cursorToHead();
    if (!replay) {
      subscriber.last = this.#cursor!;
      subscriber.live = true;
      return;
    }
    for (;;) {
      if (subscriber.ended) return;
      const page = await readEvents(this.#options.executor, this.#statement, subscriber.last);
      for (const { event } of page.read) this.#offer(subscriber, event);
      if (subscriber.ended) return;
      // Live from here only if the shared reader has not gone past this subscriber meanwhile.
      if (!page.full && this.#cursor && compareCursors(this.#cursor, subscriber.last) <= 0) {
        subscriber.live = true;
        return;
      }
      // Wait for room before the next page: replay obeys the same bound as live delivery.
      while (subscriber.queue.length > subscriber.max / 2 && !subscriber.ended) await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  /**
   * The stream was left unread while nobody subscribed: move the shared
   * position to just after the last readable event, so that the reader
   * does not read that backlog again for nobody and a subscriber from now
   * on starts there. Moved only while no subscriber is live (one replaying
   * reads up to at least there itself).
   */
  async #cursorToHead(): Promise<void> {
    const [last] = await this.#options.executor.query<{ xid: string; seq: string }>(
      `SELECT xid::text AS xid, seq::text AS seq FROM ${this.#options.quotedSchema}.job_events
        WHERE xid < pg_snapshot_xmin(pg_current_snapshot()) ORDER BY xid DESC, seq DESC LIMIT 1`,
      [],
    );
    if ([...this.#subscribers].some((s) => s.live)) return;
    this.#cursorBehind = false;
    const at = last ? { xid: last.xid, seq: last.seq, pos: END_OF_ROW } : undefined;
    if (at && this.#cursor && compareCursors(at, this.#cursor) > 0) this.#cursor = at;
  }

  #end(subscriber: Subscriber, dropped: string | undefined, notify = true): void {
    if (!subscriber.ended) {
      subscriber.ended = true;
      if (dropped && notify) subscriber.dropped = dropped;
      subscriber.wake?.();
    }
    this.#subscribers.delete(subscriber);
    this.#maybeIdle();
  }
}

function cursorOf(event: SpoolEvent): EventCursor {
  const [xid, seq, pos] = event.id.split('-');
  return { xid: xid!, seq: seq!, pos: pos! };
}
