import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { SpoolMetrics } from '../../src/index.js';

/** Every series name Spool exports (histograms with their _bucket, _sum and _count). */
async function exportedNames(): Promise<Set<string>> {
  const metrics = await new SpoolMetrics({ defaultMetrics: false }).registry.getMetricsAsJSON();
  return new Set(metrics.flatMap((m) => (String(m.type) === 'histogram' ? ['_bucket', '_sum', '_count'].map((s) => m.name + s) : [m.name])));
}

/** The spool_* metric names a PromQL expression reads. */
function metricsIn(expr: string): string[] {
  return [...expr.matchAll(/\b(spool_[a-z_]+)\b/g)].map((m) => m[1]!);
}

describe('deploy/', () => {
  it('the Grafana dashboard is a well-formed dashboard whose queries read only metrics Spool exports', async () => {
    const dashboard = JSON.parse(await readFile('deploy/grafana/spool-dashboard.json', 'utf8'));
    const names = await exportedNames();
    expect(dashboard).toMatchObject({ title: 'Spool', uid: expect.any(String), schemaVersion: expect.any(Number) });
    expect(dashboard.templating.list.map((v: { name: string }) => v.name)).toEqual(['datasource', 'queue']);
    const ids = dashboard.panels.map((p: { id: number }) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const titles = dashboard.panels.map((p: { title: string }) => p.title).join(' | ');
    for (const wanted of ['Queue depth', 'Oldest available job age', 'Throughput by outcome', 'Wait time', 'Run time', 'Dead jobs', 'Workers']) {
      expect(titles).toContain(wanted);
    }
    for (const panel of dashboard.panels) {
      expect(panel).toMatchObject({ type: expect.stringMatching(/^(timeseries|stat|table)$/), datasource: { type: 'prometheus' } });
      expect(panel.gridPos).toEqual({ x: expect.any(Number), y: expect.any(Number), w: expect.any(Number), h: expect.any(Number) });
      expect(panel.gridPos.x + panel.gridPos.w).toBeLessThanOrEqual(24);
      expect(panel.targets.length).toBeGreaterThan(0);
      for (const target of panel.targets) {
        expect(target.refId).toMatch(/^[A-Z]$/);
        expect(metricsIn(target.expr).length, `${panel.title}: ${target.expr}`).toBeGreaterThan(0);
        for (const name of metricsIn(target.expr)) expect(names.has(name), `${panel.title} reads ${name}, which Spool does not export`).toBe(true);
      }
    }
  });

  it('the Prometheus alerts are well-formed rules over metrics Spool exports, covering backlog, age, dead jobs, workers and the listener', async () => {
    const rules = parse(await readFile('deploy/prometheus/alerts.yml', 'utf8'));
    const names = await exportedNames();
    expect(rules.groups).toHaveLength(1);
    const alerts = rules.groups[0].rules as Array<Record<string, any>>;
    expect(alerts.map((r) => r.alert)).toEqual(
      expect.arrayContaining(['SpoolBacklogGrowing', 'SpoolOldestJobTooOld', 'SpoolDeadJobs', 'SpoolNoLiveWorkers', 'SpoolListenerDisconnected']),
    );
    for (const rule of alerts) {
      expect(rule.alert).toMatch(/^[A-Za-z][A-Za-z0-9]*$/);
      expect(rule.for).toMatch(/^\d+[smh]$/);
      expect(['warning', 'critical']).toContain(rule.labels.severity);
      expect(rule.annotations.summary).toEqual(expect.any(String));
      expect(rule.annotations.description).toEqual(expect.any(String));
      // Balanced brackets: a cheap guard against a mangled expression.
      for (const [open, close] of [['(', ')'], ['[', ']'], ['{', '}']]) {
        expect(rule.expr.split(open).length, `${rule.alert} ${open}${close}`).toBe(rule.expr.split(close).length);
      }
      expect(metricsIn(rule.expr).length).toBeGreaterThan(0);
      for (const name of metricsIn(rule.expr)) expect(names.has(name), `${rule.alert} reads ${name}, which Spool does not export`).toBe(true);
    }
    expect(alerts.find((r) => r.alert === 'SpoolBacklogGrowing')!.for).toBe('10m');
  });
});
