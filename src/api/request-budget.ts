import type { Executor } from '../db/executor.js';
import type { Logger } from '../observability/logger.js';

/** At most `limit` requests per `windowMs`, counted in fixed windows. */
export interface RequestRate {
  limit: number;
  windowMs: number;
}

/** How often an API process adds its counts to the shared ones and reads the others' back. */
export const BUDGET_SYNC_MS = 100;

interface Window {
  /** Which window (its start, in ms since the epoch, a multiple of windowMs). */
  start: number;
  /** When it ends. */
  end: number;
  /** This process's admitted requests in it. */
  local: number;
  /** How many of those the database has. */
  synced: number;
  /** Every other process's, as of the last sync. */
  others: number;
}

/**
 * Per-key and per-tenant request budgets for the API (docs/security.md,
 * "Request rate limits"; ADR 0008), shared by every API process through
 * one UNLOGGED table (sql/0012). A process admits or refuses each request
 * from memory, at no cost on the request's path; every 100 ms it adds what
 * it admitted to the shared window counts in one statement and reads back
 * what the other processes admitted. Exact within a process; across P
 * processes a window can take at most (P - 1) × limit × 100 ms / window
 * more, the others' admissions of the last sync period.
 */
export class RequestBudget {
  readonly #executor: Executor;
  readonly #q: string;
  readonly #rates: { key?: RequestRate; tenant?: RequestRate };
  readonly #log: Logger;
  readonly #windows = new Map<string, Window>();
  #timer: NodeJS.Timeout | undefined;
  #syncing: Promise<void> | undefined;
  #lastPrune = 0;

  constructor(executor: Executor, quotedSchema: string, rates: { key?: RequestRate; tenant?: RequestRate }, log: Logger) {
    this.#executor = executor;
    this.#q = quotedSchema;
    this.#rates = rates;
    this.#log = log;
  }

  /**
   * Takes one request from the key's budget and its tenant's: undefined if
   * both have room, else the seconds until the fuller one's window ends.
   */
  take(keyId: string, tenant: string | null): number | undefined {
    const now = Date.now();
    const scopes: [string, RequestRate][] = [];
    if (this.#rates.key) scopes.push([`key:${keyId}`, this.#rates.key]);
    if (this.#rates.tenant && tenant !== null) scopes.push([`tenant:${tenant}`, this.#rates.tenant]);
    const windows = scopes.map(([scope, rate]) => [this.#window(scope, rate, now), rate] as const);
    for (const [window, rate] of windows) {
      if (window.local + window.others >= rate.limit) return Math.max(1, Math.ceil((window.end - now) / 1000));
    }
    for (const [window] of windows) window.local++;
    if (windows.length > 0) this.#timer ??= setTimeout(() => void this.sync(), BUDGET_SYNC_MS).unref();
    return undefined;
  }

  #window(scope: string, rate: RequestRate, now: number): Window {
    const start = now - (now % rate.windowMs);
    let window = this.#windows.get(scope);
    if (!window || window.start !== start) {
      window = { start, end: start + rate.windowMs, local: 0, synced: 0, others: 0 };
      this.#windows.set(scope, window);
    }
    return window;
  }

  /** Adds this process's new admissions to the shared counts and reads the others' back (the timer calls it). */
  async sync(): Promise<void> {
    this.#timer = undefined;
    if (this.#syncing) return this.#syncing;
    this.#syncing = this.#sync().finally(() => (this.#syncing = undefined));
    return this.#syncing;
  }

  async #sync(): Promise<void> {
    const scopes: string[] = [];
    const starts: number[] = [];
    const deltas: number[] = [];
    const pending: Window[] = [];
    for (const [scope, window] of this.#windows) {
      if (window.local === window.synced) continue;
      scopes.push(scope);
      starts.push(window.start);
      deltas.push(window.local - window.synced);
      pending.push(window);
    }
    if (scopes.length === 0) return;
    try {
      const rows = await this.#executor.query<{ scope: string; window_start: string; n: number }>(
        `INSERT INTO ${this.#q}.api_request_windows AS w (scope, window_start, n)
         SELECT * FROM unnest($1::text[], $2::bigint[], $3::integer[])
         ON CONFLICT (scope, window_start) DO UPDATE SET n = w.n + EXCLUDED.n
         RETURNING w.scope, w.window_start::text, w.n`,
        [scopes, starts, deltas],
      );
      pending.forEach((window, i) => (window.synced += deltas[i]!));
      for (const row of rows) {
        const window = this.#windows.get(row.scope);
        if (window && String(window.start) === row.window_start) window.others = row.n - window.synced;
      }
      await this.#prune();
    } catch (error) {
      // Each process still holds its own count to the budget; the shared one is back at the next sync.
      this.#log.warn({ err: error }, 'could not share the request budget counts; enforcing this process\'s own until it can');
    }
  }

  /** Windows long over, in memory and in the table (once a minute). */
  async #prune(): Promise<void> {
    const now = Date.now();
    // A window that has ended and holds nothing unsynced is of no more use.
    for (const [scope, window] of this.#windows) if (window.end < now && window.local === window.synced) this.#windows.delete(scope);
    if (now - this.#lastPrune < 60_000) return;
    this.#lastPrune = now;
    const longest = Math.max(this.#rates.key?.windowMs ?? 0, this.#rates.tenant?.windowMs ?? 0);
    await this.#executor.query(`DELETE FROM ${this.#q}.api_request_windows WHERE window_start < $1::bigint`, [now - longest - 60_000]);
  }

  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
