import type { Hono } from 'hono';
import type { ApiContext, ApiEnv } from '../app.js';

/** Longest a readiness check waits for the database. */
const READY_TIMEOUT_MS = 2_000;

/**
 * GET /healthz: the process is alive (no database round trip, so a slow
 * database does not get the process restarted). GET /readyz: the database
 * answers, its schema is migrated to this version, and (where this process
 * runs workers) the LISTEN connection is up; 503 names the failing checks.
 */
export function registerHealthRoutes(app: Hono<ApiEnv>, ctx: ApiContext): void {
  app.get('/healthz', (c) => c.json({ status: 'ok' }));

  app.get('/readyz', async (c) => {
    const checks: Record<string, { ok: boolean; message: string }> = {};
    try {
      const status = await withTimeout(ctx.spool.migrationStatus(), READY_TIMEOUT_MS);
      checks.database = { ok: true, message: 'reachable' };
      checks.migrations = status.current
        ? { ok: true, message: `${status.applied.length} applied` }
        : { ok: false, message: `pending: ${status.pending.join(', ') || 'unknown migrations applied'}; run spool migrate` };
    } catch (error) {
      checks.database = { ok: false, message: `unreachable: ${(error as Error).message}` };
      checks.migrations = { ok: false, message: 'unknown: the database is unreachable' };
    }
    if (ctx.listenerConnected) {
      checks.listener = ctx.listenerConnected()
        ? { ok: true, message: 'connected' }
        : { ok: false, message: 'disconnected: reconnecting (jobs still start through the fallback poll)' };
    }
    const ready = Object.values(checks).every((check) => check.ok);
    return c.json({ status: ready ? 'ready' : 'not_ready', checks }, ready ? 200 : 503);
  });
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
