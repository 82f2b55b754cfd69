-- 0014: the ends of jobs in the event stream are found by a B-tree on
-- job_history.event_seq, not a BRIN (docs/adr/0009-event-record.md).
--
-- A BRIN range is summarized only by VACUUM (or autosummarize, which needs
-- autovacuum); until then every lookup reads all of the table's pages
-- written since the last summary. Readers look up exactly those newest
-- rows, so a reader of a busy stream scanned up to a minute of history per
-- page of events (and with autovacuum off, everything written since the
-- last manual VACUUM). A B-tree finds a statement's rows in a few pages
-- whatever vacuum has done; measured side by side, it cost the no-op drain
-- no more than the BRIN did (docs/performance.md).
DROP INDEX :SPOOL_SCHEMA.job_history_event_seq;
CREATE INDEX job_history_event_seq ON :SPOOL_SCHEMA.job_history (event_seq);

-- events_after() reads its range of job_events by the primary key: the
-- row comparison alone left the planner an open range on xid, which it
-- takes (without statistics) for a third of the table, and scanned all of
-- it. `xid >= p_xid` closes the range. Otherwise as in 0013.
CREATE OR REPLACE FUNCTION :SPOOL_SCHEMA.events_after(p_xid xid8, p_seq bigint, p_pos bigint, p_limit integer DEFAULT 100)
RETURNS TABLE (xid xid8, seq bigint, pos bigint, at timestamptz, type text, job_id bigint, attempt integer,
               queue text, kind text, group_key text, tenant text, data jsonb, hooked boolean,
               result jsonb, errors jsonb)
LANGUAGE sql STABLE AS $$
  SELECT e.xid, e.seq, u.pos, e.at, u.type, u.id, u.attempt, u.queue, u.kind, u.group_key, u.tenant, u.data, u.hooked,
         u.result, u.errors
    FROM (SELECT * FROM :SPOOL_SCHEMA.job_events
           WHERE (job_events.xid, job_events.seq) >= (p_xid, p_seq)
             AND job_events.xid >= p_xid
             AND job_events.xid < pg_snapshot_xmin(pg_current_snapshot())
           ORDER BY job_events.xid, job_events.seq
           LIMIT p_limit) e
   CROSS JOIN LATERAL (
     SELECT a.id, a.attempt, a.pos, e.type, e.queue, e.kind, e.group_key, e.tenant,
            e.data -> (a.pos::integer - 1) AS data, a.id = ANY(e.hooked) AS hooked, NULL::jsonb AS result, NULL::jsonb AS errors
       FROM unnest(e.ids, e.attempts) WITH ORDINALITY AS a(id, attempt, pos)
      WHERE e.type <> 'finished'
     UNION ALL
     SELECT h.id, h.attempt, h.id, h.state::text, h.queue, h.kind, h.group_key, h.tenant,
            NULL, h.metadata ? 'webhook', h.result, h.errors
       FROM :SPOOL_SCHEMA.job_history h
      WHERE e.type = 'finished' AND h.event_seq = e.seq AND h.finished_at = e.at
   ) u
   WHERE (e.xid, e.seq, u.pos) > (p_xid, p_seq, p_pos)
   ORDER BY e.xid, e.seq, u.pos
$$;
