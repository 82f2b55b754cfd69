import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createApp } from '../../src/api/app.js';
import { PermanentError, SpoolMetrics, createLogger, createSpool, defineJob, type Spool, type Worker } from '../../src/index.js';
import { api, type ApiCall } from '../support/api.js';
import { useTestDatabase } from '../support/database.js';
import { waitFor } from '../support/factories.js';
import { parseMetrics, sampleValue, type Sample } from '../support/metrics.js';

const db = useTestDatabase();
const quiet = createLogger({ level: 'silent' });
let metrics: SpoolMetrics;
let spool: Spool;
let call: ApiCall;
let worker: Worker | undefined;

beforeAll(() => {
  metrics = new SpoolMetrics();
  spool = createSpool({ connectionString: db.url, poolSize: 3, metrics });
  call = api(createApp({ auth: 'off', spool, logger: quiet, unknownKinds: 'allow' }));
});

afterAll(async () => {
  await worker?.stop({ graceMs: 1_000 });
  await spool?.close();
});

async function scrape(): Promise<Sample[]> {
  const res = await call('GET', '/metrics');
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseMetrics(res.body as string);
}

const schema = z.object({});
const ok = defineJob({ kind: 'm.ok', schema, handler: () => 'done' });
let flakyRuns = 0;
const flaky = defineJob({
  kind: 'm.flaky',
  schema,
  backoff: { baseMs: 0, jitter: 0 },
  handler: () => {
    if (++flakyRuns === 1) throw new Error('first attempt fails');
  },
});
const doomed = defineJob({ kind: 'm.doomed', schema, maxAttempts: 2, backoff: { baseMs: 0, jitter: 0 }, handler: () => { throw new Error('always fails'); } });
const permanent = defineJob({ kind: 'm.permanent', schema, handler: () => { throw new PermanentError('never retry'); } });
const slow = defineJob({
  kind: 'm.slow',
  schema,
  handler: (_payload, ctx) => new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason))),
});

describe('metrics', () => {
  it('counts enqueued, started, completed, failed, dead and cancelled jobs exactly, with histogram counts and queue gauges', async () => {
    // Two over HTTP (the API's batching path), one straight from the client.
    for (let i = 0; i < 2; i++) expect((await call('POST', '/jobs', { kind: 'm.ok', payload: {} })).status).toBe(201);
    await spool.enqueue(ok, {});
    await spool.enqueue(flaky, {});
    await spool.enqueue(doomed, {});
    await spool.enqueue(permanent, {});
    const { id: slowId } = await spool.enqueue(slow, {});
    const { id: laterId } = await spool.enqueue(ok, {}, { delayMs: 3_600_000 });
    await spool.cancelJob(laterId); // cancelled while scheduled, by the client
    // A queue nobody works, for the gauges: two available, one scheduled.
    await spool.enqueue('m.idle', {}, { queue: 'idle' });
    await spool.enqueue('m.idle', {}, { queue: 'idle' });
    await spool.enqueue('m.idle', {}, { queue: 'idle', delayMs: 3_600_000 });

    worker = await spool.work({ jobs: [ok, flaky, doomed, permanent, slow], concurrency: 10, logger: quiet, handleSignals: false, promoteIntervalMaxMs: 50 });
    await waitFor(async () => (await spool.getJob(slowId))?.state === 'running', 'slow job running');
    await spool.cancelJob(slowId); // cancelled while running, by its worker
    const terminal = async () => {
      const rows = await db.sql`SELECT count(*)::int AS n FROM spool.all_jobs WHERE queue = 'default' AND state IN ('completed', 'dead', 'cancelled')`;
      return rows[0]!.n === 8;
    };
    await waitFor(terminal, 'every default-queue job finished');
    await waitFor(() => worker!.isLeader, 'the worker leads maintenance');
    const finishedAt = Date.now() / 1000;
    await waitFor(async () => (sampleValue(await scrape(), 'spool_queue_gauges_refreshed_timestamp_seconds') ?? 0) > finishedAt, 'queue gauges refreshed', 8_000);
    const samples = await scrape();
    const value = (name: string, labels: Record<string, string> = {}) => sampleValue(samples, name, labels) ?? 0;
    const q = (kind: string) => ({ queue: 'default', kind });

    expect(value('spool_jobs_enqueued_total', q('m.ok'))).toBe(4);
    expect(value('spool_jobs_enqueued_total', { queue: 'idle', kind: 'm.idle' })).toBe(3);
    for (const [kind, started] of [['m.ok', 3], ['m.flaky', 2], ['m.doomed', 2], ['m.permanent', 1], ['m.slow', 1]] as const) {
      expect(value('spool_jobs_started_total', q(kind)), `started ${kind}`).toBe(started);
      expect(value('spool_job_run_seconds_count', q(kind)), `run time observations ${kind}`).toBe(started);
      expect(value('spool_job_wait_seconds_count', q(kind)), `wait time observations ${kind}`).toBe(started);
    }
    // Outcomes by what the database applied; one end-to-end observation per finished job
    // (retries count once, at the end).
    const outcomes: Array<[metric: string, kind: string, count: number]> = [
      ['spool_jobs_completed_total', 'm.ok', 3],
      ['spool_jobs_completed_total', 'm.flaky', 1],
      ['spool_jobs_failed_total', 'm.flaky', 1],
      ['spool_jobs_failed_total', 'm.doomed', 1],
      ['spool_jobs_dead_total', 'm.doomed', 1],
      ['spool_jobs_dead_total', 'm.permanent', 1],
      ['spool_jobs_failed_total', 'm.permanent', 0],
      ['spool_jobs_cancelled_total', 'm.slow', 1],
      ['spool_jobs_cancelled_total', 'm.ok', 1],
      ['spool_jobs_stale_writes_total', 'm.ok', 0],
      ['spool_job_end_to_end_seconds_count', 'm.ok', 3],
      ['spool_job_end_to_end_seconds_count', 'm.flaky', 1],
      ['spool_job_end_to_end_seconds_count', 'm.doomed', 1],
    ];
    for (const [metric, kind, count] of outcomes) expect(value(metric, q(kind)), `${metric} ${kind}`).toBe(count);
    expect(value('spool_job_run_seconds_bucket', { ...q('m.ok'), le: '+Inf' })).toBe(3);

    // Gauges: from the table, after the refresh.
    expect(value('spool_queue_jobs', { queue: 'idle', state: 'available' })).toBe(2);
    expect(value('spool_queue_jobs', { queue: 'idle', state: 'scheduled' })).toBe(1);
    expect(value('spool_queue_jobs', { queue: 'default', state: 'dead' })).toBe(2);
    expect(value('spool_queue_jobs', { queue: 'default', state: 'cancelled' })).toBe(2);
    expect(value('spool_queue_jobs', { queue: 'default', state: 'running' })).toBe(0);
    expect(value('spool_queue_oldest_available_seconds', { queue: 'idle' })).toBeGreaterThan(0);
    expect(value('spool_queue_oldest_available_seconds', { queue: 'default' })).toBe(0);
    expect(value('spool_workers_live')).toBe(1);
    expect(value('spool_jobs_in_flight')).toBe(0);
    expect(value('spool_listener_connected')).toBe(1);
    expect(value('spool_leader')).toBe(1);
    expect(value('spool_db_pool_connections', { pool: 'worker', state: 'idle' })).toBeGreaterThan(0);
    // Storage gauges (read at start, then every 30 s).
    expect(value('spool_table_bytes', { table: 'hot' })).toBeGreaterThan(0);
    expect(value('spool_table_bytes', { table: 'history' })).toBeGreaterThan(0);
    expect(value('spool_history_partitions')).toBeGreaterThanOrEqual(12);
    expect(value('spool_hot_table_rows', { state: 'finished' })).toBe(0);
    expect(value('spool_autovacuum_enabled')).toBeGreaterThanOrEqual(0);
    // HTTP, by route template; and the default process metrics.
    expect(value('spool_http_requests_total', { method: 'POST', route: '/jobs', status: '201' })).toBe(2);
    expect(value('spool_http_request_duration_seconds_count', { method: 'POST', route: '/jobs', status: '201' })).toBe(2);
    expect(samples.some((s) => s.name === 'process_cpu_user_seconds_total')).toBe(true);
  });

  it('folds queue and kind values past the cap into "other"', async () => {
    const capped = new SpoolMetrics({ labelValuesMax: 2, defaultMetrics: false });
    capped.enqueued('q1', 'k1');
    capped.enqueued('q2', 'k2');
    capped.enqueued('q3', 'k3');
    capped.enqueued('q4', 'k1');
    const samples = parseMetrics(await capped.text()).filter((s) => s.name === 'spool_jobs_enqueued_total');
    expect(samples.map((s) => s.labels).sort((a, b) => `${a.queue}${a.kind}`.localeCompare(`${b.queue}${b.kind}`))).toEqual([
      { queue: 'other', kind: 'k1' },
      { queue: 'other', kind: 'other' },
      { queue: 'q1', kind: 'k1' },
      { queue: 'q2', kind: 'k2' },
    ]);
  });

  it('an unmatched path is one "unmatched" route, not a label per path', async () => {
    await call('GET', '/no/such/path/1');
    await call('GET', '/no/such/path/2');
    expect(sampleValue(await scrape(), 'spool_http_requests_total', { method: 'GET', route: 'unmatched', status: '404' })).toBe(2);
  });
});

describe('hot-path histograms', () => {
  it('expose cumulative buckets, +Inf, sum and count in the Prometheus format', async () => {
    const metrics = new SpoolMetrics({ defaultMetrics: false });
    const run = metrics.series('q', 'k').runSeconds;
    for (const seconds of [0.002, 0.02, 0.02, 2, 5000]) run.observe(seconds);
    const samples = parseMetrics(await metrics.text());
    const bucket = (le: string) => sampleValue(samples, 'spool_job_run_seconds_bucket', { queue: 'q', kind: 'k', le });
    expect([bucket('0.001'), bucket('0.005'), bucket('0.025'), bucket('2.5'), bucket('3600'), bucket('+Inf')]).toEqual([0, 1, 3, 4, 4, 5]);
    expect(sampleValue(samples, 'spool_job_run_seconds_count', { queue: 'q', kind: 'k' })).toBe(5);
    expect(sampleValue(samples, 'spool_job_run_seconds_sum', { queue: 'q', kind: 'k' })).toBeCloseTo(5002.042, 6);
  });
});
