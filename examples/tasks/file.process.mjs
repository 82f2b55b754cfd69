// Streams a file once: its SHA-256 and a gzip copy (default: <path>.gz),
// without loading it into memory. Aborts cleanly on cancel or timeout.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { z } from 'zod';

export default {
  schema: z.object({ path: z.string().min(1), output: z.string().min(1).optional() }),
  timeoutMs: 10 * 60_000,
  async handler({ path, output }, ctx) {
    const gzipPath = output ?? `${path}.gz`;
    try {
      await stat(path);
    } catch (error) {
      // A missing file will not appear on retry: fail for good (a PermanentError by name).
      throw Object.assign(new Error(`cannot read ${path}: ${error.message}`), { name: 'PermanentError' });
    }
    const hash = createHash('sha256');
    let bytes = 0;
    const tap = new PassThrough();
    tap.on('data', (chunk) => {
      hash.update(chunk);
      bytes += chunk.length;
    });
    await pipeline(createReadStream(path), tap, createGzip(), createWriteStream(gzipPath), { signal: ctx.signal });
    const sha256 = hash.digest('hex');
    await ctx.progress({ bytes });
    return { sha256, bytes, gzipPath, gzipBytes: (await stat(gzipPath)).size };
  },
};
