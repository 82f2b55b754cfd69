import pino from 'pino';
import pretty from 'pino-pretty';
import { trace } from '@opentelemetry/api';
import { traceLogFields, tracingEnabled } from './tracing.js';

export type Logger = pino.Logger;

export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export interface LoggerOptions {
  /** Default: SPOOL_LOG_LEVEL, else `info`. */
  level?: string;
  name?: string;
  /**
   * `json` (one JSON object per line), `pretty` (coloured, for people), or
   * `auto` (default: pretty when stdout is a terminal, JSON otherwise, so
   * containers and log shippers always get JSON).
   */
  format?: LogFormat;
  /** Where lines go (stdout). Tests pass a stream to read them back. */
  destination?: pino.DestinationStream;
}

/**
 * Spool's logger: JSON lines on stdout (pino). Every line written while an
 * OpenTelemetry span is active carries its `trace_id` and `span_id` (API
 * request lines, a handler's own lines), so logs and traces join up.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const format = options.format ?? (process.env.SPOOL_LOG_FORMAT as LogFormat | undefined) ?? 'auto';
  const usePretty = format === 'pretty' || (format === 'auto' && !options.destination && process.stdout.isTTY === true);
  const destination = usePretty ? pretty({ colorize: true, destination: options.destination ?? 1 }) : options.destination;
  const settings: pino.LoggerOptions = {
    name: options.name ?? 'spool',
    level: options.level ?? process.env.SPOOL_LOG_LEVEL ?? 'info',
    base: { pid: process.pid },
    mixin: activeTraceFields,
  };
  return destination ? pino(settings, destination) : pino(settings);
}

/** trace_id and span_id of the active span, unless the line already names them. */
function activeTraceFields(_merge: object, _level: number, logger: pino.Logger): { trace_id?: string; span_id?: string } {
  if (!tracingEnabled()) return {};
  const span = trace.getActiveSpan();
  // A job's child logger binds its own span's ids: do not repeat them.
  if (!span || (logger.bindings() as { trace_id?: string }).trace_id) return {};
  return traceLogFields(span, null);
}
