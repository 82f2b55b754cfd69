import { readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { ValidationError } from '../errors.js';
import { defineJob, isJobDefinition, type AnyJobDefinition } from '../job.js';

// `<kind>.js` / `.mjs` / `.cjs`, and `.ts` / `.mts` when Spool itself runs from TypeScript (tsx).
const TASK_FILE = /^([A-Za-z0-9_][A-Za-z0-9_.:-]*)\.(m?js|cjs|m?ts)$/;
const runningTypeScript = import.meta.url.endsWith('.ts');

/**
 * Loads a task folder: every `<kind>.js` (dots allowed: `email.send.js`) is
 * the handler of kind `<kind>`. Its default export is either
 * `async (payload, ctx) => result`, a `defineJob(...)` value, or a plain
 * `{ schema?, handler, queue?, maxAttempts?, timeoutMs?, backoff?, ... }`
 * object. Test files (`*.test.*`) and declaration files are skipped.
 */
export async function loadTasks(dir: string): Promise<AnyJobDefinition[]> {
  const folder = resolve(dir);
  let names: string[];
  try {
    names = await readdir(folder);
  } catch (error) {
    throw new ValidationError([{ path: 'tasks', message: `cannot read the task folder ${folder}: ${(error as Error).message}` }]);
  }
  const definitions: AnyJobDefinition[] = [];
  for (const name of names.sort()) {
    const match = TASK_FILE.exec(name);
    if (!match || /\.(test|spec|d)\.[cm]?[jt]s$/.test(name)) continue;
    const [, kind, extension] = match;
    if (extension!.endsWith('ts') && !runningTypeScript) continue;
    const module = (await import(pathToFileURL(join(folder, name)).href)) as { default?: unknown };
    definitions.push(toDefinition(kind!, module.default, name));
  }
  if (definitions.length === 0) {
    throw new ValidationError([{ path: 'tasks', message: `no task files (<kind>.js or .mjs) in ${folder}` }]);
  }
  return definitions;
}

function toDefinition(kind: string, exported: unknown, file: string): AnyJobDefinition {
  if (typeof exported === 'function') {
    return defineJob({ kind, schema: z.unknown(), handler: exported as AnyJobDefinition['handler'] });
  }
  if (isJobDefinition(exported)) {
    if (exported.kind !== kind) {
      throw new ValidationError([{ path: file, message: `defines kind ${exported.kind}, but the file name says ${kind}: rename one of them` }]);
    }
    return exported;
  }
  if (typeof exported === 'object' && exported !== null && typeof (exported as { handler?: unknown }).handler === 'function') {
    const { schema, ...rest } = exported as Record<string, unknown>;
    return defineJob({ ...rest, kind, schema: (schema as z.ZodType | undefined) ?? z.unknown() } as Parameters<typeof defineJob>[0]);
  }
  throw new ValidationError([
    { path: file, message: 'the default export must be async (payload, ctx) => result, defineJob(...), or { schema, handler }' },
  ]);
}
