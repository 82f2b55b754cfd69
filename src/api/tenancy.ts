import type { Context } from 'hono';
import type { ScopeOptions } from '../client.js';
import type { ApiContext, ApiEnv } from './app.js';
import { requestKey } from './access.js';

/** The tenant of the request's key, or undefined: never from the request itself. */
export function requestTenant(c: Context<ApiEnv>): string | undefined {
  return requestKey(c)?.tenant ?? undefined;
}

/**
 * Runs `fn` with the scope of the request's key: nothing for a key without
 * a tenant; for a tenant-bound key, the tenant (every query filters on it)
 * and a transaction under row-level security (Spool.asTenant). Another
 * tenant's job is then not found: 404, as if it did not exist.
 */
export async function scoped<T>(c: Context<ApiEnv>, ctx: ApiContext, fn: (scope: ScopeOptions) => Promise<T>): Promise<T> {
  const tenant = requestTenant(c);
  if (tenant === undefined) return fn({});
  return ctx.spool.asTenant(tenant, (tx) => fn({ tx, tenant }));
}
