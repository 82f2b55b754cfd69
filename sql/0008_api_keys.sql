-- 0008: API keys (docs/security.md).
--
-- A key is `spool_<prefix>_<secret>`. The row keeps the prefix (to find the
-- row) and the SHA-256 of the secret, never the secret: the secret is 32
-- random bytes, so a fast hash is enough (no password to stretch), and the
-- API compares hashes in constant time. A key is shown once, when created.
CREATE TABLE :SPOOL_SCHEMA.api_keys (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  prefix       text COLLATE "C" NOT NULL UNIQUE,
  secret_hash  bytea NOT NULL,
  name         text NOT NULL,
  role         text NOT NULL,
  tenant       text COLLATE "C",
  created_at   timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz,
  revoked_at   timestamptz,
  last_used_at timestamptz,
  -- The key this one replaced (spool keys rotate).
  rotated_from bigint REFERENCES :SPOOL_SCHEMA.api_keys (id),
  CONSTRAINT api_keys_role CHECK (role IN ('admin', 'operator', 'producer', 'reader')),
  CONSTRAINT api_keys_prefix_format CHECK (prefix ~ '^[a-z0-9]{12}$'),
  CONSTRAINT api_keys_hash_size CHECK (octet_length(secret_hash) = 32),
  CONSTRAINT api_keys_name_format CHECK (length(name) BETWEEN 1 AND 128 AND name !~ '[[:cntrl:]]'),
  CONSTRAINT api_keys_tenant_format CHECK (tenant IS NULL OR (length(tenant) BETWEEN 1 AND 128 AND tenant !~ '[[:cntrl:]]'))
);

COMMENT ON TABLE :SPOOL_SCHEMA.api_keys IS 'API keys: prefix and SHA-256 of the secret, role, tenant. Create with `spool keys create`.';
