import { execFileSync, spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../support/database.js';

const db = useTestDatabase();
let folder: string;
let clone: string;

/**
 * The environment of a user's shell: none of the npm_* variables and
 * node_modules/.bin PATH entries that `npm test` gives this process, which
 * would let npx find this repository's tools instead of the clone's.
 */
const shell: NodeJS.ProcessEnv = {
  ...Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('npm_'))),
  PATH: (process.env.PATH ?? '').split(':').filter((dir) => !dir.includes('node_modules')).join(':'),
};

/** npm, offline where its cache allows (CI installed the same packages a moment ago). */
function npm(args: string[], cwd: string): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync('npm', [...args, '--prefer-offline', '--no-audit', '--no-fund'], { cwd, env: shell, encoding: 'utf8', timeout: 240_000 });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'spool-install-'));
  // A clean checkout of the working tree: what git tracks (or would), without node_modules or dist.
  clone = join(folder, 'clone');
  const files = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], { encoding: 'utf8' }).split('\0').filter(Boolean);
  for (const file of files) {
    await mkdir(dirname(join(clone, file)), { recursive: true });
    await copyFile(resolve(file), join(clone, file)).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error; // deleted in the working tree, not yet in git
    });
  }
}, 60_000);
afterAll(async () => {
  await rm(folder, { recursive: true, force: true });
});

describe('install paths', () => {
  it('in a clean clone, npm install builds the CLI (prepare): npx spool --help and --version work at once', () => {
    const install = npm(['install'], clone);
    expect(install.status, install.stderr).toBe(0);
    // npx runs the package's own bin through the shell, so the built file must be executable.
    expect(statSync(join(clone, 'dist/src/cli/main.js')).mode & 0o111).toBe(0o111);
    const help = spawnSync('npx', ['spool', '--help'], { cwd: clone, env: shell, encoding: 'utf8' });
    expect(help.status, help.stderr).toBe(0);
    expect(help.stdout).toContain('Usage: spool');
    const version = spawnSync('npx', ['spool', '--version'], { cwd: clone, env: shell, encoding: 'utf8' });
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  }, 300_000);

  it('the packed package installs into an empty app, which imports it and runs a job; its spool CLI runs too', async () => {
    const packed = npm(['pack', '--pack-destination', folder], clone);
    expect(packed.status, packed.stderr).toBe(0);
    const tarball = (await readdir(folder)).find((name) => name.endsWith('.tgz'))!;
    const app = join(folder, 'app');
    await mkdir(app);
    await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'an-app', private: true, type: 'module' }));
    const install = npm(['install', join(folder, tarball), 'zod@^4'], app);
    expect(install.status, install.stderr).toBe(0);
    await writeFile(
      join(app, 'main.js'),
      `import { z } from 'zod';
import { createSpool, defineJob } from 'spool-queue';
const double = defineJob({ kind: 'app.double', schema: z.object({ n: z.number() }), handler: async ({ n }) => n * 2 });
const spool = createSpool({ connectionString: process.env.DATABASE_URL });
await spool.migrate();
const worker = await spool.work({ jobs: [double], handleSignals: false, pollIntervalMs: 50 });
const { id } = await spool.enqueue(double, { n: 21 });
let job;
for (let i = 0; i < 200 && job?.state !== 'completed'; i++) {
  await new Promise((r) => setTimeout(r, 50));
  job = await spool.getJob(id);
}
await worker.stop();
await spool.close();
console.log(JSON.stringify({ state: job.state, result: job.result }));
`,
    );
    const run = spawnSync(process.execPath, ['main.js'], { cwd: app, encoding: 'utf8', env: { ...process.env, DATABASE_URL: db.url, SPOOL_LOG_LEVEL: 'warn' }, timeout: 60_000 });
    expect(run.status, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout.trim().split('\n').at(-1)!)).toEqual({ state: 'completed', result: 42 });
    const cli = spawnSync('npx', ['spool', 'kinds', '--json'], { cwd: app, encoding: 'utf8', env: { ...shell, DATABASE_URL: db.url } });
    expect(cli.status, cli.stderr).toBe(0);
    expect(JSON.parse(cli.stdout).kinds.map((k: { kind: string }) => k.kind)).toContain('app.double');
  }, 300_000);
});
