import { z } from 'zod';

// Names that also appear in metrics labels, NOTIFY payloads and file names:
// keep them to a safe alphabet. Mirrored by the CHECK constraints in sql/0001.
export const NAME_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.:/-]*$/;
/** A job id as text: a positive bigint's digits (callers that take it from outside also check the bigint range). */
export const JOB_ID_PATTERN = /^[1-9][0-9]{0,18}$/;
const NAME_RULE = 'letters, digits and _ . : / - (starting with a letter, digit or _)';

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

export const tagsSchema = z
  .array(
    z
      .string({ error: 'each tag must be a string' })
      .min(1, { error: 'tags must not be empty strings' })
      .max(128, { error: 'each tag must be at most 128 characters' })
      .refine(noNul, { error: NUL_RULE }),
    { error: 'expected an array of strings' },
  )
  .max(64, { error: 'at most 64 tags' });

export const uniqueKeySchema = z
  .string({ error: 'expected a string' })
  .min(1, { error: 'must not be empty (omit it for no uniqueness)' })
  .max(512, { error: 'must be at most 512 characters' })
  .refine(noNul, { error: NUL_RULE });


/** A job's group (sql/0006 `group_name`): 1-128 characters, no control characters. */
export const groupSchema = z
  .string({ error: 'expected a string, e.g. the tenant or customer id' })
  .min(1, { error: 'must not be empty (omit it for no group)' })
  .max(128, { error: 'must be at most 128 characters' })
  // eslint-disable-next-line no-control-regex
  .refine((value) => !/[\u0000-\u001f\u007f]/.test(value), { error: 'must not contain control characters' });
