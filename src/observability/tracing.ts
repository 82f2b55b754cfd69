import {
  ProxyTracerProvider,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  context,
  isSpanContextValid,
  trace,
  type Context,
  type Span,
} from '@opentelemetry/api';

/** W3C trace context: version 00, trace id, parent span id, flags. */
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
/** The no-op provider the API falls back to when no SDK registered one. */
const NOOP_PROVIDER = new ProxyTracerProvider().getDelegate();

/**
 * True when an OpenTelemetry SDK registered a tracer provider. The worker
 * checks it per claim batch, and with no SDK makes no span at all (not even
 * a non-recording one): tracing off costs nothing per job.
 */
export function tracingEnabled(): boolean {
  const provider = trace.getTracerProvider();
  return !(provider instanceof ProxyTracerProvider) || provider.getDelegate() !== NOOP_PROVIDER;
}

/** The active span's context as a W3C `traceparent`, or undefined when no trace is active. */
export function activeTraceparent(): string | undefined {
  const span = trace.getActiveSpan();
  if (!span) return undefined;
  const sc = span.spanContext();
  if (!isSpanContextValid(sc)) return undefined;
  return `00-${sc.traceId}-${sc.spanId}-0${(sc.traceFlags & 1).toString(16)}`;
}

/** The trace id and parent span id of a stored `traceparent`, or undefined when it is missing or malformed. */
export function parseTraceparent(value: unknown): { traceId: string; spanId: string; sampled: boolean } | undefined {
  if (typeof value !== 'string') return undefined;
  const match = TRACEPARENT.exec(value);
  if (!match || /^0+$/.test(match[1]!) || /^0+$/.test(match[2]!)) return undefined;
  return { traceId: match[1]!, spanId: match[2]!, sampled: (parseInt(match[3]!, 16) & 1) === 1 };
}

/** What the consumer span of one attempt describes (the handler's `ctx.job`). */
export interface JobSpanInput {
  id: string;
  kind: string;
  queue: string;
  attempt: number;
  maxAttempts: number;
  metadata: Record<string, unknown> | null;
}

/**
 * Starts the consumer span `spool.job <kind>` of one attempt, as a child of
 * the context stored at enqueue (metadata.traceparent), with the
 * OpenTelemetry messaging attributes. Returns the span and the context to
 * run the handler in. Call it only when `tracingEnabled()`.
 */
export function startJobSpan(job: JobSpanInput, workerId: string): { span: Span; context: Context } {
  const parent = parseTraceparent(job.metadata?.traceparent);
  const parentContext = parent
    ? trace.setSpanContext(ROOT_CONTEXT, { traceId: parent.traceId, spanId: parent.spanId, traceFlags: parent.sampled ? 1 : 0, isRemote: true })
    : ROOT_CONTEXT;
  const span = trace.getTracer('spool').startSpan(
    `spool.job ${job.kind}`,
    {
      kind: SpanKind.CONSUMER,
      attributes: {
        'messaging.system': 'spool',
        'messaging.operation.type': 'process',
        'messaging.operation.name': 'process',
        'messaging.destination.name': job.queue,
        'messaging.message.id': job.id,
        'messaging.consumer.group.name': job.queue,
        'spool.job.kind': job.kind,
        'spool.job.attempt': job.attempt,
        'spool.job.max_attempts': job.maxAttempts,
        'spool.worker.id': workerId,
      },
    },
    parentContext,
  );
  return { span, context: trace.setSpan(parentContext, span) };
}

/** Ends a job's span with the attempt's outcome; an error marks it failed. */
export function endJobSpan(span: Span, outcome: string, error?: { message: string; name?: string; stack?: string }): void {
  span.setAttribute('spool.job.outcome', outcome);
  if (error) {
    span.recordException({ name: error.name ?? 'Error', message: error.message, stack: error.stack });
    span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
  }
  span.end();
}

/** Runs `fn` with `ctx` as the active context (the handler inside its job span). */
export function runInContext<T>(ctx: Context, fn: () => T): T {
  return context.with(ctx, fn);
}

/** Log fields for a job: its span's ids while traced, else the trace it was enqueued in (if any). */
export function traceLogFields(span: Span | undefined, metadata: Record<string, unknown> | null): { trace_id?: string; span_id?: string } {
  if (span) {
    const sc = span.spanContext();
    if (isSpanContextValid(sc)) return { trace_id: sc.traceId, span_id: sc.spanId };
  }
  const parent = parseTraceparent(metadata?.traceparent);
  return parent ? { trace_id: parent.traceId } : {};
}
