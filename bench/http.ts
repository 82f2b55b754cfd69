/**
 * HTTP enqueue: `POST /jobs` (one job per request) against `spool api` in
 * its own process (built CLI when dist/ exists), driven by autocannon over
 * loopback at 50 connections, with a producer API key (auth is on by
 * default; its request budget is set far above what one machine sends, so
 * the budget's bookkeeping is measured but never refuses). Reports
 * requests/s and latency p50/p99, and checks that every acknowledged job is
 * in the table.
 *
 *   npx tsx bench/http.ts [seconds=15] [connections=50]
 * (cd bench && npm install first: autocannon is one of the bench's own devDependencies)
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import os from 'node:os';
import postgres from 'postgres';
import { benchDatabase } from './support/database.js';
import { freePort } from '../src/db/embedded.js';
import { z } from 'zod';
import { createSpool, defineJob } from '../src/index.js';

const SECONDS = Number(process.argv[2] ?? 15);
const CONNECTIONS = Number(process.argv[3] ?? 50);
const RUNS = Number(process.env.RUNS ?? 3);
// AUTH=off: the same without API keys (SPOOL_AUTH=off), to see what the key check and the budget cost.
const AUTH = process.env.AUTH === 'off' ? 'off' : 'keys';
const built = existsSync('dist/src/cli/main.js');
const cli = built ? ['dist/src/cli/main.js'] : ['--import', 'tsx', 'src/cli/main.ts'];
const { default: autocannon } = (await import(new URL('./node_modules/autocannon/autocannon.js', import.meta.url).href)) as {
  default: (options: object) => Promise<{ requests: { average: number }; latency: { p50: number; p99: number; max: number }; non2xx: number; errors: number; '2xx': number }>;
};

const db = await benchDatabase();
const port = await freePort();
// Its bootstrap admin key goes to a folder of its own, not over the repository's .spool/admin-key.
const scratch = await mkdtemp(join(os.tmpdir(), 'spool-bench-http-'));
const server = spawn(process.execPath, [...cli, 'api'], {
  env: { ...process.env, DATABASE_URL: db.url, SPOOL_PORT: String(port), SPOOL_HOST: '127.0.0.1', SPOOL_LOG_LEVEL: 'warn', SPOOL_KEY_RATE_LIMIT: '10000000/1s', SPOOL_DATA_DIR: join(scratch, 'pgdata'), SPOOL_AUTH: AUTH },
  stdio: ['ignore', 'pipe', 'inherit'],
});
await new Promise<void>((resolve, reject) => {
  server.stdout!.on('data', (chunk: Buffer) => chunk.toString().includes('spool API on') && resolve());
  server.once('exit', (code) => reject(new Error(`spool api exited with ${code}`)));
});
// `spool api` has migrated the database; the key is made as `spool keys create` would.
const keyMaker = createSpool({ connectionString: db.url, poolSize: 1 });
const { key } = await keyMaker.keys.create({ role: 'producer', name: 'bench:http' });
// The API refuses kinds nobody registered (SPOOL_UNKNOWN_KINDS=reject): register it, as a producer deploy would.
await keyMaker.registerKinds([defineJob({ kind: 'bench.http', schema: z.object({ to: z.string(), subject: z.string() }) })]);
await keyMaker.close();
const sql = postgres(db.url, { max: 1 });
try {
  console.log(`node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model}; Spool from ${built ? 'dist (compiled)' : 'src (tsx)'}; ${db.server}; ${JSON.stringify(db.settings)}`);
  console.log(`POST /jobs, one job per request, ${CONNECTIONS} connections, ${SECONDS} s per run, ${RUNS} runs (after a 3 s warm-up), auth ${AUTH === 'keys' ? 'on (a producer key)' : 'off'}\n`);
  const body = JSON.stringify({ kind: 'bench.http', payload: { to: 'ann@example.com', subject: 'Hello' } });
  const request = { url: `http://127.0.0.1:${port}/jobs`, method: 'POST', headers: { 'content-type': 'application/json', ...(AUTH === 'keys' ? { authorization: `Bearer ${key}` } : {}) }, body, connections: CONNECTIONS };
  await autocannon({ ...request, duration: 3 });
  console.log('| run | requests/s | p50 ms | p99 ms | max ms | non-2xx |');
  console.log('|---|---:|---:|---:|---:|---:|');
  const rows: { rps: number; p50: number; p99: number }[] = [];
  let acknowledged = 0;
  const [{ before }] = (await sql`SELECT count(*)::int AS before FROM spool.jobs`) as unknown as [{ before: number }];
  for (let run = 1; run <= RUNS; run++) {
    const result = await autocannon({ ...request, duration: SECONDS });
    acknowledged += result['2xx'];
    rows.push({ rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99 });
    console.log(`| ${run} | ${Math.round(result.requests.average).toLocaleString('en-US')} | ${result.latency.p50} | ${result.latency.p99} | ${result.latency.max} | ${result.non2xx + result.errors} |`);
  }
  const [{ after }] = (await sql`SELECT count(*)::int AS after FROM spool.jobs`) as unknown as [{ after: number }];
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  if (rows.length > 0 && acknowledged === 0) throw new Error('no request was acknowledged: every answer was an error (see non-2xx)');
  console.log(`\nmedian: ${Math.round(median(rows.map((r) => r.rps))).toLocaleString('en-US')} requests/s, p50 ${median(rows.map((r) => r.p50))} ms, p99 ${median(rows.map((r) => r.p99))} ms`);
  // Requests cut off when a run ends may still commit, so the table may hold a few more than were acknowledged, never fewer.
  const stored = after - before;
  console.log(`acknowledged ${acknowledged.toLocaleString('en-US')}, stored ${stored.toLocaleString('en-US')}${stored >= acknowledged ? ' (none lost)' : ' (LOST JOBS)'}`);
} finally {
  await sql.end();
  server.kill('SIGTERM');
  await new Promise((resolve) => server.once('exit', resolve));
  await db.close();
  await rm(scratch, { recursive: true, force: true });
}
