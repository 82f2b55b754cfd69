import { SpanKind, trace } from '@opentelemetry/api';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createApp } from '../../src/api/app.js';
import { createLogger, defineJob, type Worker } from '../../src/index.js';
import { api } from '../support/api.js';
import { useTestDatabase } from '../support/database.js';
import { waitFor } from '../support/factories.js';
import { startInMemoryTracing } from '../support/tracing.js';

const db = useTestDatabase();
const quiet = createLogger({ level: 'silent' });
let worker: Worker | undefined;
let tracing: ReturnType<typeof startInMemoryTracing> | undefined;

afterEach(async () => {
  await worker?.stop({ graceMs: 1_000 });
  worker = undefined;
});
afterAll(async () => {
  await tracing?.stop();
});

/** A job kind whose handler records the span it runs in and opens a span of its own. */
function tracedJob(kind: string, seen: Array<{ traceId: string; spanId: string } | undefined>) {
  return defineJob({
    kind,
    schema: z.object({}),
    handler: async () => {
      seen.push(trace.getActiveSpan()?.spanContext());
      await trace.getTracer('handler').startActiveSpan('handler work', async (span) => {
        await new Promise((resolve) => setTimeout(resolve, 1));
        span.end();
      });
    },
  });
}

describe('tracing', () => {
  // First, while no SDK is registered: the default for anyone who sets nothing.
  it('records nothing when tracing is off: no span, no traceparent stored, and the job still runs', async () => {
    const unregistered = new InMemorySpanExporter();
    const seen: Array<{ traceId: string; spanId: string } | undefined> = [];
    const job = tracedJob('trace.off', seen);
    worker = await db.spool.work({ jobs: [job], logger: quiet, handleSignals: false });
    const { id } = await trace.getTracer('test').startActiveSpan('enqueue', async (span) => {
      try {
        return await db.spool.enqueue(job, {});
      } finally {
        span.end();
      }
    });
    await waitFor(async () => (await db.spool.getJob(id))?.state === 'completed', 'job completed');
    expect(seen).toEqual([undefined]);
    expect((await db.spool.getJob(id))!.metadata).toEqual({});
    expect(unregistered.getFinishedSpans()).toEqual([]);
  });

  it('runs a job enqueued inside a span in a consumer span of the same trace, with the messaging attributes', async () => {
    tracing = startInMemoryTracing();
    const seen: Array<{ traceId: string; spanId: string } | undefined> = [];
    const job = tracedJob('trace.on', seen);
    worker = await db.spool.work({ jobs: [job], logger: quiet, handleSignals: false });
    let enqueueSpan: { traceId: string; spanId: string } | undefined;
    const { id } = await trace.getTracer('test').startActiveSpan('checkout request', async (span) => {
      enqueueSpan = span.spanContext();
      try {
        return await db.spool.enqueue(job, {}, { metadata: { order: 7 } });
      } finally {
        span.end();
      }
    });
    await waitFor(async () => (await db.spool.getJob(id))?.state === 'completed', 'job completed');
    const stored = await db.spool.getJob(id);
    expect(stored!.metadata).toEqual({ order: 7, traceparent: `00-${enqueueSpan!.traceId}-${enqueueSpan!.spanId}-01` });

    const spans = await waitFor(() => {
      const found = tracing!.exporter.getFinishedSpans();
      return found.some((s) => s.name === 'spool.job trace.on') ? found : null;
    }, 'job span exported');
    const jobSpan = spans.find((s) => s.name === 'spool.job trace.on')!;
    expect(jobSpan.spanContext().traceId).toBe(enqueueSpan!.traceId);
    expect(jobSpan.parentSpanContext?.spanId).toBe(enqueueSpan!.spanId);
    expect(jobSpan.kind).toBe(SpanKind.CONSUMER);
    expect(jobSpan.attributes).toMatchObject({
      'messaging.system': 'spool',
      'messaging.operation.type': 'process',
      'messaging.destination.name': 'default',
      'messaging.message.id': id,
      'spool.job.kind': 'trace.on',
      'spool.job.attempt': 1,
      'spool.job.outcome': 'completed',
    });
    // The handler ran inside the job span, and its own span is the job span's child.
    expect(seen).toEqual([jobSpan.spanContext()]);
    const handlerSpan = spans.find((s) => s.name === 'handler work')!;
    expect(handlerSpan.spanContext().traceId).toBe(enqueueSpan!.traceId);
    expect(handlerSpan.parentSpanContext?.spanId).toBe(jobSpan.spanContext().spanId);
  });

  it('one trace from an HTTP request (traceparent header) to the handler, and a failed attempt marks its span as an error', async () => {
    tracing ??= startInMemoryTracing();
    tracing.exporter.reset();
    const failing = defineJob({ kind: 'trace.http', schema: z.object({}), maxAttempts: 1, handler: () => { throw new Error('boom'); } });
    worker = await db.spool.work({ jobs: [failing], logger: quiet, handleSignals: false });
    const call = api(createApp({ auth: 'off', spool: db.spool, logger: quiet, unknownKinds: 'allow' }));
    const callerTrace = '4bf92f3577b34da6a3ce929d0e0e4736';
    const res = await call('POST', '/jobs', { kind: 'trace.http', payload: {}, maxAttempts: 1 }, { traceparent: `00-${callerTrace}-00f067aa0ba902b7-01` });
    expect(res.status).toBe(201);
    await waitFor(async () => (await db.spool.getJob(res.body.job.id))?.state === 'dead', 'job dead');
    const spans = await waitFor(() => {
      const found = tracing!.exporter.getFinishedSpans();
      return found.some((s) => s.name === 'spool.job trace.http') ? found : null;
    }, 'job span exported');
    const serverSpan = spans.find((s) => s.name === 'POST /jobs')!;
    const jobSpan = spans.find((s) => s.name === 'spool.job trace.http')!;
    expect(serverSpan.spanContext().traceId).toBe(callerTrace);
    expect(serverSpan.kind).toBe(SpanKind.SERVER);
    expect(serverSpan.attributes).toMatchObject({ 'http.route': '/jobs', 'http.response.status_code': 201 });
    expect(jobSpan.spanContext().traceId).toBe(callerTrace);
    expect(jobSpan.parentSpanContext?.spanId).toBe(serverSpan.spanContext().spanId);
    expect(jobSpan.status).toMatchObject({ code: 2, message: 'Error: boom' });
    expect(jobSpan.events.map((e) => e.name)).toEqual(['exception']);
  });
});
