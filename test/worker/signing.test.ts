import { z } from 'zod';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createSpool, defineJob, ValidationError, type Spool, type Worker } from '../../src/index.js';
import { createLogger } from '../../src/observability/logger.js';
import { canonicalJson } from '../../src/signing.js';
import { useTestDatabase } from '../support/database.js';
import { waitFor } from '../support/factories.js';

const db = useTestDatabase();
const quiet = createLogger({ level: 'silent' });
const SECRET_1 = 'k1-secret-of-at-least-thirty-two-characters';
const SECRET_2 = 'k2-another-secret-of-thirty-two-or-more-chars';
const ran: string[] = [];

const transfer = (keyId: string) =>
  defineJob({
    kind: 'signed.transfer',
    schema: z.object({ to: z.string(), cents: z.number().int() }),
    signing: { keyId },
    maxAttempts: 5,
    handler: (payload, ctx) => {
      ran.push(ctx.job.id);
      return { sent: payload.cents };
    },
  });

let producer: Spool;
let worker: Worker | undefined;

beforeAll(() => {
  producer = createSpool({ connectionString: db.url, poolSize: 2, signingKeys: { k1: SECRET_1, k2: SECRET_2 } });
});
afterAll(async () => {
  await producer.close();
});
afterEach(async () => {
  await worker?.stop({ graceMs: 1_000 });
  worker = undefined;
});

async function startWorker(keys: Record<string, string>): Promise<void> {
  const spool = createSpool({ connectionString: db.url, poolSize: 2, signingKeys: keys });
  worker = await spool.work({ jobs: [transfer('k1')], logger: quiet, handleSignals: false, promoteIntervalMaxMs: 50 });
  const stop = worker.stop.bind(worker);
  worker.stop = async (options) => {
    await stop(options);
    await spool.close();
  };
}

async function finished(id: string) {
  return waitFor(async () => {
    const job = await db.spool.getJob(id);
    return job && ['completed', 'dead', 'available', 'scheduled'].includes(job.state) && job.attempt > 0 ? job : null;
  }, `job ${id} to finish an attempt`);
}

describe('signed payloads', () => {
  it('a job signed by its producer runs; the signature is kept with the job', async () => {
    await startWorker({ k1: SECRET_1 });
    const { id } = await producer.enqueue(transfer('k1'), { to: 'acct-1', cents: 500 });
    const job = await finished(id);
    expect(job.state).toBe('completed');
    expect(job.result).toEqual({ sent: 500 });
    expect(job.metadata.spool_signature).toMatch(/^v1:k1:[A-Za-z0-9_-]{43}$/);
    expect(ran).toContain(id);
  });

  it('a payload changed after the enqueue goes dead with signature_invalid; the handler never runs', async () => {
    // No worker runs yet: the change lands before any attempt.
    const { id } = await producer.enqueue(transfer('k1'), { to: 'acct-1', cents: 500 });
    await db.sql`UPDATE spool.jobs SET payload = jsonb_set(payload, '{to}', '"attacker"') WHERE id = ${id}`;
    await startWorker({ k1: SECRET_1 });
    const job = await finished(id);
    expect(job.state).toBe('dead');
    expect(job.attempt).toBe(1);
    expect(job.errors.at(-1)).toMatchObject({ code: 'signature_invalid', message: expect.stringMatching(/does not match/) });
    expect(ran).not.toContain(id);
  });

  it('a job with no signature (enqueued from SQL, or by a producer without the key) goes dead at once', async () => {
    await startWorker({ k1: SECRET_1 });
    const [{ id }] = (await db.sql`SELECT spool.enqueue('signed.transfer', '{"to":"acct-9","cents":1}')::text AS id`) as unknown as [{ id: string }];
    const job = await finished(id);
    expect(job.state).toBe('dead');
    expect(job.errors.at(-1)).toMatchObject({ code: 'signature_invalid', message: expect.stringMatching(/has none/) });
    expect(ran).not.toContain(id);
  });

  it('a signature made with another secret, or copied onto another tenant\'s job, is refused', async () => {
    const forger = createSpool({ connectionString: db.url, poolSize: 1, signingKeys: { k1: 'not-the-real-secret-but-long-enough-to-pass' } });
    const forged = (await forger.enqueue(transfer('k1'), { to: 'acct-2', cents: 10 })).id;
    await forger.close();
    const moved = (await producer.enqueue(transfer('k1'), { to: 'acct-3', cents: 10 }, { tenant: 'tenant-a' })).id;
    await db.sql`UPDATE spool.jobs SET tenant = 'tenant-b' WHERE id = ${moved}`;
    await startWorker({ k1: SECRET_1 });
    for (const id of [forged, moved]) {
      const job = await finished(id);
      expect(job.state, id).toBe('dead');
      expect(job.errors.at(-1)?.code, id).toBe('signature_invalid');
      expect(ran).not.toContain(id);
    }
  });

  it('rotation: workers that hold both keys run jobs signed with the old and the new one', async () => {
    await startWorker({ k1: SECRET_1, k2: SECRET_2 });
    const old = (await producer.enqueue(transfer('k1'), { to: 'acct-4', cents: 1 })).id;
    const fresh = (await producer.enqueue(transfer('k2'), { to: 'acct-4', cents: 2 })).id;
    expect((await finished(old)).state).toBe('completed');
    expect((await finished(fresh)).state).toBe('completed');
  });

  it('a producer without the kind\'s key cannot enqueue it, and is told which key is missing', async () => {
    const keyless = createSpool({ connectionString: db.url, poolSize: 1 });
    const error = await keyless.enqueue(transfer('k1'), { to: 'acct-5', cents: 1 }).catch((e: unknown) => e);
    await keyless.close();
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).issues[0]).toMatchObject({ path: 'signing.keyId', message: expect.stringMatching(/"k1"/) });
  });

  it('signs what PostgreSQL gives back: key order and spacing do not matter', () => {
    expect(canonicalJson({ b: 1, a: [{ d: null, c: 'x' }] })).toBe(canonicalJson(JSON.parse('{ "a": [ {"c":"x", "d": null} ], "b": 1 }')));
  });
});
