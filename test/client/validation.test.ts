import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createSpool, defineJob, ValidationError } from '../../src/index.js';
import { useTestDatabase } from '../support/database.js';
import { sendEmail } from '../support/factories.js';

const db = useTestDatabase();

/** Runs `action`, expects a ValidationError, returns its issues' paths and messages. */
async function issues(action: () => Promise<unknown> | unknown) {
  let error: unknown;
  try {
    await action();
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(ValidationError);
  expect((error as ValidationError).code).toBe('invalid_input');
  return (error as ValidationError).issues;
}

async function jobCount(): Promise<number> {
  const [row] = await db.sql`SELECT count(*)::int AS n FROM spool.all_jobs`;
  return row!.n as number;
}

describe('invalid enqueue input names the field and the rule, and stores nothing', () => {
  const cases: Array<[string, () => Promise<unknown>, string, RegExp]> = [
    ['empty kind', () => db.spool.enqueue('', {}), 'kind', /must not be empty/],
    ['kind with spaces', () => db.spool.enqueue('send email', {}), 'kind', /use only letters, digits/],
    ['kind not a string', () => db.spool.enqueue(42 as unknown as string, {}), 'kind', /expected a string/],
    ['payload against the schema', () => db.spool.enqueue(sendEmail, { to: 'not-an-email' }), 'payload.to', /email/i],
    ['missing payload of a defined job', () => db.spool.enqueue(sendEmail, undefined as never), 'payload', /expected object/],
    ['empty queue', () => db.spool.enqueue('k', {}, { queue: '' }), 'queue', /must not be empty/],
    ['queue with a space', () => db.spool.enqueue('k', {}, { queue: 'a b' }), 'queue', /use only/],
    ['fractional priority', () => db.spool.enqueue('k', {}, { priority: 1.5 }), 'priority', /whole number/],
    ['priority out of range', () => db.spool.enqueue('k', {}, { priority: 40_000 }), 'priority', /at most 32767/],
    ['maxAttempts 0', () => db.spool.enqueue('k', {}, { maxAttempts: 0 }), 'maxAttempts', /at least 1/],
    ['negative maxAttempts', () => db.spool.enqueue('k', {}, { maxAttempts: -1 }), 'maxAttempts', /at least 1/],
    ['negative delayMs', () => db.spool.enqueue('k', {}, { delayMs: -5 }), 'delayMs', /must be >= 0/],
    ['runAt and delayMs', () => db.spool.enqueue('k', {}, { delayMs: 5, runAt: new Date() }), 'delayMs', /either runAt or delayMs/],
    ['runAt not a date', () => db.spool.enqueue('k', {}, { runAt: 'tomorrow' }), 'runAt', /ISO 8601/],
    ['invalid Date', () => db.spool.enqueue('k', {}, { runAt: new Date('nope') }), 'runAt', /ISO 8601|Date/],
    ['empty uniqueKey', () => db.spool.enqueue('k', {}, { uniqueKey: '' }), 'uniqueKey', /must not be empty/],
    ['tags not strings', () => db.spool.enqueue('k', {}, { tags: [1] as never }), 'tags.0', /must be a string/],
    ['too many tags', () => db.spool.enqueue('k', {}, { tags: Array.from({ length: 65 }, (_, i) => `t${i}`) }), 'tags', /at most 64/],
    ['metadata not an object', () => db.spool.enqueue('k', {}, { metadata: [] as never }), 'metadata', /plain object/],
    ['unknown option (typo)', () => db.spool.enqueue('k', {}, { dealyMs: 5 } as never), 'dealyMs', /unknown key/],
    ['payload with a BigInt', () => db.spool.enqueue('k', { n: 1n }), 'payload', /not JSON-serialisable/],
    ['payload with a NUL character', () => db.spool.enqueue('k', { s: 'a\u0000b' }), 'payload.s', /NUL/],
    ['payload with a lone surrogate', () => db.spool.enqueue('k', { s: ['\ud800'] }), 'payload.s.0', /lone surrogate/],
    ['payload nested 64 deep', () => db.spool.enqueue('k', JSON.parse('['.repeat(65) + ']'.repeat(65))), 'payload.0.0.0.0.0.0.0.0', /deeper than 64/],
    ['payload over 1 MiB', () => db.spool.enqueue('k', { blob: 'x'.repeat(1024 * 1024) }), 'payload', /over the 1048576/],
    ['runAt as a Date in year 10000', () => db.spool.enqueue('k', {}, { runAt: new Date(Date.UTC(10000, 0, 1)) }), 'runAt', /0001 to 9999/],
    ['uniqueKey with a NUL character', () => db.spool.enqueue('k', {}, { uniqueKey: 'a\u0000' }), 'uniqueKey', /NUL/],
    ['job id that is not an id', () => db.spool.getJob('12abc'), 'id', /positive integer job id/],
  ];

  for (const [name, action, field, rule] of cases) {
    it(name, async () => {
      const before = await jobCount();
      const found = await issues(action);
      expect(found[0]).toMatchObject({ path: field });
      expect(found[0]!.message).toMatch(rule);
      expect(await jobCount()).toBe(before);
    });
  }

  it('reports every bad field at once', async () => {
    const found = await issues(() => db.spool.enqueue(sendEmail, { to: 5 } as never, { priority: 0.5, queue: '' }));
    expect(found.map((i) => i.path).sort()).toEqual(['payload.to', 'priority', 'queue']);
  });

  it('names the index of a bad item in enqueueMany and inserts none of the batch', async () => {
    const before = await jobCount();
    const found = await issues(() =>
      db.spool.enqueueMany([{ job: 'ok' }, { job: 'ok' }, { job: sendEmail, payload: { to: 'x' } }]),
    );
    expect(found[0]!.path).toBe('items.2.payload.to');
    expect(await jobCount()).toBe(before);
  });

  it('names a bad client option', async () => {
    expect((await issues(() => createSpool({ connectionString: 'postgres://x@127.0.0.1/db', poolSize: 0 })))[0]).toMatchObject({
      path: 'poolSize',
    });
    const saved = process.env.DATABASE_URL;
    delete process.env.DATABASE_URL;
    try {
      expect((await issues(() => createSpool({})))[0]!.path).toBe('connectionString');
    } finally {
      if (saved !== undefined) process.env.DATABASE_URL = saved;
    }
  });
});

describe('defineJob', () => {
  it('refuses a bad definition naming the field', async () => {
    expect((await issues(() => defineJob({ kind: '', schema: z.object({}) })))[0]!.path).toBe('kind');
    expect((await issues(() => defineJob({ kind: 'k', schema: {} as never })))[0]!.path).toBe('schema');
    // A zod 3 schema parses too, but has no _zod: named, with the fix.
    const zod3Like = { safeParse: () => ({ success: true }), parse: (v: unknown) => v, _def: { typeName: 'ZodObject' } };
    expect((await issues(() => defineJob({ kind: 'k', schema: zod3Like as never })))[0]).toEqual({
      path: 'schema',
      message: expect.stringMatching(/zod 3 schema; Spool needs zod 4: npm install zod@\^4/),
    });
    expect((await issues(() => defineJob({ kind: 'k', schema: z.object({}), maxAttempts: 0 })))[0]!.path).toBe('maxAttempts');
    expect((await issues(() => defineJob({ kind: 'k', schema: z.object({}), queue: 'a b' })))[0]!.path).toBe('queue');
    expect((await issues(() => defineJob({ kind: 'k', schema: z.object({}), handler: 5 as never })))[0]!.path).toBe('handler');
  });

  it('keeps the payload as given (schema defaults are applied by the handler side)', async () => {
    const { id } = await db.spool.enqueue(sendEmail, { to: 'ann@example.com' });
    expect((await db.spool.getJob(id))?.payload).toEqual({ to: 'ann@example.com' });
  });
});
