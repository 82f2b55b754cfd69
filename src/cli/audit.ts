import { hostname, userInfo } from 'node:os';
import type { AuditRecord } from '../audit/log.js';
import type { Spool } from '../client.js';

/** Who a CLI change is written as: no API key did it; the database user on this host did, as this OS user. */
function cliClient(): string {
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry (some containers)
  }
  return `cli:${user}@${hostname()}`;
}

/** An audit row for a change made with the CLI. */
export function cliAudit(action: string, target: string | null, details: Record<string, unknown> = {}, result: AuditRecord['result'] = 'ok'): AuditRecord {
  return { keyId: null, keyName: null, role: null, tenant: null, action, target, result, status: null, client: cliClient(), requestId: null, details };
}

/**
 * Runs a CLI change and writes its audit row (docs/security.md, "Audit log"),
 * as the API does for the same action: `ok` with what `details` makes of the
 * result, or `failed` with the error's message, which is then rethrown.
 */
export async function audited<T>(
  spool: Spool,
  action: string,
  target: string | null,
  change: () => Promise<T>,
  details: (result: T) => Record<string, unknown> = () => ({}),
): Promise<T> {
  let result: T;
  try {
    result = await change();
  } catch (error) {
    await spool.audit.record(cliAudit(action, target, { error: (error as Error).message?.slice(0, 500) }, 'failed')).catch(() => {});
    throw error;
  }
  await spool.audit.record(cliAudit(action, target, details(result)));
  return result;
}
