import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { useTestDatabase } from '../support/database.js';
import { waitFor } from '../support/factories.js';

const db = useTestDatabase();
/** What a stand-in OTLP/HTTP collector received: each POST's path and JSON body. */
const received: Array<{ path: string; body: any }> = [];
let collector: Server;
let endpoint: string;

beforeAll(async () => {
  collector = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      received.push({ path: req.url ?? '', body: JSON.parse(body) });
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(collector.address() as { port: number }).port}`;
});
afterAll(async () => {
  await new Promise((resolve) => collector.close(resolve));
});

describe('OTLP export', () => {
  it('spool work with OTEL_EXPORTER_OTLP_ENDPOINT exports a consumer span per job to the collector, in the trace stored at enqueue', async () => {
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    const { id } = await db.spool.enqueue('greet.hello', { name: 'Otel' }, { metadata: { traceparent: `00-${traceId}-b7ad6b7169203331-01` } });
    const run = runCli(['work', '--tasks', 'test/fixtures/tasks'], {
      DATABASE_URL: db.url,
      OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
      OTEL_SERVICE_NAME: 'spool-otlp-test',
    });
    await waitFor(async () => (await db.spool.getJob(id))?.state === 'completed', 'job completed', 30_000);
    run.child.kill('SIGTERM'); // shutdown flushes the batched spans
    expect(await run.exited).toBe(0);
    const spans = received
      .filter((r) => r.path === '/v1/traces')
      .flatMap((r) => r.body.resourceSpans.map((rs: any) => ({ rs, spans: rs.scopeSpans.flatMap((ss: any) => ss.spans) })));
    const jobSpan = spans.flatMap(({ rs, spans }) => spans.map((span: any) => ({ rs, span }))).find(({ span }) => span.name === 'spool.job greet.hello');
    expect(jobSpan, `spans received: ${JSON.stringify(received).slice(0, 500)}`).toBeDefined();
    expect(jobSpan!.span.traceId).toBe(traceId);
    expect(jobSpan!.span.parentSpanId).toBe('b7ad6b7169203331');
    const attributes = Object.fromEntries(jobSpan!.span.attributes.map((a: any) => [a.key, Object.values(a.value)[0]]));
    expect(attributes).toMatchObject({ 'messaging.system': 'spool', 'messaging.message.id': id, 'spool.job.outcome': 'completed' });
    const service = jobSpan!.rs.resource.attributes.find((a: any) => a.key === 'service.name');
    expect(service.value.stringValue).toBe('spool-otlp-test');
  });
});
