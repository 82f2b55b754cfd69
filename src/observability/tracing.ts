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
  type SpanContext,
} from '@opentelemetry/api';
import { parseTraceParent } from '@opentelemetry/core';
import type { JobContext } from '../job.js';
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

/** The span context of a stored `traceparent` (parsed by the W3C propagator's own parser), or undefined when it is missing or invalid. */
function storedTraceparent(value: unknown): SpanContext | undefined {
  const sc = typeof value === 'string' ? parseTraceParent(value) : null;
  return sc && isSpanContextValid(sc) ? sc : undefined;
}

/**
 * Starts the consumer span `spool.job <kind>` of one attempt, as a child of
 * the context stored at enqueue (metadata.traceparent), with the
 * OpenTelemetry messaging attributes. Returns the span and the context to
 * run the handler in. Call it only when `tracingEnabled()`.
 */
export function startJobSpan(job: JobContext['job'], workerId: string): { span: Span; context: Context } {
  const parent = storedTraceparent(job.metadata?.traceparent);
  const parentContext = parent ? trace.setSpanContext(ROOT_CONTEXT, { ...parent, isRemote: true }) : ROOT_CONTEXT;
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
  const parent = storedTraceparent(metadata?.traceparent);
  return parent ? { trace_id: parent.traceId } : {};
}
