import { connect } from 'node:net';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, createLogger, createSpool, startApiServer, type Spool } from '../../src/index.js';
import { api, type ApiCall } from '../support/api.js';
import { useTestDatabase } from '../support/database.js';

const db = useTestDatabase();
const quiet = createLogger({ level: 'silent' });
let call: ApiCall;

const PAGE_MAX_BYTES = 64 * 1024;

beforeAll(async () => {
  call = api(createApp({ spool: db.spool, logger: quiet, auth: 'off', unknownKinds: 'allow', pageMaxBytes: PAGE_MAX_BYTES }));
  // 30 jobs of ~10 KB and 30 small ones, alternating.
  await db.spool.enqueueMany(
    Array.from({ length: 60 }, (_, i) => ({ job: 'sized', payload: i % 2 === 0 ? { blob: 'x'.repeat(10_000), i } : { i } })),
  );
});

describe('list pages within the byte cap', () => {
  it('a page stops before the cap, says so, and its cursor leads to the rest: every job once, none lost', async () => {
    const seen: number[] = [];
    let cursor: string | null = null;
    let pages = 0;
    let truncatedPages = 0;
    do {
      const res = await call('GET', `/jobs?limit=1000&order=asc${cursor ? `&cursor=${cursor}` : ''}`);
      expect(res.status).toBe(200);
      const bytes = Buffer.byteLength(JSON.stringify(res.body.jobs));
      expect(bytes).toBeLessThanOrEqual(PAGE_MAX_BYTES);
      if (res.body.truncated) truncatedPages++;
      seen.push(...res.body.jobs.map((j: { payload: { i: number } }) => j.payload.i));
      cursor = res.body.nextCursor;
      pages++;
    } while (cursor && pages < 100);
    expect(truncatedPages).toBeGreaterThan(0);
    expect(seen).toEqual(Array.from({ length: 60 }, (_, i) => i));
  });

  it('a page under the cap is whole and not truncated; GET /dead is capped too', async () => {
    const small = await call('GET', '/jobs?limit=3');
    expect(small.body).toMatchObject({ truncated: false });
    expect(small.body.jobs).toHaveLength(3);
    await db.sql`UPDATE spool.jobs SET state = 'dead', finished_at = now(), attempt = 1 WHERE kind = 'sized'`;
    const dead = await call('GET', '/dead?limit=1000');
    expect(dead.status).toBe(200);
    expect(dead.body.truncated).toBe(true);
    expect(Buffer.byteLength(JSON.stringify(dead.body.jobs))).toBeLessThanOrEqual(PAGE_MAX_BYTES);
    await db.sql`UPDATE spool.jobs SET state = 'available', finished_at = NULL, attempt = 0 WHERE kind = 'sized'`;
  });

  it('a single job larger than the cap is still served, alone on its page', async () => {
    const { id } = await db.spool.enqueue('sized.big', { blob: 'y'.repeat(200_000) });
    const res = await call('GET', '/jobs?limit=10&kind=sized.big');
    expect(res.body.jobs.map((j: { id: string }) => j.id)).toEqual([id]);
  });
});

describe('statement timeout', () => {
  let timed: Spool;
  let locker: postgres.Sql;
  beforeAll(() => {
    timed = createSpool({ connectionString: db.url, poolSize: 2, statementTimeoutMs: 200 });
    locker = postgres(db.url, { max: 1, onnotice: () => {} });
  });
  afterAll(async () => {
    await timed.close();
    await locker.end();
  });

  it('a query past the API pool statement_timeout is answered 503 database_timeout with Retry-After, and the API goes on', async () => {
    const timedCall = api(createApp({ spool: timed, logger: quiet, auth: 'off' }));
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let locked!: () => void;
    const isLocked = new Promise<void>((resolve) => (locked = resolve));
    const holder = locker.begin(async (tx) => {
      await tx`LOCK TABLE spool.jobs IN ACCESS EXCLUSIVE MODE`;
      locked();
      await held;
    });
    await isLocked;
    const res = await timedCall('GET', '/jobs');
    release();
    await holder;
    expect(res.status).toBe(503);
    expect(res.body.error.code).toBe('database_timeout');
    expect(res.headers.get('retry-after')).toBe('1');
    expect((await timedCall('GET', '/jobs?limit=1')).status).toBe(200);
  });

  it('reaches the server as the pool\'s statement_timeout; a migration on that pool still runs', async () => {
    const [row] = await timed.sql`SHOW statement_timeout`;
    expect(row!.statement_timeout).toBe('200ms');
    await expect(timed.migrate()).resolves.toBeDefined();
  });
});

describe('slow clients', () => {
  it('a client that never finishes its headers is cut off after the headers timeout', async () => {
    const app = createApp({ spool: db.spool, logger: quiet, auth: 'off' });
    const server = await startApiServer(app, { host: '127.0.0.1', port: 0, headersTimeoutMs: 1000, requestTimeoutMs: 1000 });
    try {
      const socket = connect(server.port, '127.0.0.1');
      let answer = '';
      socket.on('data', (chunk) => (answer += chunk.toString()));
      const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
      socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
      const outcome = await Promise.race([closed.then(() => 'closed'), new Promise((r) => setTimeout(() => r('still open'), 8_000))]);
      expect(outcome).toBe('closed');
      expect(answer).toMatch(/^HTTP\/1\.1 408/);
    } finally {
      await server.close();
    }
  });
});
