/**
 * Webhook delivery rate (issue 15): N no-op jobs whose `completed` events a
 * subscription sends to a local HTTP receiver (204, loopback, allowed with
 * allowPrivate). One worker at concurrency 50 runs the jobs and the
 * deliveries; the maintenance leader's dispatcher turns events into
 * deliveries. Reports deliveries/s from the worker's start until the
 * receiver has every one, and checks each signature.
 *
 *   npm run build && DATABASE_URL=postgres://… npx tsx bench/webhooks.ts [jobs=10000]
 */
import { createServer } from 'node:http';
import { benchDatabase } from './support/database.js';
import { fill, noop, openSpool, spoolBuild, spoolModule } from './support/spool.js';

const JOBS = Number(process.argv[2] ?? 10_000);
const { createLogger, verifyWebhook, webhookDeliveryJob } = spoolModule;
const db = await benchDatabase();
const spool = await openSpool(db.url);
let received = 0;
let badSignatures = 0;
let secret = '';
let allIn: () => void = () => {};
const done = new Promise<void>((resolve) => (allIn = resolve));
const receiver = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    try {
      verifyWebhook(secret, req.headers, Buffer.concat(chunks));
    } catch {
      badSignatures++;
    }
    res.writeHead(204).end();
    if (++received === JOBS) allIn();
  });
});
await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
try {
  const port = (receiver.address() as { port: number }).port;
  const created = await spool.webhooks.create({ url: `http://127.0.0.1:${port}/hook`, events: ['completed'], kind: 'bench.noop', allowPrivate: true });
  secret = created.secret;
  await fill(spool, JOBS);
  console.log(`${JOBS.toLocaleString('en-US')} jobs, each completion POSTed to a local receiver; one worker, concurrency 50; ${spoolBuild}; ${db.server}; ${JSON.stringify(db.settings)}`);
  const started = performance.now();
  const worker = await spool.work({ jobs: [noop, webhookDeliveryJob(spool)], concurrency: 50, logger: createLogger({ level: 'warn' }), handleSignals: false });
  await done;
  const seconds = (performance.now() - started) / 1000;
  await worker.stop({ graceMs: 10_000 });
  console.log(`delivered ${received.toLocaleString('en-US')} in ${seconds.toFixed(1)} s: ${Math.round(received / seconds).toLocaleString('en-US')} deliveries/s (jobs and deliveries in the same worker); ${badSignatures} bad signatures`);
} finally {
  receiver.close();
  await spool.close();
  await db.close();
}
