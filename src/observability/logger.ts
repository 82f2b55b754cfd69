import pino from 'pino';

export type Logger = pino.Logger;

/**
 * Spool's logger: JSON lines on stdout (pino). Level from `level`, else
 * SPOOL_LOG_LEVEL, else `info`.
 */
export function createLogger(options: { level?: string; name?: string } = {}): Logger {
  return pino({
    name: options.name ?? 'spool',
    level: options.level ?? process.env.SPOOL_LOG_LEVEL ?? 'info',
    base: { pid: process.pid },
  });
}
