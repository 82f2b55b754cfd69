// Streams a file once: its SHA-256 and a gzip copy (default: <path>.gz),
// without loading it into memory. Aborts cleanly on cancel or timeout.
//
// Only inside SPOOL_FILES_DIR (./.spool/files): `path` and `output` are
// relative to it, and anything that leads out of it (`..`, an absolute path
// elsewhere, a symbolic link pointing out) is refused for good. Without
// that, whoever may enqueue could read and write any file the worker can.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, realpath, stat } from 'node:fs/promises';
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { z } from 'zod';

const permanent = (message) => Object.assign(new Error(message), { name: 'PermanentError' });

/** `p` resolved inside the root, following symbolic links as far as they exist; refused if it leads out. */
async function inside(root, p, field) {
  const target = resolve(root, p);
  // The deepest part of the path that exists, with its links resolved, must still be under the root.
  let existing = target;
  for (;;) {
    try {
      existing = await realpath(existing);
      break;
    } catch {
      const parent = dirname(existing);
      if (parent === existing) break;
      existing = parent;
    }
  }
  for (const candidate of [target, existing]) {
    const rel = relative(root, candidate);
    if (rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
      throw permanent(`${field}: ${JSON.stringify(p)} is outside the files folder (SPOOL_FILES_DIR); give a path inside it`);
    }
  }
  return target;
}

export default {
  schema: z.object({ path: z.string().min(1), output: z.string().min(1).optional() }),
  timeoutMs: 10 * 60_000,
  async handler({ path, output }, ctx) {
    const configured = resolve(process.env.SPOOL_FILES_DIR ?? '.spool/files');
    await mkdir(configured, { recursive: true });
    const root = await realpath(configured);
    const source = await inside(root, path, 'path');
    const gzipPath = await inside(root, output ?? `${path}.gz`, 'output');
    try {
      await stat(source);
    } catch (error) {
      // A missing file will not appear on retry: fail for good (a PermanentError by name).
      throw permanent(`cannot read ${path}: ${error.message}`);
    }
    const hash = createHash('sha256');
    let bytes = 0;
    const tap = new PassThrough();
    tap.on('data', (chunk) => {
      hash.update(chunk);
      bytes += chunk.length;
    });
    await pipeline(createReadStream(source), tap, createGzip(), createWriteStream(gzipPath), { signal: ctx.signal });
    const sha256 = hash.digest('hex');
    await ctx.progress({ bytes });
    return { sha256, bytes, gzipPath, gzipBytes: (await stat(gzipPath)).size };
  },
};
