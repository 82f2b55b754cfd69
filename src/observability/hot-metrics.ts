import type client from 'prom-client';

/**
 * Counters and histograms for the per-job hot path, registered in a
 * prom-client registry and exposed in its standard text format.
 *
 * Why not prom-client's own Counter and Histogram: each of their `inc` and
 * `observe` calls hashes the label set, even through a `labels()` child;
 * five of them per job cost the drain benchmark about 10 % of its
 * throughput. Here a series is a plain object the worker keeps: a job costs
 * a few additions, and the label work happens once per scrape.
 */

type Labels = Record<string, string>;

/** What prom-client's registry reads from a metric at scrape time (`get()`). */
interface Snapshot {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  aggregator: 'sum';
  values: Array<{ metricName?: string; labels: Record<string, string | number>; value: number }>;
}

/** One labelled series of a HotCounter. */
export interface CounterSeries {
  value: number;
}

/** One labelled series of a HotHistogram. */
export class HistogramSeries {
  /** Per-bucket (not cumulative) counts; the last one is +Inf. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  readonly #bounds: readonly number[];

  constructor(bounds: readonly number[]) {
    this.#bounds = bounds;
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const bounds = this.#bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }
}

abstract class HotMetric<Series> {
  readonly aggregator = 'sum' as const;
  protected readonly series = new Map<string, { labels: Labels; series: Series }>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    registry: client.Registry,
  ) {
    registry.registerMetric(this as unknown as client.Metric);
  }

  /** The series of `labels`, created on first use; keep it and update it directly. */
  labels(labels: Labels): Series {
    const key = this.labelNames.map((name) => labels[name] ?? '').join('\u0000');
    let entry = this.series.get(key);
    if (!entry) {
      entry = { labels: { ...labels }, series: this.create() };
      this.series.set(key, entry);
    }
    return entry.series;
  }

  reset(): void {
    this.series.clear();
  }

  protected abstract create(): Series;
}

export class HotCounter extends HotMetric<CounterSeries> {
  readonly type = 'counter' as const;

  protected create(): CounterSeries {
    return { value: 0 };
  }

  inc(labels: Labels, by = 1): void {
    this.labels(labels).value += by;
  }

  async get(): Promise<Snapshot> {
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values: Array.from(this.series.values(), ({ labels, series }) => ({ labels, value: series.value })),
    };
  }
}

export class HotHistogram extends HotMetric<HistogramSeries> {
  readonly type = 'histogram' as const;
  readonly #bounds: readonly number[];

  constructor(name: string, help: string, labelNames: readonly string[], bounds: readonly number[], registry: client.Registry) {
    super(name, help, labelNames, registry);
    this.#bounds = bounds;
  }

  protected create(): HistogramSeries {
    return new HistogramSeries(this.#bounds);
  }

  async get(): Promise<Snapshot> {
    const values: Snapshot['values'] = [];
    for (const { labels, series } of this.series.values()) {
      let cumulative = 0;
      this.#bounds.forEach((bound, i) => {
        cumulative += series.counts[i]!;
        values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le: bound }, value: cumulative });
      });
      values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le: '+Inf' }, value: series.count });
      values.push({ metricName: `${this.name}_sum`, labels, value: series.sum });
      values.push({ metricName: `${this.name}_count`, labels, value: series.count });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}
