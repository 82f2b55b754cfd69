import { SpoolError } from '../errors.js';

// postgres.js's own codes for a connection that failed or went away, and
// PostgreSQL's (class 08 connection exception; shutdown; too many clients).
const DATABASE_DOWN = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE',
  'CONNECT_TIMEOUT', 'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED',
  '57P01', '57P02', '57P03', '53300',
]);

/** True for errors that mean "the database cannot be reached", as opposed to a bad statement. */
export function isDatabaseDown(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return false;
  return DATABASE_DOWN.has(code) || code.startsWith('08');
}

/** Where a URL points, password masked: `postgres://ann:***@db.internal:5432/app`. */
function describeTarget(url: string | undefined): { host: string; port: string; database: string; shown: string } | undefined {
  if (!url) return undefined;
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return {
      host: parsed.hostname || 'localhost',
      port: parsed.port || '5432',
      database: decodeURIComponent(parsed.pathname.slice(1)) || decodeURIComponent(parsed.username) || 'postgres',
      shown: parsed.toString(),
    };
  } catch {
    return undefined;
  }
}

/**
 * A driver or server error that says the database cannot be used, as a
 * SpoolError naming the host and port (from DATABASE_URL, password
 * masked) and the cause: refused, unknown host, timed out, bad password,
 * missing database (`database_unavailable`), or a schema that was never
 * migrated (`schema_not_migrated`). Undefined for any other error.
 */
export function explainDatabaseError(error: unknown, url: string | undefined, schema = 'spool'): SpoolError | undefined {
  const e = error as { code?: unknown; message?: unknown; hostname?: unknown; address?: unknown; port?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : undefined;
  if (!code) return undefined;
  const target = describeTarget(url);
  const host = target?.host ?? (typeof e?.hostname === 'string' ? e.hostname : typeof e?.address === 'string' ? e.address : 'localhost');
  const port = target?.port ?? (e?.port !== undefined ? String(e.port) : '5432');
  const at = `PostgreSQL at ${host}:${port}${target ? ` (DATABASE_URL=${target.shown})` : ''}`;
  const unavailable = (why: string) => new SpoolError('database_unavailable', `cannot use ${at}: ${why}`, { cause: error });
  switch (code) {
    case 'ECONNREFUSED':
      return unavailable('connection refused: is PostgreSQL running there, and is the port right?');
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return unavailable(`unknown host ${JSON.stringify(host)}: check the host name in DATABASE_URL`);
    case 'ETIMEDOUT':
    case 'CONNECT_TIMEOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return unavailable('no answer (timed out or unreachable): check the host, the port and any firewall in between');
    case '28P01':
      return unavailable('password authentication failed: check the user and password in DATABASE_URL');
    case '28000':
      return unavailable(`the server refused the login (${String(e?.message)}): check the user in DATABASE_URL and the server's pg_hba.conf`);
    case '3D000':
      return unavailable(`database ${JSON.stringify(target?.database ?? '?')} does not exist: create it (createdb) or fix the name in DATABASE_URL`);
    case '53300':
      return unavailable('too many connections: every connection slot is taken; lower SPOOL_POOL_SIZE or raise max_connections');
    case '57P03':
      return unavailable('the server is starting up or shutting down: retry in a moment');
    case '42P01':
    case '3F000':
    case '42883':
      // An undefined table, schema or function of Spool's own.
      if (typeof e?.message === 'string' && e.message.includes(schema)) {
        return new SpoolError('schema_not_migrated', `schema "${schema}" in ${at} is not migrated (${e.message}): run spool migrate`, { cause: error });
      }
      return undefined;
    default:
      return isDatabaseDown(error) ? unavailable(`connection failed (${code}): ${String(e?.message ?? '')}`) : undefined;
  }
}
