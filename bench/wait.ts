/**
 * Waiting for results over HTTP (issue 15): `spool serve` in its own
 * process (API + workers, as deployed) with a no-op task, and
 *   1. POST /jobs?wait=10s at 50 connections (autocannon): round trip of
 *      enqueue → claim → run → finish → event → answer, p50/p99;
 *   2. 10,000 idle waiters (GET /jobs/:id?wait=60s on jobs nobody runs):
 *      the server's memory and database connections before and during,
 *      and the time to answer them all once their jobs are cancelled.
 *
 *   npm run build && npx tsx bench/wait.ts [seconds=10] [connections=50] [waiters=10000]
 * (cd bench && npm install first: autocannon)
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import os from 'node:os';
import { Agent, get } from 'node:http';
import postgres from 'postgres';
import { benchDatabase } from './support/database.js';
import { freePort } from '../src/db/embedded.js';
import { createSpool } from '../src/index.js';

const SECONDS = Number(process.argv[2] ?? 10);
const CONNECTIONS = Number(process.argv[3] ?? 50);
const WAITERS = Number(process.argv[4] ?? 10_000);
const RUNS = Number(process.env.RUNS ?? 3);
const built = existsSync('dist/src/cli/main.js');
const cli = built ? ['dist/src/cli/main.js'] : ['--import', 'tsx', 'src/cli/main.ts'];
const { default: autocannon } = (await import(new URL('./node_modules/autocannon/autocannon.js', import.meta.url).href)) as {
  default: (options: object) => Promise<{ requests: { average: number }; latency: { p50: number; p90: number; p99: number; max: number }; non2xx: number; errors: number; '2xx': number }>;
};

const db = await benchDatabase();
const port = await freePort();
const scratch = await mkdtemp(join(os.tmpdir(), 'spool-bench-wait-'));
await writeFile(join(scratch, 'bench.noop.mjs'), 'export default { handler: () => ({ ok: true }) };\n');
const server = spawn(process.execPath, [...cli, 'serve', '--tasks', scratch], {
  env: { ...process.env, DATABASE_URL: db.url, SPOOL_PORT: String(port), SPOOL_HOST: '127.0.0.1', SPOOL_LOG_LEVEL: 'warn', SPOOL_AUTH: 'off', SPOOL_CONCURRENCY: '50', SPOOL_DATA_DIR: join(scratch, 'pgdata') },
  stdio: ['ignore', 'pipe', 'inherit'],
});
await new Promise<void>((resolve, reject) => {
  server.stdout!.on('data', (chunk: Buffer) => chunk.toString().includes('spool API on') && resolve());
  server.once('exit', (code) => reject(new Error(`spool serve exited with ${code}`)));
});
const sql = postgres(db.url, { max: 2 });
const rssMiB = async () => Number(/VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${server.pid}/status`, 'utf8'))![1]) / 1024;
const connections = async () =>
  ((await sql`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name <> ''`) as unknown as [{ n: number }])[0].n;
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
try {
  console.log(`node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model}; Spool from ${built ? 'dist (compiled)' : 'src (tsx)'}; ${db.server}; ${JSON.stringify(db.settings)}`);
  console.log(`spool serve (API + worker, concurrency 50, auth off), one process\n`);
  const request = {
    url: `http://127.0.0.1:${port}/jobs?wait=10s`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ kind: 'bench.noop', payload: {} }),
    connections: CONNECTIONS,
  };
  await autocannon({ ...request, duration: 3 });
  console.log(`POST /jobs?wait=10s, a no-op job, ${CONNECTIONS} connections, ${SECONDS} s per run`);
  console.log('| run | round trips/s | p50 ms | p90 ms | p99 ms | max ms | non-2xx |');
  console.log('|---|---:|---:|---:|---:|---:|---:|');
  const rows: { rps: number; p50: number; p99: number }[] = [];
  for (let run = 1; run <= RUNS; run++) {
    const r = await autocannon({ ...request, duration: SECONDS });
    rows.push({ rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99 });
    console.log(`| ${run} | ${Math.round(r.requests.average).toLocaleString('en-US')} | ${r.latency.p50} | ${r.latency.p90} | ${r.latency.p99} | ${r.latency.max} | ${r.non2xx + r.errors} |`);
  }
  const [{ open }] = (await sql`SELECT count(*)::int AS open FROM spool.jobs WHERE kind = 'bench.noop'`) as unknown as [{ open: number }];
  console.log(`median: ${Math.round(median(rows.map((r) => r.rps))).toLocaleString('en-US')}/s, p50 ${median(rows.map((r) => r.p50))} ms, p99 ${median(rows.map((r) => r.p99))} ms; ${open} jobs left unfinished\n`);

  // Idle waiters: jobs of a kind no worker runs, each awaited by one request.
  const ids = ((await sql`INSERT INTO spool.jobs (kind, queue) SELECT 'bench.parked', 'parked' FROM generate_series(1, ${WAITERS}) RETURNING id::text AS id`) as unknown as { id: string }[]).map((r) => r.id);
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const before = { rss: await rssMiB(), connections: await connections() };
  const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
  const started = performance.now();
  let answered = 0;
  const waits = ids.map(
    (id) =>
      new Promise<{ timedOut: boolean; job: { state: string } }>((resolve, reject) => {
        get(`http://127.0.0.1:${port}/jobs/${id}?wait=60s`, { agent }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            answered++;
            resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
          });
        }).on('error', reject);
      }),
  );
  await new Promise((resolve) => setTimeout(resolve, 8_000));
  const during = { rss: await rssMiB(), connections: await connections() };
  const cancelAt = performance.now();
  // Cancelled as the API does (each its own statement), 50 at a time: every waiter's job ends.
  const canceller = createSpool({ connectionString: db.url, poolSize: 10 });
  for (let i = 0; i < ids.length; i += 50) await Promise.all(ids.slice(i, i + 50).map((id) => canceller.cancelJob(id)));
  await canceller.close();
  const results = await Promise.race([Promise.all(waits), new Promise<null>((resolve) => setTimeout(() => resolve(null), 90_000))]);
  const allAnswered = (performance.now() - cancelAt) / 1000;
  console.log(`${WAITERS.toLocaleString('en-US')} idle waiters (GET /jobs/:id?wait=60s), opened in ${((cancelAt - started) / 1000 - 8).toFixed(1)} s + 8 s idle:`);
  console.log(`| | server RSS MiB | database connections of the server |`);
  console.log(`|---|---:|---:|`);
  console.log(`| before | ${before.rss.toFixed(0)} | ${before.connections} |`);
  console.log(`| ${WAITERS.toLocaleString('en-US')} waiting | ${during.rss.toFixed(0)} | ${during.connections} |`);
  const finished = results ? results.filter((r) => !r.timedOut && r.job.state === 'cancelled').length : 0;
  console.log(`per waiter: ${(((during.rss - before.rss) * 1024) / WAITERS).toFixed(1)} KiB; cancelling all ${WAITERS.toLocaleString('en-US')} jobs and answering every waiter took ${allAnswered.toFixed(1)} s; ${finished} answered with their cancelled job${results ? '' : ` (only ${answered} within 90 s)`}`);
  agent.destroy();
} finally {
  await sql.end();
  server.kill('SIGTERM');
  await new Promise((resolve) => server.once('exit', resolve));
  await db.close();
  await rm(scratch, { recursive: true, force: true });
}
