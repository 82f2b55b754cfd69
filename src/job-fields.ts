import { z } from 'zod';

// Names that also appear in metrics labels, NOTIFY payloads and file names:
// keep them to a safe alphabet. Mirrored by the CHECK constraints in sql/0001.
export const NAME_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.:/-]*$/;
/** A job id as text: a positive bigint's digits (callers that take it from outside also check the bigint range). */
export const JOB_ID_PATTERN = /^[1-9][0-9]{0,18}$/;
/** The largest job id: PostgreSQL's bigint. */
export const JOB_ID_MAX = 9223372036854775807n;
/** A job id as digits within PostgreSQL's bigint: 19-digit numbers past 2^63-1 are refused here, not by the database. */
export const isJobIdText = (text: string): boolean => JOB_ID_PATTERN.test(text) && BigInt(text) <= JOB_ID_MAX;
export const JOB_ID_RULE = 'expected a job id: a positive whole number of at most 9223372036854775807';
export const jobIdTextSchema = z.string({ error: JOB_ID_RULE }).refine(isJobIdText, { error: JOB_ID_RULE });
const NAME_RULE = 'letters, digits and _ . : / - (starting with a letter, digit or _)';

/** Most bytes of a job's payload as JSON text (1 MiB), checked by the client and spool.enqueue_batch (sql/0009). */
export const PAYLOAD_BYTES_MAX = 1024 * 1024;
/** Deepest nesting of a payload or metadata: a value at level 64 (the top is 0) is refused, here and by the jobs table. */
export const JSON_DEPTH_MAX = 64;

/** `maxAttempts` when neither the job definition nor the call sets it. */
export const MAX_ATTEMPTS_DEFAULT = 25;
/** `queue` when neither the job definition nor the call sets it. */
export const QUEUE_DEFAULT = 'default';
/** `priority` when neither the job definition nor the call sets it (lower runs first). */
export const PRIORITY_DEFAULT = 0;

export const kindSchema = z
  .string({ error: 'expected a string naming the handler, e.g. "email.send"' })
  .min(1, { error: 'must not be empty: name the handler, e.g. "email.send"' })
  .max(255, { error: 'must be at most 255 characters' })
  .regex(NAME_PATTERN, { error: `use only ${NAME_RULE}` });

export const queueSchema = z
  .string({ error: 'expected a string, e.g. "default"' })
  .min(1, { error: 'must not be empty (omit it for "default")' })
  .max(128, { error: 'must be at most 128 characters' })
  .regex(NAME_PATTERN, { error: `use only ${NAME_RULE}` });

export const prioritySchema = z
  .number({ error: 'expected a whole number from -32768 to 32767 (lower runs first)' })
  .int({ error: 'expected a whole number from -32768 to 32767 (lower runs first)' })
  .min(-32768, { error: 'must be at least -32768' })
  .max(32767, { error: 'must be at most 32767' });

export const maxAttemptsSchema = z
  .number({ error: 'expected a whole number of at least 1' })
  .int({ error: 'expected a whole number of at least 1' })
  .min(1, { error: 'must be at least 1 (1 means no retries)' })
  .max(2147483647, { error: 'must be at most 2147483647' });

export const timeoutMsSchema = z
  .number({ error: 'expected whole milliseconds' })
  .int({ error: 'expected whole milliseconds' })
  .min(1, { error: 'must be at least 1 ms' })
  .max(2147483647, { error: 'must be at most 2147483647 ms' });

export const noNul = (value: string) => !value.includes('\u0000');
export const NUL_RULE = 'must not contain the NUL character (\\u0000), which PostgreSQL text cannot store';
/** Text PostgreSQL can store: no NUL and no lone UTF-16 surrogate (half of a character, e.g. "\\ud800"). */
// With the u flag a surrogate pair is one code point; only a lone half is category Cs.
const LONE_SURROGATE = /\p{Cs}/u;
export const wellFormed = (value: string) => !LONE_SURROGATE.test(value);
export const storableText = (value: string) => noNul(value) && wellFormed(value);
export const STORABLE_TEXT_RULE = 'must be valid Unicode text: no NUL (\\u0000) and no lone surrogate (e.g. \\ud800)';

// ISO 8601 as z.iso.datetime checks it, split into the parts PostgreSQL is stricter about.
const ISO_PARTS = /^(\d{4})-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.(\d+))?)?(?:Z|([+-])(\d{2}):?(\d{2}))$/i;

/**
 * What keeps an ISO 8601 timestamp that z.iso.datetime accepts from being a
 * PostgreSQL timestamptz, or undefined: year 0000 (there is none), more than
 * 9 fractional digits, an offset past ±15:59.
 */
export function timestampProblem(text: string): string | undefined {
  const parts = ISO_PARTS.exec(text);
  if (!parts) return undefined;
  const [, year, fraction, , offsetHours] = parts;
  if (Number(year) < 1) return 'the year must be 0001 or later';
  if (fraction !== undefined && fraction.length > 9) return 'at most 9 fractional digits of a second';
  if (offsetHours !== undefined && Number(offsetHours) > 15) return 'the zone offset must be within ±15:59';
  if (!Number.isFinite(Date.parse(text))) return 'is not a real date and time';
  return undefined;
}

/** A Date in years 0001-9999: toISOString writes others in a form (+010000-…, -000001-…) PostgreSQL does not read. */
export const storableDateSchema = (rule: string) =>
  z.date({ error: rule }).refine((d) => d.getUTCFullYear() >= 1 && d.getUTCFullYear() <= 9999, { error: 'must be in the years 0001 to 9999' });

/** An ISO 8601 timestamp with a zone that PostgreSQL can store. */
export const timestampTextSchema = (rule: string) =>
  z.iso.datetime({ offset: true, error: rule }).superRefine((text, ctx) => {
    const problem = timestampProblem(text);
    if (problem) ctx.addIssue({ code: 'custom', message: `${problem} (${rule})` });
  });

export const tagsSchema = z
  .array(
    z
      .string({ error: 'each tag must be a string' })
      .min(1, { error: 'tags must not be empty strings' })
      .max(128, { error: 'each tag must be at most 128 characters' })
      .refine(storableText, { error: STORABLE_TEXT_RULE }),
    { error: 'expected an array of strings' },
  )
  .max(64, { error: 'at most 64 tags' });

export const uniqueKeySchema = z
  .string({ error: 'expected a string' })
  .min(1, { error: 'must not be empty (omit it for no uniqueness)' })
  .max(512, { error: 'must be at most 512 characters' })
  .refine(storableText, { error: STORABLE_TEXT_RULE });


/** A name of 1-128 characters without control characters (the domains group_name and tenant_name). */
const labelSchema = (expected: string, omitted: string) =>
  z
    .string({ error: expected })
    .min(1, { error: `must not be empty (omit it for ${omitted})` })
    .max(128, { error: 'must be at most 128 characters' })
    // eslint-disable-next-line no-control-regex
    .refine((value) => !/[\u0000-\u001f\u007f]/.test(value), { error: 'must not contain control characters' })
    .refine(wellFormed, { error: STORABLE_TEXT_RULE });

/** A job's tenant (sql/0011 `tenant_name`). */
export const tenantSchema = labelSchema('expected a string naming the tenant', 'no tenant');

/** A job's group (sql/0006 `group_name`). */
export const groupSchema = labelSchema('expected a string, e.g. the tenant or customer id', 'no group');
