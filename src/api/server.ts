import type { Server } from 'node:http';
import { serve } from '@hono/node-server';
import type { Hono } from 'hono';
import { SpoolError } from '../errors.js';

/** A listening HTTP server for the API. */
export interface ApiServer {
  /** The port it listens on (useful with port 0). */
  port: number;
  /** Stops accepting connections, lets requests in progress finish, closes idle keep-alive connections. */
  close(): Promise<void>;
}

/** Serves `app` (Spool's `createApp`, or your own Hono app that mounts it) on host:port with @hono/node-server. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function startApiServer(app: Hono<any, any, any>, options: { host: string; port: number }): Promise<ApiServer> {
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
          ? new SpoolError('config_invalid', `port ${options.port} on ${options.host} is in use: set SPOOL_PORT to a free port`, { cause: error })
          : error,
      ),
    );
  });
}
