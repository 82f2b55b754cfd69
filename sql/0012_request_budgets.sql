-- 0012: request budgets of the API, per key and per tenant (docs/security.md,
-- "Request rate limits"; docs/adr/0008-request-budgets.md).
--
-- Fixed windows of requests, shared by every API process: each adds what it
-- admitted every 100 ms and reads back the total. UNLOGGED: a count lost in
-- a crash costs a client a few extra requests in one window, and writing
-- WAL for it would cost every API request more than the budget saves.
CREATE UNLOGGED TABLE :SPOOL_SCHEMA.api_request_windows (
  -- 'key:<id>' or 'tenant:<name>'
  scope        text COLLATE "C" NOT NULL,
  -- the window's start, ms since the epoch
  window_start bigint NOT NULL,
  n            integer NOT NULL,
  PRIMARY KEY (scope, window_start)
);
COMMENT ON TABLE :SPOOL_SCHEMA.api_request_windows IS 'Requests per API key and tenant per window, summed over API processes (SPOOL_KEY_RATE_LIMIT).';
