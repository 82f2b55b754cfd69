/**
 * The claim's own cost, without workers (docs/performance.md, "Flow
 * control"): 50,000 jobs over 100 groups, then CLAIMS claims of SIZE jobs,
 * one after another on one connection, each committed on its own. Plain
 * queue against a fair queue with a rate limit too high to bind (the drain
 * figure's setting), in interleaved rounds. Prints the time per claimed job
 * (wall time of the statements on an otherwise idle server, so nearly all
 * of it is server time).
 *
 *   DATABASE_URL=… npm run bench:claim-cost      (RUNS=5, CLAIMS=90, SIZE=525)
 */
import { performance } from 'node:perf_hooks';
import type { Spool } from '../src/index.js';
import { claimSql } from '../src/queries/claim.js';
import { claimFlowSql, flowGroupsSql } from '../src/queries/flow.js';
import { benchDatabase } from './support/database.js';
import { openSpool, spoolBuild } from './support/spool.js';

const positive = (name: string, fallback: number): number => {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name}=${process.env[name]}: expected a whole number of at least 1`);
  return value;
};
const RUNS = positive('RUNS', 5);
const CLAIMS = positive('CLAIMS', 90);
const SIZE = positive('SIZE', 525);
if (CLAIMS * SIZE > 50_000) throw new Error(`CLAIMS × SIZE = ${CLAIMS * SIZE}: at most 50,000 (the jobs enqueued per round)`);
const fmt = (n: number, digits = 1) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function round(spool: Spool, flow: boolean): Promise<number> {
  await spool.sql`TRUNCATE spool.jobs`;
  await spool.sql`TRUNCATE spool.job_history`;
  await spool.sql`DELETE FROM spool.limits`;
  for (let done = 0; done < 50_000; done += 10_000) {
    await spool.enqueueMany(Array.from({ length: 10_000 }, (_, i) => ({ job: 'bench.noop', payload: { n: done + i }, group: `g${(done + i) % 100}` })));
  }
  if (flow) await spool.limits.set('queue', 'default', { rate: { limit: 1_000_000, windowMs: 1000 }, fair: true });
  await spool.sql`VACUUM ANALYZE spool.jobs`;
  // As a worker would: the fair queue's group list, kept between claims.
  const [{ groups }] = (await spool.sql.unsafe(flowGroupsSql('spool'), ['default'])) as unknown as [{ groups: string[] }];
  let claimed = 0;
  let ms = 0;
  for (let i = 0; i < CLAIMS; i++) {
    const started = performance.now();
    const rows = flow
      ? await spool.sql.unsafe(claimFlowSql('spool'), ['default', ['bench.noop'], SIZE, 'bench', 60_000, groups])
      : await spool.sql.unsafe(claimSql('spool'), [['default'], ['bench.noop'], SIZE, 'bench', 60_000]);
    ms += performance.now() - started;
    claimed += rows.filter((row) => row.id !== null).length;
  }
  if (claimed !== CLAIMS * SIZE) throw new Error(`${flow ? 'flow' : 'plain'} claims took ${claimed} jobs, expected ${CLAIMS * SIZE}`);
  return (ms * 1000) / claimed;
}

const database = await benchDatabase();
const spool = await openSpool(database.url);
try {
  console.log(`node ${process.version}; Spool from ${spoolBuild}; ${database.server}; ${JSON.stringify(database.settings)}`);
  console.log(`${CLAIMS} claims of ${SIZE} from 50,000 jobs over 100 groups, one connection, median of ${RUNS} interleaved rounds`);
  const plain: number[] = [];
  const flow: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    plain.push(await round(spool, false));
    flow.push(await round(spool, true));
  }
  console.log(`   plain claim: ${fmt(median(plain))} µs per job (${plain.map((v) => fmt(v)).join(', ')})`);
  console.log(`   claim_flow (fair, rate 1,000,000/s): ${fmt(median(flow))} µs per job (${flow.map((v) => fmt(v)).join(', ')})`);
  console.log(`   ratio: ${fmt(median(flow) / median(plain), 2)}x the plain claim's cost`);
} finally {
  await spool.close();
  await database.close();
}
