import postgres from 'postgres';
import { Kysely } from 'kysely';
import { PostgresJSDialect } from 'kysely-postgres-js';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { createSpool, ValidationError, type EnqueueResult } from '../../src/index.js';
import { useTestDatabase } from '../support/database.js';
import { sendEmail } from '../support/factories.js';

const db = useTestDatabase();

async function countJobs(where = 'true'): Promise<number> {
  const [row] = await db.sql.unsafe(`SELECT count(*)::int AS n FROM spool.all_jobs WHERE ${where}`);
  return row!.n as number;
}

describe('enqueue', () => {
  it('stores a typed job with its definition defaults and the original payload', async () => {
    const { id, duplicate } = await db.spool.enqueue(sendEmail, { to: 'ann@example.com' });
    expect(duplicate).toBe(false);
    const job = await db.spool.getJob(id);
    expect(job).toMatchObject({
      id,
      kind: 'email.send',
      queue: 'mail',
      priority: 5,
      maxAttempts: 3,
      state: 'available',
      attempt: 0,
      payload: { to: 'ann@example.com' },
      tags: [],
      metadata: {},
      errors: [],
    });
  });

  it('lets options override the definition and stores tags and metadata', async () => {
    const { id } = await db.spool.enqueue(
      sendEmail,
      { to: 'ann@example.com' },
      { queue: 'urgent', priority: -3, maxAttempts: 9, tags: ['signup', 'eu'], metadata: { requestId: 'r1' } },
    );
    expect(await db.spool.getJob(id)).toMatchObject({
      queue: 'urgent',
      priority: -3,
      maxAttempts: 9,
      tags: ['signup', 'eu'],
      metadata: { requestId: 'r1' },
    });
  });

  it('places a job by run_at against database time: future → scheduled, past → available', async () => {
    const future = await db.spool.enqueue('later', {}, { runAt: new Date(Date.now() + 3_600_000) });
    const past = await db.spool.enqueue('now', {}, { runAt: '2001-01-01T00:00:00Z' });
    expect((await db.spool.getJob(future.id))?.state).toBe('scheduled');
    expect((await db.spool.getJob(past.id))?.state).toBe('available');
  });

  it('computes delayMs from the database clock', async () => {
    const { id } = await db.spool.enqueue('delayed', {}, { delayMs: 90_000 });
    const [row] = await db.sql`
      SELECT state, extract(epoch FROM run_at - created_at) * 1000 AS delay FROM spool.all_jobs WHERE id = ${id}`;
    expect(row!.state).toBe('scheduled');
    // created_at and run_at come from the same transaction's now().
    expect(Number(row!.delay)).toBe(90_000);
  });

  it('type-checks the payload of a defined job at compile time', () => {
    // These lines are checked by `npm run typecheck`; at run time they are not called.
    const compileOnly = () => {
      // @ts-expect-error: `to` must be a string
      void db.spool.enqueue(sendEmail, { to: 42 });
      // @ts-expect-error: `to` is required
      void db.spool.enqueue(sendEmail, { subject: 'x' });
      void db.spool.enqueue(sendEmail, { to: 'ok@example.com' });
      void db.spool.enqueue('any.kind', { anything: [1, 2] });
      // A batch may mix kinds; each payload is checked against its own definition.
      void db.spool.enqueueMany([{ job: 'plain' }, { job: sendEmail, payload: { to: 'ok@example.com' } }]);
      // @ts-expect-error: the second item's payload does not match sendEmail's schema
      void db.spool.enqueueMany([{ job: 'plain' }, { job: sendEmail, payload: { to: 1 } }]);
      const many = ['a', 'b'].map((to) => ({ job: sendEmail, payload: { to } }));
      void db.spool.enqueueMany(many);
      const wrong = ['a', 'b'].map((to) => ({ job: sendEmail, payload: { recipient: to } }));
      // @ts-expect-error: mapped payloads without `to`
      void db.spool.enqueueMany(wrong);
    };
    expect(typeof compileOnly).toBe('function');
    expectTypeOf(db.spool.enqueue).returns.resolves.toEqualTypeOf<EnqueueResult>();
  });
});

describe('enqueue inside the caller\'s transaction', () => {
  it('postgres.js: rolled back → never existed; committed → visible at once', async () => {
    let rolledBackId = '';
    await db.sql
      .begin(async (tx) => {
        rolledBackId = (await db.spool.enqueue('tx.rollback', { n: 1 }, { tx })).id;
        // Visible inside the transaction...
        expect((await db.spool.getJob(rolledBackId, { tx }))?.state).toBe('available');
        throw new Error('roll back');
      })
      .catch(() => {});
    expect(await db.spool.getJob(rolledBackId)).toBeNull();

    const committed = await db.sql.begin((tx) => db.spool.enqueue('tx.commit', { n: 2 }, { tx }));
    expect((await db.spool.getJob(committed.id))?.kind).toBe('tx.commit');
  });

  it('Kysely: rolled back → never existed; committed → visible at once', async () => {
    const pool = postgres(db.url, { max: 2, onnotice: () => {} });
    const kysely = new Kysely<any>({ dialect: new PostgresJSDialect({ postgres: pool }) });
    try {
      let rolledBackId = '';
      await kysely
        .transaction()
        .execute(async (trx) => {
          rolledBackId = (await db.spool.enqueue('kysely.rollback', {}, { tx: trx })).id;
          await db.spool.enqueueMany([{ job: 'kysely.rollback' }, { job: 'kysely.rollback' }], { tx: trx });
          throw new Error('roll back');
        })
        .catch(() => {});
      expect(await db.spool.getJob(rolledBackId)).toBeNull();
      expect(await countJobs(`kind = 'kysely.rollback'`)).toBe(0);

      const committed = await kysely.transaction().execute((trx) => db.spool.enqueue('kysely.commit', {}, { tx: trx }));
      expect((await db.spool.getJob(committed.id))?.kind).toBe('kysely.commit');
    } finally {
      await kysely.destroy();
    }
  });

  it('rejects a tx that is neither, naming the option', async () => {
    const error = await db.spool.enqueue('x', {}, { tx: {} as never }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).field).toBe('tx');
  });
});

describe('enqueueMany', () => {
  it('inserts 10,000 jobs in one statement, in order, all there', async () => {
    const statements: string[] = [];
    const counted = postgres(db.url, { max: 1, onnotice: () => {}, debug: (_c, query) => statements.push(query) });
    const spool = createSpool({ sql: counted });
    try {
      const items = Array.from({ length: 10_000 }, (_, i) => ({ job: sendEmail, payload: { to: `u${i}@example.com` } }));
      await counted`SELECT 1`; // connect first: postgres.js fetches array types on connect
      statements.length = 0;
      const results = await spool.enqueueMany(items);
      expect(statements).toHaveLength(1);
      expect(results).toHaveLength(10_000);
      expect(results.every((r) => !r.duplicate)).toBe(true);
      const rows = await db.sql`
        SELECT id::text, payload->>'to' AS recipient FROM spool.all_jobs
         WHERE id = ANY(${results.map((r) => r.id)}::bigint[])`;
      expect(rows).toHaveLength(10_000);
      const byId = new Map(rows.map((r) => [r.id as string, r.recipient as string]));
      results.forEach((r, i) => expect(byId.get(r.id)).toBe(`u${i}@example.com`));
    } finally {
      await counted.end();
    }
  });

  it('maps results to input order when unique keys skip rows, inside the batch too', async () => {
    await db.spool.enqueue('dedupe', {}, { uniqueKey: 'held' });
    const results = await db.spool.enqueueMany([
      { job: 'dedupe', payload: { i: 0 } },
      { job: 'dedupe', payload: { i: 1 }, uniqueKey: 'held' },
      { job: 'dedupe', payload: { i: 2 }, uniqueKey: 'fresh' },
      { job: 'dedupe', payload: { i: 3 }, uniqueKey: 'fresh' },
      { job: 'dedupe', payload: { i: 4 }, uniqueKey: 'fresh', queue: 'other' },
      { job: 'dedupe', payload: { i: 5 } },
    ]);
    expect(results.map((r) => r.duplicate)).toEqual([false, true, false, true, false, false]);
    expect(results[3]!.id).toBe(results[2]!.id);
    const payloads = await Promise.all(results.map(async (r) => (await db.spool.getJob(r.id))?.payload));
    expect(payloads.map((p) => (p as { i?: number }).i)).toEqual([0, undefined, 2, 2, 4, 5]);
  });

  it('returns [] for an empty batch without a round trip', async () => {
    expect(await db.spool.enqueueMany([])).toEqual([]);
  });
});

describe('unique jobs', () => {
  it('20 concurrent enqueues with one key produce exactly one job', async () => {
    const spools = Array.from({ length: 4 }, () => createSpool({ connectionString: db.url, poolSize: 5 }));
    try {
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => spools[i % 4]!.enqueue('unique.race', { i }, { uniqueKey: 'race-1' })),
      );
      expect(await countJobs(`unique_key = 'race-1'`)).toBe(1);
      expect(new Set(results.map((r) => r.id)).size).toBe(1);
      expect(results.filter((r) => !r.duplicate)).toHaveLength(1);
    } finally {
      await Promise.all(spools.map((s) => s.close()));
    }
  });

  it('frees the key when the holder finishes, and keys are per queue', async () => {
    const first = await db.spool.enqueue('unique.cycle', {}, { uniqueKey: 'k' });
    const otherQueue = await db.spool.enqueue('unique.cycle', {}, { uniqueKey: 'k', queue: 'q2' });
    expect(otherQueue.duplicate).toBe(false);
    await db.sql`UPDATE spool.jobs SET state = 'completed', finished_at = now() WHERE id = ${first.id}`;
    const second = await db.spool.enqueue('unique.cycle', {}, { uniqueKey: 'k' });
    expect(second.duplicate).toBe(false);
    expect(second.id).not.toBe(first.id);
  });

  it('also holds the key while the holder is scheduled', async () => {
    const first = await db.spool.enqueue('unique.sched', {}, { uniqueKey: 's', delayMs: 60_000 });
    const second = await db.spool.enqueue('unique.sched', {}, { uniqueKey: 's' });
    expect(second).toEqual({ id: first.id, duplicate: true, queue: 'default' });
  });
});

describe('wake-ups', () => {
  it('sends one NOTIFY per enqueue statement, naming the queues with available jobs', async () => {
    const received: string[] = [];
    const listener = postgres(db.url, { max: 1, onnotice: () => {} });
    try {
      await listener.listen('spool_jobs', (payload) => received.push(payload));
      // Notifications arrive in commit order: once the sentinel is in, all before it are.
      const drain = async () => {
        const marker = `sentinel-${Math.random()}`;
        await db.sql`SELECT pg_notify('spool_jobs', ${marker})`;
        const deadline = Date.now() + 10_000;
        while (!received.includes(marker)) {
          if (Date.now() > deadline) throw new Error('sentinel notification never arrived');
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        const got = received.splice(0).filter((p) => p !== marker);
        return got.map((p) => JSON.parse(p));
      };
      await drain();

      await db.spool.enqueueMany(Array.from({ length: 1000 }, (_, i) => ({ job: 'n', queue: i % 2 ? 'a' : 'b' })));
      expect(await drain()).toEqual([{ queues: ['a', 'b'], scheduled: false }]);

      await db.spool.enqueue('n', {}, { delayMs: 60_000 });
      expect(await drain()).toEqual([{ queues: null, scheduled: true }]);

      await db.sql`SELECT spool.enqueue('n', queue => 'c') FROM generate_series(1, 100)`;
      expect(await drain()).toEqual([{ queues: ['c'], scheduled: false }]);
    } finally {
      await listener.end();
    }
  });
});
