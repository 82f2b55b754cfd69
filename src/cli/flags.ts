import type { Command } from 'commander';
import { z } from 'zod';
import { ValidationError } from '../errors.js';
import { kindSchema, queueSchema } from '../job-fields.js';
import { LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, listFilterSchema, type ListFilter } from '../queries/list.js';

/**
 * Parses a flag's text with the zod schema of the field it sets (the
 * client's own, where there is one), so the CLI and the library agree on
 * every rule; an error names the flag and the text given.
 *
 * @example
 * parseFlag('--limit', listFilterSchema.shape.limit, '0', { integer: true })
 * // ValidationError: --limit: must be at least 1, got "0"
 */
export function parseFlag<S extends z.ZodType>(flag: string, schema: S, text: string, options: { integer?: boolean } = {}): z.output<S> {
  // Whole-number fields take numbers; anything else goes in as text so the schema's message explains it.
  const value = options.integer && /^\s*-?[0-9]+\s*$/.test(text) ? Number(text) : text;
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  throw new ValidationError([{ path: flag, message: `${parsed.error.issues[0]!.message}, got ${JSON.stringify(text)}` }]);
}

/** `parseFlag` for a flag that may be left out. */
export function optionalFlag<S extends z.ZodType>(
  flag: string,
  schema: S,
  text: string | undefined,
  options: { integer?: boolean } = {},
): z.output<S> | undefined {
  return text === undefined ? undefined : parseFlag(flag, schema, text, options);
}

const DURATION_UNITS_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const DURATION_RULE = 'expected a duration such as 30s, 30m, 12h or 7d (a whole number and one of ms, s, m, h, d)';
/** Longest duration a flag takes: ten years. */
const DURATION_MAX_MS = 3650 * DURATION_UNITS_MS.d;

/** A duration flag (`--older-than 7d`, `--timeout 60s`) as milliseconds. */
export const durationSchema = z
  .string()
  .regex(/^[0-9]+(ms|s|m|h|d)$/, { error: DURATION_RULE })
  .transform((text) => {
    const [, amount, unit] = /^([0-9]+)(ms|s|m|h|d)$/.exec(text)!;
    return Number(amount) * DURATION_UNITS_MS[unit as keyof typeof DURATION_UNITS_MS];
  })
  .pipe(z.number().max(DURATION_MAX_MS, { error: 'must be at most 3650d' }));

/** The filter flags `spool peek` and `spool dlq list` share. */
export interface ListFlags {
  queue?: string;
  kind?: string;
  limit?: string;
  cursor?: string;
}

/** Adds --queue, --kind, --limit and --cursor. */
export function withListFlags(command: Command): Command {
  return command
    .option('--queue <queue>', 'only jobs in this queue')
    .option('--kind <kind>', 'only jobs of this kind')
    .option('--limit <n>', `most jobs to show (1-${LIST_LIMIT_MAX}, default ${LIST_LIMIT_DEFAULT})`)
    .option('--cursor <cursor>', 'the next page: the cursor a previous page printed');
}

/** The `listJobs` filter the shared list flags ask for, each checked by the client's own schema. */
export function listFilterOf(flags: ListFlags): ListFilter {
  return {
    queue: optionalFlag('--queue', queueSchema, flags.queue),
    kind: optionalFlag('--kind', kindSchema, flags.kind),
    limit: optionalFlag('--limit', listFilterSchema.shape.limit, flags.limit, { integer: true }),
    cursor: flags.cursor,
  };
}
