import { z } from 'zod';
import { defineJob } from '../../src/index.js';

/** A typed job used across tests. */
export const sendEmail = defineJob({
  kind: 'email.send',
  schema: z.object({ to: z.string().email(), subject: z.string().default('hello') }),
  queue: 'mail',
  priority: 5,
  maxAttempts: 3,
});

/** Waits until `check` returns a truthy value (polling a condition, not sleeping blindly). */
export async function waitFor<T>(check: () => Promise<T> | T, what: string, timeoutMs = 10_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
