import { z } from 'zod';
import type { Job } from '../job.js';
import { groupSchema, jobIdTextSchema, kindSchema, queueSchema, tenantSchema } from '../job-fields.js';
import { eventTypeSchema } from './event.js';

/** The longest a single wait may hold (10 minutes). */
export const WAIT_MS_MAX = 600_000;
export const WAIT_MS_DEFAULT = 30_000;

export const waitOptionsSchema = z.strictObject({
  timeoutMs: z
    .number({ error: `expected milliseconds from 0 to ${WAIT_MS_MAX}` })
    .int({ error: 'expected a whole number of milliseconds' })
    .min(0, { error: 'must be at least 0' })
    .max(WAIT_MS_MAX, { error: `must be at most ${WAIT_MS_MAX} (10 minutes); wait again for longer` })
    .default(WAIT_MS_DEFAULT),
  signal: z.instanceof(AbortSignal, { error: 'expected an AbortSignal' }).optional(),
  /** Only a job of this tenant (the API sets it from a tenant-bound key). */
  tenant: tenantSchema.optional(),
});

export type WaitOptions = z.input<typeof waitOptionsSchema>;

/** What a wait ends with: the job as it is, and whether the time ran out before it finished. */
export interface WaitResult {
  job: Job;
  timedOut: boolean;
}

const list = <T extends z.ZodType>(item: T) => z.array(item).min(1, { error: 'give at least one value, or leave it out' }).max(100);

export const eventFilterSchema = z.strictObject({
  queue: list(queueSchema).optional(),
  kind: list(kindSchema).optional(),
  job: list(jobIdTextSchema).optional(),
  group: list(groupSchema).optional(),
  type: list(eventTypeSchema).optional(),
  tenant: tenantSchema.optional(),
});

export const eventStreamOptionsSchema = eventFilterSchema.extend({
  /** The id of the last event seen: replay from just after it. */
  after: z.string().optional(),
  signal: z.instanceof(AbortSignal, { error: 'expected an AbortSignal' }).optional(),
  /** Events this reader may fall behind by before it is dropped (10,000). */
  maxBuffer: z.number().int().min(1).max(1_000_000).optional(),
});

export type EventStreamOptions = z.input<typeof eventStreamOptionsSchema>;
