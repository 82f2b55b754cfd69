import { Writable } from 'node:stream';
import { trace } from '@opentelemetry/api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createApp } from '../../src/api/app.js';
import { createLogger, defineJob, type Logger } from '../../src/index.js';
import { api } from '../support/api.js';
import { useTestDatabase } from '../support/database.js';
import { waitFor } from '../support/factories.js';
import { startInMemoryTracing } from '../support/tracing.js';

const db = useTestDatabase();
let tracing: ReturnType<typeof startInMemoryTracing>;

beforeAll(() => {
  tracing = startInMemoryTracing();
});
afterAll(async () => {
  await tracing.stop();
});

/** A JSON logger whose lines are kept, raw and parsed. */
function capturedLogger(level = 'debug'): { log: Logger; raw: string[]; lines: () => Array<Record<string, any>> } {
  const raw: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      raw.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  return { log: createLogger({ level, format: 'json', destination: stream }), raw, lines: () => raw.map((l) => JSON.parse(l)) };
}

describe('logs', () => {
  it('handler and worker lines about a job carry job_id, kind, queue, attempt, worker_id and the trace ids; payloads stay out', async () => {
    const { log, raw, lines } = capturedLogger();
    let runs = 0;
    const job = defineJob({
      kind: 'logs.flaky',
      schema: z.object({ secret: z.string() }),
      maxAttempts: 2,
      backoff: { baseMs: 0, jitter: 0 },
      handler: (_payload, ctx) => {
        ctx.log.info({ step: 'charge' }, 'handler says hi');
        if (++runs === 1) throw new Error('card declined');
      },
    });
    const worker = await db.spool.work({ jobs: [job], logger: log, handleSignals: false, promoteIntervalMaxMs: 50 });
    try {
      const { id, traceId } = await trace.getTracer('test').startActiveSpan('signup', async (span) => {
        try {
          return { ...(await db.spool.enqueue(job, { secret: 'hunter2' })), traceId: span.spanContext().traceId };
        } finally {
          span.end();
        }
      });
      await waitFor(async () => (await db.spool.getJob(id))?.state === 'completed', 'job completed after a retry');
      await waitFor(() => lines().some((l) => l.msg === 'job completed' && l.attempt === 2), 'completion line');
      const about = lines().filter((l) => l.job_id === id);
      const handlerLines = about.filter((l) => l.msg === 'handler says hi');
      const failed = about.find((l) => l.msg === 'attempt failed; will retry');
      expect(handlerLines.map((l) => l.attempt)).toEqual([1, 2]);
      expect(failed).toMatchObject({ level: 40, kind: 'logs.flaky', queue: 'default', attempt: 1, worker_id: worker.id, error: 'Error: card declined', retry_in_ms: 0 });
      for (const line of [...handlerLines, failed!]) {
        expect(line).toMatchObject({ job_id: id, kind: 'logs.flaky', worker_id: worker.id, trace_id: traceId });
        expect(line.span_id).toMatch(/^[0-9a-f]{16}$/);
      }
      // Each attempt has its own span in the caller's trace.
      expect(new Set(handlerLines.map((l) => l.span_id)).size).toBe(2);
      // Payloads stay out of logs unless asked for, and no key is written twice.
      expect(raw.filter((l) => l.includes('hunter2'))).toEqual([]);
      for (const line of raw) expect(line.match(/"worker_id"/g)?.length ?? 0).toBeLessThanOrEqual(1);
    } finally {
      await worker.stop({ graceMs: 1_000 });
    }
  });

  it('logPayloads puts the payload in the debug line of a starting job', async () => {
    const { log, lines } = capturedLogger();
    const job = defineJob({ kind: 'logs.payload', schema: z.object({ n: z.number() }), handler: () => undefined });
    const worker = await db.spool.work({ jobs: [job], logger: log, handleSignals: false, logPayloads: true });
    try {
      const { id } = await db.spool.enqueue(job, { n: 42 });
      await waitFor(() => lines().some((l) => l.job_id === id && l.msg === 'job started'), 'start line');
      expect(lines().find((l) => l.job_id === id && l.msg === 'job started')).toMatchObject({ level: 20, payload: { n: 42 } });
    } finally {
      await worker.stop({ graceMs: 1_000 });
    }
  });

  it('a job enqueued over HTTP keeps the request id in its metadata, and its attempt\'s log lines carry it as request_id', async () => {
    const { log, lines } = capturedLogger();
    const job = defineJob({
      kind: 'logs.requested',
      schema: z.object({}),
      handler: async (_payload, ctx) => ctx.log.info('handled'),
    });
    const worker = await db.spool.work({ jobs: [job], logger: log, handleSignals: false, pollIntervalMs: 50 });
    try {
      const call = api(createApp({ auth: 'off', spool: db.spool, logger: log }));
      const posted = await call('POST', '/jobs', { kind: 'logs.requested', payload: {} }, { 'X-Request-Id': 'req-follow-me' });
      expect(posted.status).toBe(201);
      expect(posted.body.job.metadata).toMatchObject({ request_id: 'req-follow-me' });
      const handled = await waitFor(() => lines().find((l) => l.msg === 'handled'), 'the handler\'s line');
      expect(handled).toMatchObject({ request_id: 'req-follow-me', job_id: posted.body.job.id, kind: 'logs.requested' });
      const batch = await call('POST', '/jobs/batch', { jobs: [{ kind: 'logs.requested', metadata: { request_id: 'mine' } }] }, { 'X-Request-Id': 'req-batch' });
      expect((await db.spool.getJob(batch.body.ids[0]))?.metadata).toMatchObject({ request_id: 'mine' });
    } finally {
      await worker.stop({ graceMs: 1_000 });
    }
  });

  it('API lines carry the request id (taken from X-Request-Id or generated), which the response echoes', async () => {
    const { log, lines } = capturedLogger();
    const call = api(createApp({ auth: 'off', spool: db.spool, logger: log, unknownKinds: 'allow' }));
    const given = await call('POST', '/jobs', { kind: 'logs.api', payload: {} }, { 'X-Request-Id': 'req-abc-123' });
    expect(given.headers.get('x-request-id')).toBe('req-abc-123');
    const generated = await call('GET', '/jobs/999999999');
    const generatedId = generated.headers.get('x-request-id')!;
    expect(generatedId).toMatch(/^[0-9a-f-]{36}$/);
    expect(generated.body.error.requestId).toBe(generatedId);
    expect(lines().find((l) => l.request_id === 'req-abc-123')).toMatchObject({ msg: 'request', method: 'POST', route: '/jobs', status: 201, level: 20 });
    expect(lines().find((l) => l.request_id === generatedId)).toMatchObject({ msg: 'request', method: 'GET', route: '/jobs/:id', status: 404, level: 30 });
  });
});
