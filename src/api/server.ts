import type { Server } from 'node:http';
import { serve } from '@hono/node-server';
import type { Hono } from 'hono';
import { SpoolError } from '../errors.js';
import { HEADERS_TIMEOUT_MS_DEFAULT, REQUEST_TIMEOUT_MS_DEFAULT } from '../config.js';

/** A listening HTTP server for the API. */
export interface ApiServer {
  /** The port it listens on (useful with port 0). */
  port: number;
  /** Stops accepting connections, lets requests in progress finish, closes idle keep-alive connections. */
  close(): Promise<void>;
}

/** Serves `app` (Spool's `createApp`, or your own Hono app that mounts it) on host:port with @hono/node-server. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function startApiServer(
  app: Hono<any, any, any>,
  options: { host: string; port: number; requestTimeoutMs?: number; headersTimeoutMs?: number },
): Promise<ApiServer> {
  return new Promise((resolve, reject) => {
    const headersTimeout = options.headersTimeoutMs ?? HEADERS_TIMEOUT_MS_DEFAULT;
    const serverOptions = {
      // Slow clients (slow-loris): the headers, then the whole request, must arrive in time or the socket closes.
      headersTimeout,
      requestTimeout: Math.max(options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS_DEFAULT, headersTimeout),
      keepAliveTimeout: 5_000,
      // Node checks those timeouts on this interval (30 s by default, which would stretch a 10 s limit to 40).
      connectionsCheckingInterval: 1_000,
    };
    const server = serve({ fetch: app.fetch, hostname: options.host, port: options.port, serverOptions }, (info) => {
      resolve({
        port: info.port,
        close: () =>
          new Promise<void>((done) => {
            (server as Server).close(() => done());
            (server as Server).closeIdleConnections();
          }),
      });
    }) as Server;
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'EADDRINUSE'
          ? new SpoolError('config_invalid', `port ${options.port} on ${options.host} is in use: set SPOOL_PORT to a free port`, { cause: error })
          : error,
      ),
    );
  });
}
