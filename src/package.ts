import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

/**
 * The folder of spool-queue's own package.json (what ships: sql/, examples/),
 * found by walking up from this module, which sits at src/ (tsx) or
 * dist/src/ (compiled, installed or not).
 */
export function packageRoot(): string {
  if (root) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'spool-queue') return (root = dir);
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot find the package.json of spool-queue above its code');
    dir = parent;
  }
}

/** spool-queue's version, from its package.json. */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}
