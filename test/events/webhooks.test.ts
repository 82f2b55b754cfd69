import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { z } from 'zod';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createApp, defineJob, verifyWebhook, webhookDeliveryJob, WebhookVerificationError, type Worker } from '../../src/index.js';
import { isPrivateAddress } from '../../src/webhooks/target.js';
import { signatureHeader } from '../../src/webhooks/signature.js';
import { createLogger } from '../../src/observability/logger.js';
import { useTestDatabase } from '../support/database.js';
import { waitFor } from '../support/factories.js';

const db = useTestDatabase();
const quiet = createLogger({ level: 'silent' });

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A real HTTP receiver on loopback: records every request; `failFirst` answers 500 that many times first. */
let receiver: Server;
let base: string;
const all: Received[] = [];
/** What reached one path: each test has its own, so a late retry of another test's delivery does not count here. */
const at = (path: string) => all.filter((r) => r.path === path);
let failFirst = 0;
let answered = 0;
let failingPath = '';

const work = defineJob({
  kind: 'hooks.work',
  schema: z.object({ n: z.number(), fail: z.boolean().optional() }),
  maxAttempts: 1,
  handler: ({ n, fail }) => {
    if (fail) throw new Error(`job ${n} fails`);
    return { n };
  },
});

let worker: Worker | undefined;

beforeAll(async () => {
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      all.push({ path: req.url!, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      const failing = req.url === failingPath && answered++ < failFirst;
      res.writeHead(failing ? 500 : 204).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(receiver.address() as { port: number }).port}`;
  worker = await db.spool.work({
    jobs: [work, webhookDeliveryJob(db.spool, { backoff: { baseMs: 50, maxMs: 100, jitter: 0 }, maxAttempts: 6 })],
    concurrency: 10,
    logger: quiet,
    handleSignals: false,
    pollIntervalMs: 50,
  });
  await waitFor(() => worker!.isLeader, 'leadership (the dispatcher runs on the leader)');
});
afterEach(() => {
  failFirst = 0;
  answered = 0;
});
afterAll(async () => {
  await worker?.stop({ graceMs: 2_000 });
  await new Promise((resolve) => receiver.close(resolve));
});

const deliveriesOf = (webhook: string) => db.sql`SELECT state::text, attempt, errors FROM spool.all_jobs WHERE kind = 'spool.webhook' AND group_key = ${webhook} ORDER BY id`;

describe('webhooks', () => {
  it('delivers each matching event once, signed; verifyWebhook accepts it and refuses a tampered body and an old timestamp', async () => {
    const { webhook, secret } = await db.spool.webhooks.create({ url: `${base}/one`, events: ['completed', 'dead'], kind: 'hooks.work', allowPrivate: true });
    const done = await db.spool.enqueue(work, { n: 1 });
    const failed = await db.spool.enqueue(work, { n: 2, fail: true });
    await db.spool.enqueue('hooks.other', {});
    await waitFor(() => at('/one').length >= 2, 'two deliveries');
    await new Promise((resolve) => setTimeout(resolve, 800));
    expect(at('/one')).toHaveLength(2);
    const events = at('/one').map((r) => verifyWebhook<{ id: string; type: string; job: { id: string }; result?: unknown; error?: { message: string } }>(secret, r.headers, r.body));
    const byJob = Object.fromEntries(events.map((e) => [e.job.id, e]));
    expect(byJob[done.id]).toMatchObject({ type: 'completed', result: { n: 1 } });
    expect(byJob[failed.id]).toMatchObject({ type: 'dead', error: { message: expect.stringContaining('job 2 fails') } });
    for (const r of at('/one')) {
      expect(r.headers['spool-webhook-id']).toBe(webhook.id);
      expect(r.headers['spool-event-id']).toBe(JSON.parse(r.body).id);
      expect(r.headers['spool-signature']).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    }
    const one = at('/one')[0]!;
    expect(() => verifyWebhook(secret, one.headers, one.body.replace('"type"', '"typo"'))).toThrow(WebhookVerificationError);
    expect(() => verifyWebhook('whsec_wrong', one.headers, one.body)).toThrow(/does not match/);
    const old = Math.floor(Date.now() / 1000) - 3600;
    expect(() => verifyWebhook(secret, { 'spool-signature': signatureHeader([secret], one.body, old) }, one.body)).toThrow(/old/);
    expect(() => verifyWebhook(secret, {}, one.body)).toThrow(/no Spool-Signature/);
    await db.spool.webhooks.remove(webhook.id);
  });

  it('a receiver that fails 3 times then succeeds gets the delivery on the 4th try; a dead delivery is replayed', async () => {
    const { webhook, secret } = await db.spool.webhooks.create({ url: `${base}/flaky`, events: ['completed'], kind: 'hooks.work', allowPrivate: true });
    failingPath = '/flaky';
    failFirst = 3;
    await db.spool.enqueue(work, { n: 3 });
    await waitFor(async () => (await deliveriesOf(webhook.id))[0]?.state === 'completed', 'the delivery to complete');
    expect(at('/flaky').map((r) => r.headers['spool-delivery-attempt'])).toEqual(['1', '2', '3', '4']);
    expect(new Set(at('/flaky').map((r) => r.body)).size, 'the same body each time').toBe(1);
    expect(() => verifyWebhook(secret, at('/flaky')[3]!.headers, at('/flaky')[3]!.body)).not.toThrow();

    // Its dead-letter queue: a receiver that never answers 2xx; then replay once it does.
    
    answered = 0;
    failFirst = 1_000;
    await db.spool.enqueue(work, { n: 4 });
    await waitFor(async () => (await deliveriesOf(webhook.id)).some((d) => d.state === 'dead'), 'a dead delivery', 15_000);
    failFirst = 0;
    answered = 0;
    const app = createApp({ spool: db.spool, logger: quiet, auth: 'off' });
    const replay = await app.request(`/webhooks/${webhook.id}/replay`, { method: 'POST' });
    expect(replay.status).toBe(200);
    await waitFor(async () => (await deliveriesOf(webhook.id)).every((d) => d.state === 'completed'), 'the replayed delivery');
    await db.spool.webhooks.remove(webhook.id);
  });

  it('an enqueue that rolls back produces no webhook', async () => {
    const { webhook } = await db.spool.webhooks.create({ url: `${base}/rollback`, events: ['enqueued'], kind: 'hooks.rollback', allowPrivate: true });
    await db.sql.begin(async (tx) => {
      await db.spool.enqueue('hooks.rollback', { n: 1 }, { tx });
      throw new Error('roll back');
    }).catch(() => {});
    await db.spool.enqueue('hooks.rollback', { n: 2 });
    await waitFor(() => at('/rollback').length >= 1, 'the committed enqueue\'s delivery');
    await new Promise((resolve) => setTimeout(resolve, 800));
    expect(at('/rollback').map((r) => JSON.parse(r.body).type)).toEqual(['enqueued']);
    expect((await deliveriesOf(webhook.id)).length).toBe(1);
    await db.spool.webhooks.remove(webhook.id);
  });

  it('refuses private and loopback targets by default: the delivery is dead without a request', async () => {
    const { webhook } = await db.spool.webhooks.create({ url: `${base}/private`, events: ['completed'], kind: 'hooks.work' });
    await db.spool.enqueue(work, { n: 5 });
    await waitFor(async () => (await deliveriesOf(webhook.id))[0]?.state === 'dead', 'the refused delivery');
    const [delivery] = await deliveriesOf(webhook.id);
    expect(delivery!.attempt, 'a refused target is not retried').toBe(1);
    expect(delivery!.errors[0].message).toMatch(/private or loopback/);
    expect(at('/private')).toHaveLength(0);
    await db.spool.webhooks.remove(webhook.id);

    for (const address of ['127.0.0.1', '10.1.2.3', '172.16.0.1', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '::1', 'fe80::1', 'fd00::1', '::ffff:127.0.0.1']) {
      expect(isPrivateAddress(address), address).toBe(true);
    }
    for (const address of ['93.184.216.34', '8.8.8.8', '2606:4700:4700::1111']) expect(isPrivateAddress(address), address).toBe(false);
    await expect(db.spool.webhooks.create({ url: 'ftp://example.com/x', events: ['completed'] })).rejects.toThrow(/http/);
    await expect(db.spool.webhooks.create({ url: 'https://user:pw@example.com/x', events: ['completed'] })).rejects.toThrow(/credentials/);
  });

  it('a per-job webhook gets that job\'s end, signed with the job webhook\'s secret; rotation keeps the old secret valid for a while', async () => {
    await db.sql`UPDATE spool.webhooks SET allow_private = true WHERE id = 'job'`;
    const { secret } = await db.spool.webhooks.rotate('job');
    const { id } = await db.spool.enqueue(work, { n: 6 }, { webhook: `${base}/per-job` });
    await waitFor(() => at('/per-job').length >= 1, 'the per-job delivery');
    const event = verifyWebhook<{ type: string; job: { id: string } }>(secret, at('/per-job')[0]!.headers, at('/per-job')[0]!.body);
    expect(event).toMatchObject({ type: 'completed', job: { id } });
    expect(at('/per-job')[0]!.path).toBe('/per-job');

    
    const rotated = await db.spool.webhooks.rotate('job');
    await db.spool.enqueue(work, { n: 7 }, { webhook: { url: `${base}/per-job-2` } });
    await waitFor(() => at('/per-job-2').length >= 1, 'the delivery after rotation');
    const [second] = at('/per-job-2');
    expect(second!.headers['spool-signature']).toMatch(/^t=\d+,v1=[0-9a-f]{64},v1=[0-9a-f]{64}$/);
    expect(() => verifyWebhook(rotated.secret, second!.headers, second!.body)).not.toThrow();
    expect(() => verifyWebhook(secret, second!.headers, second!.body)).not.toThrow();
    await expect(db.spool.enqueue(work, { n: 8 }, { webhook: 'javascript:alert(1)' })).rejects.toThrow(/webhook/);
  });

  it('the API: admin keys manage webhooks, the secret is shown once and never listed', async () => {
    const app = createApp({ spool: db.spool, logger: quiet });
    const admin = await db.spool.keys.create({ role: 'admin' });
    const reader = await db.spool.keys.create({ role: 'reader' });
    const call = (key: string, method: string, path: string, body?: unknown) =>
      app.request(path, { method, headers: { authorization: `Bearer ${key}`, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
    const created = await call(admin.key, 'POST', '/webhooks', { url: 'https://example.com/hook', events: ['completed'] });
    expect(created.status).toBe(201);
    const { webhook, secret } = (await created.json()) as { webhook: { id: string }; secret: string };
    expect(secret).toMatch(/^whsec_/);
    const listed = (await (await call(admin.key, 'GET', '/webhooks')).json()) as { webhooks: { id: string }[] };
    expect(JSON.stringify(listed)).not.toContain(secret);
    expect(listed.webhooks.map((w: { id: string }) => w.id)).toContain(webhook.id);
    expect((await call(reader.key, 'GET', '/webhooks')).status).toBe(403);
    const bad = await call(admin.key, 'POST', '/webhooks', { url: 'https://example.com/hook', events: ['exploded'] });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as any).error.details[0].path).toBe('events.0');
    expect((await call(admin.key, 'DELETE', `/webhooks/${webhook.id}`)).status).toBe(200);
    expect((await call(admin.key, 'GET', `/webhooks/${webhook.id}`)).status).toBe(404);
  });
});
