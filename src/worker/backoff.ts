/**
 * How long a failed job waits before its next attempt: exponential, capped,
 * with jitter so that jobs that failed together do not retry together. The
 * delay is added to the database's now() when the failure is written.
 */
export interface BackoffPolicy {
  /** Delay after the first failure (1,000 ms). */
  baseMs?: number;
  /** Upper bound of the delay (3,600,000 ms = 1 hour). */
  maxMs?: number;
  /** Random spread as a fraction of the delay: 0.1 means ±10 % (0.1). */
  jitter?: number;
}

/** A policy, or a function of the attempt that just failed (1-based) returning ms. */
export type Backoff = BackoffPolicy | ((attempt: number) => number);

export const BACKOFF_DEFAULT: Required<BackoffPolicy> = { baseMs: 1_000, maxMs: 3_600_000, jitter: 0.1 };

/**
 * The delay before the attempt after `attempt`:
 * min(maxMs, baseMs · 2^(attempt − 1)) · (1 ± jitter).
 * (The reaper computes the same default in SQL: src/queries/maintenance.ts.)
 */
export function backoffDelay(backoff: Backoff | undefined, attempt: number, random: () => number = Math.random): number {
  if (typeof backoff === 'function') return Math.max(0, Math.round(backoff(attempt)));
  const policy = { ...BACKOFF_DEFAULT, ...backoff };
  const exponential = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(attempt - 1, 40));
  const spread = 1 + policy.jitter * (random() * 2 - 1);
  return Math.max(0, Math.round(exponential * spread));
}
