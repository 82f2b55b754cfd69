import type { Logger } from '../observability/logger.js';

export interface ServiceOptions {
  /** Time between runs. */
  intervalMs: number;
  /** Random spread of the interval, as a fraction (0.1 = ±10 %), so processes do not run in lockstep. */
  jitter?: number;
  /** A run that takes longer is logged as timed out and the next one is scheduled (default: 4 × interval, at least 10 s). */
  timeoutMs?: number;
  log: Logger;
}

/**
 * The shape every background service shares (heartbeat, leader, promoter,
 * reaper): start(), stop(), a jittered interval, a per-run timeout, a child
 * logger named after it, counters, `trigger()` to run early, and
 * `nextRun()` for tests to wait for "ran once". A run may return the delay
 * until its next run (e.g. the promoter's next due job).
 */
export abstract class Service {
  readonly name: string;
  protected readonly log: Logger;
  protected readonly intervalMs: number;
  /** Completed runs, failed runs. */
  readonly counters = { runs: 0, failures: 0 };
  readonly #options: Required<Omit<ServiceOptions, 'log'>>;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #started = false;
  #waiters: Array<() => void> = [];

  protected constructor(name: string, options: ServiceOptions) {
    this.name = name;
    this.log = options.log.child({ service: name });
    this.intervalMs = options.intervalMs;
    this.#options = {
      jitter: 0.1,
      timeoutMs: Math.max(10_000, options.intervalMs * 4),
      ...options,
    };
  }

  /** One run. Returns the ms until the next run, or undefined for the interval. */
  protected abstract runOnce(): Promise<number | undefined | void>;

  get started(): boolean {
    return this.#started;
  }

  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.trigger();
  }

  /** Stops the timer and waits for a run in progress. */
  async stop(): Promise<void> {
    this.#started = false;
    clearTimeout(this.#timer);
    await this.#running;
  }

  /** Runs as soon as possible (after the current run, if one is in progress). */
  trigger(): void {
    if (!this.#started) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    clearTimeout(this.#timer);
    this.#running = this.#run().finally(() => {
      this.#running = undefined;
      if (this.#again && this.#started) {
        this.#again = false;
        this.trigger();
      }
    });
  }

  /** Resolves after the next run completes (for tests). */
  nextRun(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  async #run(): Promise<void> {
    let next: number | undefined;
    let timeout: NodeJS.Timeout | undefined;
    try {
      const timedOut = new Promise<never>((_, reject) => {
        timeout = setTimeout(() => reject(new Error(`run took longer than ${this.#options.timeoutMs} ms`)), this.#options.timeoutMs);
      });
      next = (await Promise.race([this.runOnce(), timedOut])) ?? undefined;
      this.counters.runs++;
    } catch (error) {
      this.counters.failures++;
      this.log.error({ err: error }, `${this.name} run failed`);
    } finally {
      clearTimeout(timeout);
    }
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const resolve of waiters) resolve();
    if (!this.#started || this.#again) return;
    const base = next ?? this.#options.intervalMs;
    const delay = next !== undefined ? base : base * (1 + this.#options.jitter * (Math.random() * 2 - 1));
    this.#timer = setTimeout(() => this.trigger(), Math.max(0, Math.min(delay, 2_147_483_647)));
    this.#timer.unref();
  }
}
