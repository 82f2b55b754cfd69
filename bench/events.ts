/**
 * What the event record costs the drain (issue 15; docs/adr/0009): 50,000
 * pre-enqueued no-op jobs drained at concurrency 50 by
 *   before      Spool built from BASE_DIST (the commit before the event record)
 *   after       this Spool, nobody subscribed
 *   subscribed  this Spool with one subscriber to every event, reading them all
 * on databases of one server that differ only in that, in interleaved rounds.
 *
 *   git worktree add /tmp/spool-base <commit> && ln -s $PWD/node_modules /tmp/spool-base/ \
 *     && (cd /tmp/spool-base && npx tsc -p tsconfig.build.json)
 *   npm run build && BASE_DIST=/tmp/spool-base/dist RUNS=7 DATABASE_URL=postgres://… npx tsx bench/events.ts
 */
import { z } from 'zod';
import { benchDatabase } from './support/database.js';
import { drain, fill, openSpool, spoolBuild, spoolModule } from './support/spool.js';

const JOBS = Number(process.env.JOBS ?? 50_000);
const RUNS = Number(process.env.RUNS ?? 7);
const baseDist = process.env.BASE_DIST;
if (!baseDist) throw new Error('set BASE_DIST to the dist/ folder of Spool built from the commit before the event record');
const baseModule = (await import(new URL('src/index.js', `file://${baseDist.replace(/\/?$/, '/')}`).href)) as typeof spoolModule;

const VARIANTS = {
  before: { module: baseModule, subscribe: false },
  after: { module: spoolModule, subscribe: false },
  ...(process.env.SUBSCRIBED === "0" ? {} : { subscribed: { module: spoolModule, subscribe: true } }),
} as const;
type Variant = keyof typeof VARIANTS;

const dbs = await Promise.all(Object.keys(VARIANTS).map(() => benchDatabase()));
console.log(`${JOBS.toLocaleString('en-US')} no-op jobs, concurrency 50, ${RUNS} interleaved rounds; ${spoolBuild}; ${dbs[0]!.server}; ${JSON.stringify(dbs[0]!.settings)}`);
try {
  const results = Object.fromEntries(Object.keys(VARIANTS).map((k) => [k, [] as number[]])) as Record<Variant, number[]>;
  const seen: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    for (const [i, [name, variant]] of Object.entries(VARIANTS).entries()) {
      const spool = await openSpool(dbs[i]!.url, { module: variant.module });
      const noop = variant.module.defineJob({ kind: 'bench.noop', schema: z.object({ n: z.number() }), handler: () => undefined });
      try {
        // Every round starts from empty tables, so growth between rounds is no variant's cost.
        await spool.sql`TRUNCATE spool.jobs, spool.job_history`;
        await spool.sql.unsafe(`DO $$ BEGIN IF to_regclass('spool.job_events') IS NOT NULL THEN TRUNCATE spool.job_events; END IF; END $$`);
        await fill(spool, JOBS, noop);
        await spool.sql`VACUUM ANALYZE spool.jobs`;
        let stop = () => {};
        let events = 0;
        let reading: Promise<void> = Promise.resolve();
        if (variant.subscribe) {
          const controller = new AbortController();
          stop = () => controller.abort();
          const stream = (spool as any).events({ signal: controller.signal });
          reading = (async () => {
            for await (const _event of stream) events++;
          })();
          await (spool as any).eventHub.ready();
        }
        results[name as Variant].push(await drain(spool, JOBS, 50, false, variant.module));
        if (variant.subscribe) {
          // The subscriber keeps reading until it has the started and completed of every job.
          const deadline = Date.now() + 60_000;
          while (events < 2 * JOBS && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
          stop();
          await reading;
          seen.push(events);
        }
      } finally {
        await spool.close();
      }
    }
  }
  const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
  const base = median(results.before);
  for (const [name, values] of Object.entries(results)) {
    console.log(`${name}: median ${Math.round(median(values))} jobs/s (${values.map(Math.round).join(', ')}), ${(median(values) / base).toFixed(3)}x`);
  }
  if (seen.length) console.log(`subscriber received ${seen.join(', ')} events (${2 * JOBS} started and completed per round)`);
} finally {
  for (const db of dbs) await db.close();
}
