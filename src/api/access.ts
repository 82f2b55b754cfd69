import { createHash } from 'node:crypto';
import type { Context, Hono, MiddlewareHandler } from 'hono';
import { matchedRoutes } from 'hono/route';
import { allows, type ApiKey, type KeyStore, type Permission } from '../auth/keys.js';
import type { ApiEnv } from './app.js';
import { ApiProblem } from './problems.js';
import type { RequestBudget } from './request-budget.js';

/** A route's access: open to anyone who reaches the port, or a permission a key's role must grant. */
export type Access = Permission | 'open';

/**
 * What every route needs, by method and path as registered (docs/security.md).
 * A route missing here is refused (403), and a test checks that none is.
 */
export const ROUTE_ACCESS: Record<string, Access> = {
  'GET /healthz': 'open',
  'GET /readyz': 'open',
  'GET /metrics': 'read',
  'GET /openapi.json': 'read',
  'GET /docs': 'read',
  'GET /docs/init.js': 'read',
  'GET /docs/:asset': 'read',
  'POST /jobs': 'enqueue',
  'POST /jobs/batch': 'enqueue',
  'GET /jobs': 'read',
  'GET /jobs/:id': 'read',
  'DELETE /jobs/:id': 'operate',
  'POST /jobs/:id/retry': 'operate',
  'GET /queues': 'read',
  'POST /queues/:queue/pause': 'operate',
  'POST /queues/:queue/resume': 'operate',
  'GET /dead': 'read',
  'POST /dead/replay': 'operate',
  'DELETE /dead': 'operate',
  'GET /kinds': 'read',
  'POST /maintenance/prune': 'operate',
  'GET /schedules': 'read',
  'GET /schedules/:name': 'read',
  'PUT /schedules/:name': 'operate',
  'POST /schedules/:name/pause': 'operate',
  'POST /schedules/:name/resume': 'operate',
  'POST /schedules/:name/trigger': 'operate',
  'DELETE /schedules/:name': 'operate',
  'GET /limits': 'read',
  'PUT /limits/:scope/:name': 'operate',
  'DELETE /limits/:scope/:name': 'operate',
  'GET /groups': 'read',
  'PUT /groups/:name': 'operate',
  'DELETE /groups/:name': 'operate',
  'GET /keys': 'admin',
  'POST /keys': 'admin',
  'DELETE /keys/:id': 'admin',
  'POST /keys/:id/rotate': 'admin',
  'GET /audit': 'admin',
  'GET /events': 'read',
  'GET /webhooks': 'admin',
  'POST /webhooks': 'admin',
  'GET /webhooks/:id': 'admin',
  'DELETE /webhooks/:id': 'admin',
  'POST /webhooks/:id/rotate': 'admin',
  'POST /webhooks/:id/pause': 'admin',
  'POST /webhooks/:id/resume': 'admin',
  'GET /webhooks/:id/deliveries': 'admin',
  'POST /webhooks/:id/replay': 'admin',
};

/**
 * The routes a key bound to a tenant may use: its own jobs, its dead jobs,
 * its queues' counts, and what holds no data. Every other route acts on
 * what all tenants share (queues' pause, schedules, limits, keys, metrics,
 * the audit log) and answers 403 to such a key (fail closed: a new route is
 * refused to tenant keys until it is listed here and scoped).
 */
export const TENANT_ROUTES: ReadonlySet<string> = new Set([
  'GET /healthz', 'GET /readyz', 'GET /openapi.json', 'GET /docs', 'GET /docs/init.js', 'GET /docs/:asset',
  'POST /jobs', 'POST /jobs/batch', 'GET /jobs', 'GET /jobs/:id', 'DELETE /jobs/:id', 'POST /jobs/:id/retry',
  'GET /queues', 'GET /dead', 'POST /dead/replay', 'DELETE /dead', 'GET /events',
]);

/** Paths that `docsPublic` opens: the Swagger UI and the OpenAPI document hold no data. */
const DOCS_ROUTES = ['GET /openapi.json', 'GET /docs', 'GET /docs/init.js', 'GET /docs/:asset'];

/** `keys`: every route but the open ones needs a key (the default). `off`: no checks at all (say so loudly). */
export type AuthMode = 'keys' | 'off';

export interface AccessOptions {
  mode: AuthMode;
  keys: KeyStore;
  /** Requests per key and tenant (ADR 0008); none: unlimited. */
  budget?: RequestBudget;
  /** Open the API docs (GET /docs, /openapi.json) without a key. */
  docsPublic?: boolean;
}

/** How long a verified key is trusted without asking the database again: a revoked key stops working within this. */
export const KEY_CACHE_MS = 5_000;
const KEY_CACHE_MAX = 1_000;

/** The API key of the request, set by the access check (undefined when auth is off or the route is open). */
export function requestKey(c: Context<ApiEnv>): ApiKey | undefined {
  return c.get('apiKey');
}

/**
 * Registers, before the routes, one access check per route of ROUTE_ACCESS,
 * and a last check that refuses any matched route that has none (fail closed).
 * Call it before the routes are registered: Hono runs handlers in
 * registration order.
 */
export function registerAccessChecks(app: Hono<ApiEnv>, options: AccessOptions): void {
  const cache = new Map<string, { key: ApiKey; at: number }>();
  const authenticate = async (c: Context<ApiEnv>): Promise<ApiKey> => {
    const header = c.req.header('authorization');
    if (!header) {
      throw new ApiProblem(401, 'unauthorized', 'this route needs an API key: send Authorization: Bearer spool_… (create one with spool keys create --role <role>)');
    }
    const match = /^Bearer +(\S+)$/i.exec(header);
    if (!match) throw new ApiProblem(401, 'unauthorized', 'expected the header Authorization: Bearer <key>');
    const token = match[1]!;
    const digest = createHash('sha256').update(token).digest('hex');
    const cached = cache.get(digest);
    if (cached && performance.now() - cached.at < KEY_CACHE_MS && (!cached.key.expiresAt || cached.key.expiresAt > new Date())) return cached.key;
    const key = await options.keys.verify(token);
    if (!key) {
      cache.delete(digest);
      throw new ApiProblem(401, 'unauthorized', 'the API key is unknown, revoked or expired');
    }
    if (cache.size >= KEY_CACHE_MAX) cache.delete(cache.keys().next().value!);
    cache.set(digest, { key, at: performance.now() });
    return key;
  };
  const check = (access: Access, route: string): MiddlewareHandler<ApiEnv> => async (c, next) => {
    c.set('accessChecked', true);
    if (access === 'open' || options.mode === 'off') return next();
    const key = await authenticate(c);
    // Known before the role check, so a refusal is audited with the key that tried.
    c.set('apiKey', key);
    const retryAfter = options.budget?.take(key.id, key.tenant);
    if (retryAfter !== undefined) {
      throw new ApiProblem(429, 'rate_limited', `this key${key.tenant === null ? '' : ' or its tenant'} used its request budget (SPOOL_KEY_RATE_LIMIT, SPOOL_TENANT_RATE_LIMIT); retry after ${retryAfter} s`, [], retryAfter);
    }
    if (!allows(key.role, access)) {
      throw new ApiProblem(403, 'forbidden', `a ${key.role} key may not ${access} (${c.req.method} ${c.req.path}); use a key whose role allows it (docs/security.md)`);
    }
    if (key.tenant !== null && !TENANT_ROUTES.has(route)) {
      throw new ApiProblem(403, 'forbidden', `a key bound to a tenant may not use ${route}: it acts on what every tenant shares; use a key without a tenant (docs/security.md#tenants)`);
    }
    return next();
  };
  for (const [route, declared] of Object.entries(ROUTE_ACCESS)) {
    const [method, path] = route.split(' ') as [string, string];
    const access = options.docsPublic && DOCS_ROUTES.includes(route) ? 'open' : declared;
    app.on(method, path, check(access, route));
  }
  app.use('*', async (c, next) => {
    const endpoint = matchedRoutes(c).some((r) => r.method !== 'ALL');
    if (endpoint && !c.get('accessChecked')) throw new ApiProblem(403, 'forbidden', `${c.req.method} ${c.req.path} declares no access rule and is refused`);
    return next();
  });
}
