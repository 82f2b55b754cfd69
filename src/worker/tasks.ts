import { spawnSync } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { ValidationError } from '../errors.js';
import { defineJob, isJobDefinition, type AnyJobDefinition } from '../job.js';
import { isScheduleDefinition, type ScheduleDefinition } from '../schedules/schedule.js';

// `<kind>.js` / `.mjs` / `.cjs`, and `.ts` / `.mts` / `.cts` where Node can import TypeScript (tsx, type stripping).
const TASK_FILE = /^([A-Za-z0-9_][A-Za-z0-9_.:-]*)\.([cm]?[jt]s)$/;
const TYPESCRIPT_HOWTO =
  "this Node.js cannot import TypeScript: run Spool under tsx (NODE_OPTIONS='--import tsx' npx spool …), use Node.js 22.6+ with --experimental-strip-types, or compile the task to .js";

/**
 * Loads a task folder: every `<kind>.js` (dots allowed: `email.send.js`) is
 * the handler of kind `<kind>`. Its default export is either
 * `async (payload, ctx) => result`, a `defineJob(...)` value, or a plain
 * `{ schema?, handler, queue?, maxAttempts?, timeoutMs?, backoff?, ... }`
 * object. Test files (`*.test.*`) and declaration files are skipped.
 */
export async function loadTasks(dir: string): Promise<AnyJobDefinition[]> {
  return (await loadTaskFolder(dir)).jobs;
}

/**
 * A task folder's handlers, and its cron schedules: a task file may also
 * export `schedules`, one `defineSchedule(...)` value or an array of them.
 */
export async function loadTaskFolder(dir: string): Promise<{ jobs: AnyJobDefinition[]; schedules: ScheduleDefinition[] }> {
  const folder = resolve(dir);
  let names: string[];
  try {
    names = await readdir(folder);
  } catch (error) {
    throw new ValidationError([{ path: 'tasks', message: `cannot read the task folder ${folder}: ${(error as Error).message}` }], 'task_invalid');
  }
  const definitions: AnyJobDefinition[] = [];
  const schedules: ScheduleDefinition[] = [];
  const files = new Map<string, string>();
  for (const name of names.sort()) {
    const match = TASK_FILE.exec(name);
    if (!match || /\.(test|spec|d)\.[cm]?[jt]s$/.test(name)) continue;
    const kind = match[1]!;
    const other = files.get(kind);
    if (other) {
      throw new ValidationError([{ path: join(folder, name), message: `kind ${kind} is also defined by ${other}: keep one file per kind` }], 'task_invalid');
    }
    files.set(kind, name);
    const file = join(folder, name);
    const module = await importTask(file);
    definitions.push(toDefinition(kind, module.default, file));
    if (module.schedules !== undefined) {
      const list = Array.isArray(module.schedules) ? module.schedules : [module.schedules];
      for (const schedule of list) {
        if (!isScheduleDefinition(schedule)) {
          throw new ValidationError([{ path: file, message: 'its `schedules` export must be defineSchedule(...) values (one, or an array)' }], 'task_invalid');
        }
        schedules.push(schedule);
      }
    }
  }
  if (definitions.length === 0) {
    throw new ValidationError([{ path: 'tasks', message: `no task files (<kind>.js, .mjs, .cjs, or .ts where Node imports TypeScript) in ${folder}` }], 'task_invalid');
  }
  return { jobs: definitions, schedules };
}

/**
 * The task file's default export. A file that cannot be loaded is an error
 * naming the file, and the line where Node gives one (a top-level throw's
 * stack does; for a syntax error, `node --check` is asked, on this failure
 * path only, since ESM syntax errors carry no position).
 */
async function importTask(file: string): Promise<{ default?: unknown; schedules?: unknown }> {
  try {
    return (await import(pathToFileURL(file).href)) as { default?: unknown; schedules?: unknown };
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    if (e.code === 'ERR_UNKNOWN_FILE_EXTENSION') throw new ValidationError([{ path: file, message: TYPESCRIPT_HOWTO }], 'task_invalid');
    const line = e instanceof SyntaxError ? syntaxErrorLine(file) : stackLine(e, file);
    throw new ValidationError(
      [{ path: line ? `${file}:${line}` : file, message: `cannot load the task file: ${e.name ?? 'Error'}: ${e.message}` }],
      'task_invalid',
    );
  }
}

function stackLine(error: Error, file: string): string | undefined {
  const href = pathToFileURL(file).href;
  const frame = (error.stack ?? '').split('\n').find((l) => l.includes(href));
  return frame ? new RegExp(`${escapeRegExp(href)}:(\\d+)`).exec(frame)?.[1] : undefined;
}

function syntaxErrorLine(file: string): string | undefined {
  if (/\.[cm]?ts$/.test(file)) return undefined;
  const check = spawnSync(process.execPath, ['--check', file], { encoding: 'utf8', timeout: 10_000 });
  return new RegExp(`^${escapeRegExp(file)}:(\\d+)`, 'm').exec(check.stderr ?? '')?.[1];
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function toDefinition(kind: string, exported: unknown, file: string): AnyJobDefinition {
  if (typeof exported === 'function') {
    return defineJob({ kind, schema: z.unknown(), handler: exported as AnyJobDefinition['handler'] });
  }
  if (isJobDefinition(exported)) {
    if (exported.kind !== kind) {
      throw new ValidationError([{ path: file, message: `defines kind ${exported.kind}, but the file name says ${kind}: rename one of them` }], 'task_invalid');
    }
    return exported;
  }
  if (typeof exported === 'object' && exported !== null && typeof (exported as { handler?: unknown }).handler === 'function') {
    const { schema, ...rest } = exported as Record<string, unknown>;
    try {
      return defineJob({ ...rest, kind, schema: (schema as z.ZodType | undefined) ?? z.unknown() } as Parameters<typeof defineJob>[0]);
    } catch (error) {
      // A bad option (maxAttempts: 0) is the file's problem: name it.
      if (!(error instanceof ValidationError)) throw error;
      throw new ValidationError(error.issues.map((issue) => ({ path: `${file}: ${issue.path}`, message: issue.message })), 'task_invalid');
    }
  }
  throw new ValidationError(
    [{ path: file, message: 'the default export must be async (payload, ctx) => result, defineJob(...), or { schema, handler }' }],
    'task_invalid',
  );
}
