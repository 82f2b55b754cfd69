/**
 * What observability costs the hot path: 200,000 pre-enqueued no-op jobs
 * drained by one worker at concurrency 50, with
 *   off      no metrics, no tracing SDK (the library default)
 *   metrics  a SpoolMetrics registry (what `spool serve` / `spool work` run with)
 *   tracing  the OpenTelemetry Node SDK with a batching processor and an
 *            exporter that drops spans (the SDK's cost, not the network's);
 *            every job enqueued inside a span, so each carries a traceparent
 *   both     metrics and tracing
 * Modes interleave round by round, so a noisy minute hits all of them.
 *
 *   npx tsx bench/observability.ts [jobs=200000] [modes=off,metrics,tracing,both]
 */
import os from 'node:os';
import { trace, context, propagation } from '@opentelemetry/api';
import { BatchSpanProcessor, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { benchDatabase } from './support/database.js';
import { drain, fill, openSpool, spoolBuild, spoolModule } from './support/spool.js';

const JOBS = Number(process.argv[2] ?? 200_000);
const MODES = (process.argv[3] ?? 'off,metrics,tracing,both').split(',');
const RUNS = Number(process.env.RUNS ?? 3);
const CONCURRENCY = 50;

/** Accepts and drops spans, counting them. */
class DroppingExporter implements SpanExporter {
  spans = 0;
  export(spans: ReadableSpan[], done: (result: { code: number }) => void): void {
    this.spans += spans.length;
    done({ code: 0 });
  }
  async shutdown(): Promise<void> {}
}

async function run(url: string, mode: string): Promise<number> {
  const withMetrics = mode === 'metrics' || mode === 'both';
  const withTracing = mode === 'tracing' || mode === 'both';
  let provider: NodeTracerProvider | undefined;
  const exporter = new DroppingExporter();
  if (withTracing) {
    provider = new NodeTracerProvider({ spanProcessors: [new BatchSpanProcessor(exporter, { maxQueueSize: 100_000, maxExportBatchSize: 2_048 })] });
    provider.register();
  }
  const spool = await openSpool(url, withMetrics ? { metrics: new spoolModule.SpoolMetrics() } : {});
  try {
    await spool.sql`TRUNCATE spool.jobs`;
    // Enqueued inside a span when tracing: every job then continues a trace.
    if (withTracing) await trace.getTracer('bench').startActiveSpan('enqueue', async (span) => (await fill(spool, JOBS), span.end()));
    else await fill(spool, JOBS);
    await spool.sql`VACUUM ANALYZE spool.jobs`;
    const rate = await drain(spool, JOBS, CONCURRENCY);
    if (withTracing) {
      await provider!.forceFlush();
      if (exporter.spans < JOBS) throw new Error(`only ${exporter.spans} spans for ${JOBS} jobs`);
    }
    return rate;
  } finally {
    await spool.close();
    if (provider) {
      await provider.shutdown();
      trace.disable();
      context.disable();
      propagation.disable();
    }
  }
}

const db = await benchDatabase();
try {
  console.log(`node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model}; Spool from ${spoolBuild}; ${db.server}; ${JSON.stringify(db.settings)}`);
  console.log(`${JOBS.toLocaleString('en-US')} no-op jobs drained by one worker at concurrency ${CONCURRENCY}; ${RUNS} interleaved rounds\n`);
  const rates = new Map<string, number[]>();
  for (let round = 0; round < RUNS; round++) {
    for (const mode of MODES) rates.set(mode, [...(rates.get(mode) ?? []), await run(db.url, mode)]);
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  const base = median(rates.get('off') ?? [NaN]);
  const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
  console.log('| mode | jobs/s (median) | runs | vs off |');
  console.log('|---|---:|---|---:|');
  for (const [mode, values] of rates) {
    const m = median(values);
    console.log(`| ${mode} | ${fmt(m)} | ${values.map(fmt).join(' / ')} | ${mode === 'off' ? '–' : `${(((m - base) / base) * 100).toFixed(1)} %`} |`);
  }
} finally {
  await db.close();
}
