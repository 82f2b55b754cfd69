import { createServer, type Server } from 'node:http';
import type { SpoolMetrics } from './metrics.js';
import { SpoolError } from '../errors.js';

/** True for the error startMetricsServer gives when its port is taken. */
export function isPortInUse(error: unknown): boolean {
  return error instanceof SpoolError && (error.cause as NodeJS.ErrnoException | undefined)?.code === 'EADDRINUSE';
}

/**
 * A small HTTP server for processes without the API (`spool work`):
 * GET /metrics (Prometheus text) and GET /healthz. Nothing else.
 */
export async function startMetricsServer(metrics: SpoolMetrics, options: { host: string; port: number }): Promise<{ port: number; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/metrics') {
      metrics.text().then(
        (text) => res.writeHead(200, { 'Content-Type': metrics.contentType }).end(text),
        (error: Error) => res.writeHead(500, { 'Content-Type': 'text/plain' }).end(`metrics failed: ${error.message}\n`),
      );
    } else if (req.method === 'GET' && path === '/healthz') {
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"status":"ok"}');
    } else {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found: this port serves GET /metrics and GET /healthz\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'EADDRINUSE'
          ? new SpoolError('config_invalid', `metrics port ${options.port} on ${options.host} is in use: set SPOOL_METRICS_PORT to a free port (0 picks one)`, { cause: error })
          : error,
      ),
    );
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : options.port,
    close: () =>
      new Promise<void>((done) => {
        server.close(() => done());
        server.closeAllConnections();
      }),
  };
}
