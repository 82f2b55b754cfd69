import type { Hono } from 'hono';
import { cors } from 'hono/cors';
import { secureHeaders } from 'hono/secure-headers';
import type { ApiEnv } from './app.js';
import { ApiProblem } from './problems.js';

export interface WebSafetyOptions {
  /**
   * Host names (or addresses) the API answers to, compared with the Host
   * header without its port; `*` answers to any. A request for another host
   * is refused (400), which is what defeats DNS rebinding.
   */
  allowedHosts: string[];
  /** Origins (scheme://host[:port]) allowed to call the API from a browser (CORS); none by default. */
  corsOrigins: string[];
}

/** Names that always mean this machine. */
export const LOOPBACK_HOSTS = ['localhost', '127.0.0.1', '[::1]', '::1'];

const WILDCARD_BINDS = ['0.0.0.0', '::', '[::]'];

export function isLoopback(host: string): boolean {
  return LOOPBACK_HOSTS.includes(host.toLowerCase()) || /^127\./.test(host);
}

/**
 * The default allow-list for a bind address: the loopback names, plus the
 * address itself; any host for a wildcard bind (0.0.0.0, ::), where the
 * names clients use are not known and every route but the health checks
 * needs a key anyway.
 */
export function defaultAllowedHosts(bind: string): string[] {
  if (WILDCARD_BINDS.includes(bind)) return ['*'];
  return [...new Set([...LOOPBACK_HOSTS, bind.toLowerCase()])];
}

/** `example.com:8080` → `example.com`; `[::1]:8080` → `[::1]`. */
function hostname(header: string): string {
  const host = header.trim().toLowerCase();
  if (host.startsWith('[')) return host.slice(0, host.indexOf(']') + 1);
  const colon = host.lastIndexOf(':');
  return colon === -1 ? host : host.slice(0, colon);
}

const SAFE_METHODS = ['GET', 'HEAD', 'OPTIONS'];

/**
 * Host allow-list, cross-site refusal for state-changing requests, CORS
 * (off unless origins are configured) and the standard security headers.
 */
export function registerWebSafety(app: Hono<ApiEnv>, options: WebSafetyOptions): void {
  const anyHost = options.allowedHosts.includes('*');
  const hosts = new Set(options.allowedHosts.map((h) => h.toLowerCase()));
  const origins = new Set(options.corsOrigins);
  app.use(secureHeaders({ crossOriginResourcePolicy: options.corsOrigins.length > 0 ? 'cross-origin' : 'same-origin' }));
  if (options.corsOrigins.length > 0) {
    app.use(cors({
      origin: options.corsOrigins,
      allowMethods: ['GET', 'POST', 'PUT', 'DELETE'],
      allowHeaders: ['Authorization', 'Content-Type', 'Idempotency-Key', 'X-Request-Id', 'traceparent', 'tracestate'],
      exposeHeaders: ['X-Request-Id', 'Retry-After'],
      maxAge: 600,
    }));
  }
  app.use(async (c, next) => {
    const host = c.req.header('host');
    if (!anyHost && host !== undefined && !hosts.has(hostname(host))) {
      throw new ApiProblem(400, 'host_not_allowed', `this API does not answer to the host ${JSON.stringify(hostname(host))}: add it to SPOOL_ALLOWED_HOSTS`);
    }
    if (!SAFE_METHODS.includes(c.req.method)) {
      // Browsers send Origin (and Sec-Fetch-Site) on cross-site writes; other clients send neither.
      const origin = c.req.header('origin');
      if (origin !== undefined && !origins.has(origin)) {
        let sameOrigin = false;
        try {
          sameOrigin = host !== undefined && new URL(origin).host.toLowerCase() === host.trim().toLowerCase();
        } catch {
          // Origin: null, or not a URL
        }
        if (!sameOrigin) {
          throw new ApiProblem(403, 'origin_not_allowed', `requests that change state are refused from the origin ${JSON.stringify(origin)}: add it to SPOOL_CORS_ORIGINS to allow it`);
        }
      } else if (origin === undefined && c.req.header('sec-fetch-site') === 'cross-site') {
        throw new ApiProblem(403, 'origin_not_allowed', 'cross-site requests that change state are refused: add the site\'s origin to SPOOL_CORS_ORIGINS to allow it');
      }
    }
    return next();
  });
}
