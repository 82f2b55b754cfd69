import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import type { Executor } from '../db/executor.js';
import type { FieldIssue } from '../errors.js';
import { kindSchemasSql } from '../queries/kinds.js';

/** How long the API trusts its copy of the registry before reading it again (2 s). */
export const KIND_CATALOG_MAX_AGE_MS_DEFAULT = 2_000;
/** An unknown kind makes the catalog read the registry again, at most this often (250 ms). */
const MISS_REFRESH_MIN_MS = 250;

/** What to do with an enqueue of a kind no worker or producer has registered. */
export const UNKNOWN_KINDS = ['reject', 'allow'] as const;
export type UnknownKinds = (typeof UNKNOWN_KINDS)[number];

// ajv-formats is CommonJS: its default export arrives wrapped under ESM.
const addFormats = ((addFormatsModule as unknown as { default?: typeof addFormatsModule }).default ?? addFormatsModule) as unknown as (
  ajv: Ajv2020,
) => void;

/** One payload to check: its kind, the payload, and where the job sits in the request (`jobs.3.`, or ''). */
export interface KindCheck {
  kind: string;
  payload: unknown;
  at: string;
}

/**
 * The kind registry as the API and the CLI see it: which kinds exist, and a
 * compiled validator of each kind's payload JSON Schema. Read from the
 * database at most every `maxAgeMs` (and again when a kind is missing, so a
 * worker that just registered is seen at once); each schema is compiled
 * once and again only when it changes.
 */
export class KindCatalog {
  readonly #executor: Executor;
  readonly #sql: string;
  readonly #maxAgeMs: number;
  // verbose: errors carry their schema, so a failed pattern can be named by its format (below).
  readonly #ajv = new Ajv2020({ allErrors: true, strict: false, verbose: true });
  #validators = new Map<string, { text: string; validate: ValidateFunction | null }>();
  #loadedAt = Number.NEGATIVE_INFINITY;
  #loading: Promise<void> | undefined;

  constructor(executor: Executor, quotedSchema: string, options: { maxAgeMs?: number } = {}) {
    this.#executor = executor;
    this.#sql = kindSchemasSql(quotedSchema);
    this.#maxAgeMs = options.maxAgeMs ?? KIND_CATALOG_MAX_AGE_MS_DEFAULT;
    addFormats(this.#ajv);
  }

  /**
   * The problems of each job: an unknown kind (unless `unknownKinds` is
   * allow), or a payload its kind's schema refuses, each field named under
   * `<at>payload`. Empty when every job passes.
   */
  async check(jobs: readonly KindCheck[], unknownKinds: UnknownKinds): Promise<FieldIssue[]> {
    await this.#fresh(this.#loadedAt + this.#maxAgeMs);
    if (unknownKinds === 'reject' && jobs.some((job) => !this.#validators.has(job.kind))) {
      await this.#fresh(this.#loadedAt + MISS_REFRESH_MIN_MS);
    }
    const issues: FieldIssue[] = [];
    for (const job of jobs) {
      const entry = this.#validators.get(job.kind);
      if (!entry) {
        if (unknownKinds === 'reject') issues.push({ path: `${job.at}kind`, message: this.#unknownMessage(job.kind) });
        continue;
      }
      if (entry.validate && !entry.validate(job.payload === undefined ? {} : job.payload)) {
        issues.push(...(entry.validate.errors ?? []).map((error) => toIssue(error, `${job.at}payload`)));
      }
    }
    // One issue per field: an email that fails both its format and its pattern is one problem.
    const seen = new Set<string>();
    return issues.filter((issue) => !seen.has(issue.path) && seen.add(issue.path));
  }

  /** The registered kinds, sorted (as of the last read). */
  get kinds(): string[] {
    return [...this.#validators.keys()].sort();
  }

  #unknownMessage(kind: string): string {
    const known = this.kinds;
    const list = known.length === 0 ? 'none yet' : known.length > 20 ? `${known.slice(0, 20).join(', ')}, … (${known.length} in all)` : known.join(', ');
    return `unknown kind ${JSON.stringify(kind)}: no worker has registered it (known kinds: ${list}); start a worker that handles it, register it with spool.registerKinds(), or set SPOOL_UNKNOWN_KINDS=allow`;
  }

  async #fresh(until: number): Promise<void> {
    if (performance.now() < until) return;
    this.#loading ??= this.#load().finally(() => (this.#loading = undefined));
    await this.#loading;
  }

  async #load(): Promise<void> {
    const rows = await this.#executor.query<{ kind: string; payload_schema: unknown }>(this.#sql, []);
    const next = new Map<string, { text: string; validate: ValidateFunction | null }>();
    for (const row of rows) {
      const text = JSON.stringify(row.payload_schema);
      const known = this.#validators.get(row.kind);
      next.set(row.kind, known && known.text === text ? known : { text, validate: this.#compile(row.payload_schema) });
    }
    this.#validators = next;
    this.#loadedAt = performance.now();
  }

  #compile(schema: unknown): ValidateFunction | null {
    if (schema === null || typeof schema !== 'object') return null;
    try {
      return this.#ajv.compile(schema as object);
    } catch {
      // A schema ajv cannot compile checks nothing here; the worker's zod schema still does.
      return null;
    }
  }
}

/** An ajv error as a field issue: `/to` → `payload.to`, a missing property named as the field. */
function toIssue(error: ErrorObject, base: string): FieldIssue {
  const pointer = error.instancePath
    .split('/')
    .slice(1)
    .map((part) => part.replaceAll('~1', '/').replaceAll('~0', '~'));
  const path = [base, ...pointer];
  if (error.keyword === 'required') {
    return { path: [...path, String(error.params.missingProperty)].join('.'), message: 'is required' };
  }
  if (error.keyword === 'additionalProperties') {
    return { path: [...path, String(error.params.additionalProperty)].join('.'), message: 'unknown key: the kind\'s schema does not allow it' };
  }
  const format = (error.parentSchema as { format?: unknown } | undefined)?.format;
  if ((error.keyword === 'pattern' || error.keyword === 'format') && typeof format === 'string') {
    // zod writes an email as format plus a long regex: "must be a valid email" says it better than the regex.
    return { path: path.join('.'), message: `must be a valid ${format}` };
  }
  return { path: path.join('.'), message: error.message ?? 'is invalid' };
}
