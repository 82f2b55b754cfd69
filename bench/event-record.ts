/**
 * What an event record would cost the no-op drain (issue 15; docs/adr/0009):
 * 50,000 pre-enqueued no-op jobs drained at concurrency 50 on databases that
 * differ only in the record, in interleaved rounds, so every variant sees
 * the same machine at the same time. Variants:
 *   base          Spool as it is
 *   derived       terminal events read from the job_history row the finish
 *                 already writes: a sequence-assigned event id and a BRIN index
 *   appendedBrin  an event row per transition (started, finished) appended in
 *                 the same statements (statement triggers), id by sequence, BRIN
 *   appended      the same with a B-tree primary key on the event id
 *
 *   RUNS=5 DATABASE_URL=postgres://… npx tsx bench/event-record.ts
 */
import { benchDatabase } from './support/database.js';
import { drain, fill, openSpool } from './support/spool.js';

const JOBS = 50_000;
const RUNS = Number(process.env.RUNS ?? 5);
// The claim's UPDATE appends 'started' for the rows it starts; the finish's history INSERT appends their end.
const APPEND_TRIGGERS = `
    CREATE FUNCTION spool.events_started() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO spool.events (job_id, type) SELECT n.id, 'started' FROM new_rows n WHERE n.state = 'running' AND n.started_at = now(); RETURN NULL; END $$;
    CREATE FUNCTION spool.events_finished() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO spool.events (job_id, type) SELECT n.id, n.state::text FROM new_rows n; RETURN NULL; END $$;
    CREATE TRIGGER events_started AFTER UPDATE ON spool.jobs REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION spool.events_started();
    CREATE TRIGGER events_finished AFTER INSERT ON spool.job_history REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION spool.events_finished();`;

// One row per statement and transition, the jobs as arrays, ordered by the writing transaction.
const AGGREGATED = `
    CREATE SEQUENCE spool.job_events_seq;
    CREATE TABLE spool.job_events (xid xid8 NOT NULL DEFAULT pg_current_xact_id(), seq bigint NOT NULL DEFAULT nextval('spool.job_events_seq'),
      at timestamptz NOT NULL DEFAULT now(), type text NOT NULL, ids bigint[] NOT NULL, attempts integer[] NOT NULL,
      queues text[] NOT NULL, kinds text[] NOT NULL, PRIMARY KEY (xid, seq));
    CREATE FUNCTION spool.events_updated() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO spool.job_events (type, ids, attempts, queues, kinds)
      SELECT t.type, array_agg(n.id), array_agg(n.attempt), array_agg(n.queue), array_agg(n.kind)
        FROM new_rows n JOIN old_rows o ON o.id = n.id
       CROSS JOIN LATERAL (SELECT CASE WHEN n.state = 'running' AND o.state <> 'running' THEN 'started'
                                       WHEN o.state = 'running' AND n.state = 'scheduled' THEN 'retrying'
                                       WHEN n.progress IS DISTINCT FROM o.progress THEN 'progress' END AS type) t
       WHERE t.type IS NOT NULL
       GROUP BY t.type;
      RETURN NULL;
    END $$;
    CREATE FUNCTION spool.events_finished() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO spool.job_events (type, ids, attempts, queues, kinds)
      SELECT n.state::text, array_agg(n.id), array_agg(n.attempt), array_agg(n.queue), array_agg(n.kind) FROM new_rows n GROUP BY n.state;
      RETURN NULL;
    END $$;
    CREATE TRIGGER events_updated AFTER UPDATE ON spool.jobs REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION spool.events_updated();
    CREATE TRIGGER events_finished AFTER INSERT ON spool.job_history REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION spool.events_finished();`;

const ALL_VARIANTS: Record<string, string> = {
  base: '',
  aggregated: AGGREGATED,
  // B: terminal events derived from the history row the finish writes: a sequence id and a BRIN index.
  derived: `
    CREATE SEQUENCE spool.event_seq;
    ALTER TABLE spool.job_history ADD COLUMN event_id bigint DEFAULT nextval('spool.event_seq');
    CREATE INDEX job_history_event ON spool.job_history USING brin (event_id);`,
  // A': as A, the event id from a sequence with a BRIN index instead of a B-tree primary key.
  appendedBrin: `
    CREATE SEQUENCE spool.event_seq;
    CREATE TABLE spool.events (id bigint NOT NULL DEFAULT nextval('spool.event_seq'), job_id bigint NOT NULL, type text NOT NULL, at timestamptz NOT NULL DEFAULT now());
    CREATE INDEX events_id ON spool.events USING brin (id);
${APPEND_TRIGGERS}`,
  // A: an append-only event row per transition (started, finished), written in the same statements (statement triggers).
  appended: `
    CREATE TABLE spool.events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, job_id bigint NOT NULL, type text NOT NULL, at timestamptz NOT NULL DEFAULT now());
${APPEND_TRIGGERS}`,
};
// VARIANTS=base,aggregated runs only those.
const VARIANTS = Object.fromEntries(
  Object.entries(ALL_VARIANTS).filter(([name]) => !process.env.VARIANTS || process.env.VARIANTS.split(',').includes(name)),
);

const dbs = await Promise.all(Object.keys(VARIANTS).map(() => benchDatabase()));
console.log(`${JOBS.toLocaleString('en-US')} no-op jobs, concurrency 50, ${RUNS} interleaved rounds; ${dbs[0]!.server}; ${JSON.stringify(dbs[0]!.settings)}`);
try {
  const results: Record<string, number[]> = Object.fromEntries(Object.keys(VARIANTS).map((k) => [k, []]));
  for (const [i, ddl] of Object.values(VARIANTS).entries()) {
    const spool = await openSpool(dbs[i]!.url);
    if (ddl) await spool.sql.unsafe(ddl);
    await spool.close();
  }
  for (let run = 0; run < RUNS; run++) {
    for (const [i, name] of Object.keys(VARIANTS).entries()) {
      const spool = await openSpool(dbs[i]!.url);
      try {
        await spool.sql`TRUNCATE spool.jobs`;
        await fill(spool, JOBS);
        await spool.sql`VACUUM ANALYZE spool.jobs`;
        results[name]!.push(await drain(spool, JOBS, 50, false));
      } finally {
        await spool.close();
      }
    }
  }
  const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
  const base = median(results.base!);
  for (const [name, values] of Object.entries(results)) {
    console.log(`${name}: median ${Math.round(median(values))} jobs/s (${values.map(Math.round).join(', ')}), ${(median(values) / base).toFixed(3)}x`);
  }
} finally {
  for (const db of dbs) await db.close();
}
