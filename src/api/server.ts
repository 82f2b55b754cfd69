import type { Server } from 'node:http';
import { serve } from '@hono/node-server';
import type { Hono } from 'hono';
import type { ApiEnv } from './app.js';

/** A listening HTTP server for the API. */
export interface ApiServer {
  /** The port it listens on (useful with port 0). */
  port: number;
  /** Stops accepting connections, lets requests in progress finish, closes idle keep-alive connections. */
  close(): Promise<void>;
}

/** Serves `app` on host:port with @hono/node-server. */
export async function startApiServer(app: Hono<ApiEnv>, options: { host: string; port: number }): Promise<ApiServer> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch, hostname: options.host, port: options.port }, (info) => {
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
          ? new Error(`port ${options.port} on ${options.host} is in use: set SPOOL_PORT to a free port`)
          : error,
      ),
    );
  });
}
