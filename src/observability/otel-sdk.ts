import type { Logger } from './logger.js';

/**
 * Starts the OpenTelemetry SDK when the standard environment asks for it
 * (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT set,
 * OTEL_SDK_DISABLED not "true"): a Node tracer provider with a batching
 * OTLP/HTTP exporter, registered globally with the W3C propagator and an
 * AsyncLocalStorage context manager. The exporter reads the rest of the
 * OTEL_* variables itself (headers, timeout, protocol paths). Returns a
 * function that flushes and stops it, or undefined when tracing stays off:
 * the SDK is then not even loaded.
 */
export async function startTracingFromEnv(env: NodeJS.ProcessEnv, log: Logger): Promise<(() => Promise<void>) | undefined> {
  const endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (!endpoint || env.OTEL_SDK_DISABLED === 'true') return undefined;
  const [{ NodeTracerProvider, BatchSpanProcessor }, { OTLPTraceExporter }, { resourceFromAttributes, defaultResource }] = await Promise.all([
    import('@opentelemetry/sdk-trace-node'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
  ]);
  const provider = new NodeTracerProvider({
    resource: defaultResource().merge(resourceFromAttributes({ 'service.name': env.OTEL_SERVICE_NAME ?? 'spool' })),
    // The URL from `env` (the exporter would read process.env); a base endpoint gets the standard /v1/traces path.
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? `${endpoint.replace(/\/+$/, '')}/v1/traces` }))],
  });
  provider.register();
  log.info({ endpoint }, 'tracing: exporting spans over OTLP/HTTP');
  return async () => {
    await provider.shutdown().catch((error: Error) => log.warn({ err: error }, 'tracing: could not flush the last spans'));
  };
}
