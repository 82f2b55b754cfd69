import type postgres from 'postgres';
import { z } from 'zod';
import { defineJob, type JobContext } from '../../src/index.js';

/**
 * Handlers in tests record every execution in this table (database time), so
 * tests count executions instead of trusting the worker's own counters.
 */
export async function createExecutionsTable(sql: postgres.Sql): Promise<void> {
  await sql.unsafe(`
    CREATE TABLE IF NOT EXISTS public.executions (
      seq      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      job_id   bigint NOT NULL,
      attempt  integer NOT NULL,
      worker   text NOT NULL,
      at       timestamptz NOT NULL DEFAULT clock_timestamp(),
      ended_at timestamptz
    )`);
}

export async function recordExecution(ctx: JobContext, worker = 'test'): Promise<void> {
  await ctx.spool.sql`INSERT INTO public.executions (job_id, attempt, worker) VALUES (${ctx.job.id}, ${ctx.job.attempt}, ${worker})`;
}

/** A job whose handler records its execution, then runs `then` (if any). */
export function recordingJob(
  kind: string,
  then?: (payload: Record<string, unknown>, ctx: JobContext) => Promise<unknown> | unknown,
  options: {
    queue?: string;
    maxAttempts?: number;
    timeoutMs?: number;
    backoff?: { baseMs: number; maxMs?: number; jitter?: number };
    removeOnComplete?: boolean;
  } = {},
) {
  return defineJob({
    kind,
    schema: z.record(z.string(), z.unknown()),
    ...options,
    handler: async (payload, ctx) => {
      await recordExecution(ctx);
      return then ? then(payload, ctx) : { ok: true };
    },
  });
}
