import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Worker } from '../../src/index.js';
import { createLogger } from '../../src/observability/logger.js';
import { loadTasks } from '../../src/worker/tasks.js';
import { useTestDatabase } from '../../test/support/database.js';
import { waitFor } from '../../test/support/factories.js';

const db = useTestDatabase();
let worker: Worker;
let folder: string;

beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'spool-examples-'));
  process.env.SPOOL_OUTBOX_DIR = join(folder, 'outbox');
  process.env.SPOOL_REPORTS_DIR = join(folder, 'reports');
  process.env.SPOOL_FILES_DIR = join(folder, 'files');
  await mkdir(join(folder, 'files'));
  delete process.env.SMTP_URL;
  const jobs = await loadTasks('examples/tasks');
  expect(jobs.map((j) => j.kind).sort()).toEqual(['email.send', 'file.process', 'report.generate']);
  worker = await db.spool.work({ jobs, logger: createLogger({ level: 'silent' }), handleSignals: false });
});

afterAll(async () => {
  await worker?.stop({ graceMs: 1_000 });
  await rm(folder, { recursive: true, force: true });
});

const finished = (id: string) =>
  waitFor(async () => {
    const job = await db.spool.getJob(id);
    return job && ['completed', 'dead'].includes(job.state) ? job : null;
  }, `job ${id} to finish`);

describe('example tasks', () => {
  it('email.send writes an .eml file to the outbox without SMTP_URL', async () => {
    const { id } = await db.spool.enqueue('email.send', { to: 'ann@example.com', subject: 'Welcome', text: 'Hello Ann' });
    const job = await finished(id);
    expect(job.state).toBe('completed');
    const result = job.result as { via: string; file: string };
    expect(result.via).toBe('outbox');
    const eml = await readFile(result.file, 'utf8');
    expect(eml).toMatch(/^To: ann@example\.com$/m);
    expect(eml).toMatch(/^Subject: Welcome$/m);
    expect(eml).toContain('Hello Ann');
  });

  it('email.send relays over SMTP only from the senders SPOOL_EMAIL_FROM allows; without the list it relays nothing', async () => {
    const saved = { smtp: process.env.SMTP_URL, from: process.env.SPOOL_EMAIL_FROM };
    // Nothing listens on this port: a job that gets as far as connecting fails and is retried, not dead.
    process.env.SMTP_URL = 'smtp://127.0.0.1:1';
    try {
      delete process.env.SPOOL_EMAIL_FROM;
      const open = await finished((await db.spool.enqueue('email.send', { to: 'ann@example.com', subject: 'x', from: 'boss@bank.example' })).id);
      expect(open.state).toBe('dead');
      expect(open.errors[0]!.message).toMatch(/SMTP relay is off: set SPOOL_EMAIL_FROM/);

      process.env.SPOOL_EMAIL_FROM = 'alerts@example.com, @ops.example.com';
      const spoofed = await finished((await db.spool.enqueue('email.send', { to: 'ann@example.com', subject: 'x', from: 'CEO <ceo@bank.example>' })).id);
      expect(spoofed.state).toBe('dead');
      expect(spoofed.errors[0]!.message).toMatch(/"ceo@bank\.example" is not an allowed sender/);

      for (const from of ['Alerts <alerts@example.com>', 'night@ops.example.com']) {
        const allowed = await finished((await db.spool.enqueue('email.send', { to: 'ann@example.com', subject: 'x', from }, { maxAttempts: 2 })).id);
        expect(allowed.errors[0]!.message, from).not.toMatch(/allowed sender|relay is off/);
        expect(allowed.errors[0]!.message, from).toMatch(/ECONNREFUSED|connect/i);
      }
    } finally {
      for (const [name, value] of [['SMTP_URL', saved.smtp], ['SPOOL_EMAIL_FROM', saved.from]] as const) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });

  it('email.send refuses a bad address for good (schema), naming the field', async () => {
    const [{ id }] = (await db.sql`SELECT spool.enqueue('email.send', '{"to":"nobody","subject":"x"}') AS id`) as unknown as [{ id: string }];
    const job = await finished(id);
    expect(job.state).toBe('dead');
    expect(job.errors[0]!.message).toMatch(/payload\.to/);
  });

  it('report.generate writes a CSV of jobs by queue and state', async () => {
    await db.spool.enqueueMany([
      { job: 'report.input', queue: 'r1' },
      { job: 'report.input', queue: 'r1' },
      { job: 'report.input', queue: 'r2', delayMs: 60_000 },
    ]);
    const { id } = await db.spool.enqueue('report.generate', { queues: ['r1', 'r2'] });
    const job = await finished(id);
    expect(job.state).toBe('completed');
    const csv = await readFile((job.result as { file: string }).file, 'utf8');
    const lines = csv.trim().split('\n').map((line) => line.split(',').slice(0, 3).join(','));
    expect(lines).toEqual(['queue,state,jobs', 'r1,available,2', 'r2,scheduled,1']);
  });

  it('file.process streams a file: SHA-256 and a gzip copy', async () => {
    const content = randomBytes(300_000);
    await writeFile(join(folder, 'files', 'input.bin'), content);
    const { id } = await db.spool.enqueue('file.process', { path: 'input.bin' });
    const job = await finished(id);
    expect(job.state).toBe('completed');
    const result = job.result as { sha256: string; bytes: number; gzipPath: string };
    expect(result.sha256).toBe(createHash('sha256').update(content).digest('hex'));
    expect(result.bytes).toBe(content.length);
    expect(gunzipSync(await readFile(result.gzipPath)).equals(content)).toBe(true);
    expect(job.progress).toEqual({ bytes: content.length });
  });

  it('file.process fails for good on a missing file', async () => {
    const { id } = await db.spool.enqueue('file.process', { path: 'missing.bin' });
    const job = await finished(id);
    expect(job).toMatchObject({ state: 'dead', attempt: 1 });
    expect(job.errors[0]!.message).toMatch(/PermanentError: cannot read/);
  });

  it('file.process refuses paths outside its folder (.., absolute, a link out) and writes nothing there', async () => {
    const secret = join(folder, 'secret.txt');
    await writeFile(secret, 'not yours');
    await symlink(folder, join(folder, 'files', 'escape'));
    const attempts = [
      { path: '../secret.txt' },
      { path: secret },
      { path: 'escape/secret.txt' },
      { path: 'input.bin', output: '../stolen.gz' },
      { path: 'input.bin', output: '/tmp/spool-stolen.gz' },
    ];
    await writeFile(join(folder, 'files', 'input.bin'), 'data');
    for (const payload of attempts) {
      const job = await finished((await db.spool.enqueue('file.process', payload)).id);
      expect(job, JSON.stringify(payload)).toMatchObject({ state: 'dead', attempt: 1 });
      expect(job.errors[0]!.message).toMatch(/is outside the files folder/);
    }
    await expect(readFile(join(folder, 'stolen.gz'))).rejects.toThrow();
    await expect(readFile('/tmp/spool-stolen.gz')).rejects.toThrow();
  });
});
