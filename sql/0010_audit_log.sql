-- 0010: the audit log (docs/security.md, "Audit log").
--
-- One row per state-changing request to the API that got past the key
-- check (and per refusal of a known key), and per key change made with the
-- CLI: when, which key (id and name, never the secret), its role and
-- tenant, the action and its target, the outcome, the client address and
-- the request id. Rows older than the `audit` retention (90 days; the
-- defaults row of `retention`) are deleted by the pruner in batches.
CREATE TABLE :SPOOL_SCHEMA.audit_log (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at          timestamptz NOT NULL DEFAULT now(),
  key_id      bigint,
  key_name    text,
  role        text,
  tenant      text COLLATE "C",
  action      text COLLATE "C" NOT NULL,
  target      text,
  -- ok, refused (the key may not: 403), failed (any other 4xx/5xx)
  result      text NOT NULL,
  status      integer,
  client      text,
  request_id  text,
  details     jsonb NOT NULL DEFAULT '{}',
  CONSTRAINT audit_log_result CHECK (result IN ('ok', 'refused', 'failed')),
  CONSTRAINT audit_log_action_format CHECK (action ~ '^[a-z]+(\.[a-z]+)*$' AND length(action) <= 64),
  CONSTRAINT audit_log_details_object CHECK (jsonb_typeof(details) = 'object')
);
CREATE INDEX audit_log_at ON :SPOOL_SCHEMA.audit_log (at);
CREATE INDEX audit_log_action ON :SPOOL_SCHEMA.audit_log (action, id);

COMMENT ON TABLE :SPOOL_SCHEMA.audit_log IS 'Who changed what through the API or spool keys: GET /audit, spool audit.';

ALTER TABLE :SPOOL_SCHEMA.retention ADD COLUMN audit interval;
UPDATE :SPOOL_SCHEMA.retention SET audit = interval '90 days' WHERE queue = '*';
ALTER TABLE :SPOOL_SCHEMA.retention
  ADD CONSTRAINT retention_audit_on_defaults CHECK (audit IS NULL OR (queue = '*' AND audit > interval '0'));
