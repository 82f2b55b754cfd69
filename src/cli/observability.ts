import type { SpoolConfig } from '../config.js';
import { createLogger, type Logger } from '../observability/logger.js';
import { SpoolMetrics } from '../observability/metrics.js';
import { startTracingFromEnv } from '../observability/otel-sdk.js';

/** A server process's logger, metrics and tracing, from its configuration and the OTEL_* environment. */
export interface ProcessObservability {
  log: Logger;
  /** Undefined when SPOOL_METRICS=false. */
  metrics: SpoolMetrics | undefined;
  /** Flushes the last spans (if tracing runs). */
  stop(): Promise<void>;
}

export async function processObservability(config: SpoolConfig): Promise<ProcessObservability> {
  const log = createLogger({ level: config.logLevel, format: config.logFormat });
  const metrics = config.metrics ? new SpoolMetrics() : undefined;
  const stopTracing = await startTracingFromEnv(process.env, log);
  return { log, metrics, stop: async () => stopTracing?.() };
}
