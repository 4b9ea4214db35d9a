// The metrics contract: the README's Metrics table, the live registry (createMetrics) and the
// alert rules agree; per-well freshness is bounded by METRICS_WELLS_MAX and computed at scrape.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/metrics/metrics.ts';
import { ROOT } from '../support/root.ts';

interface Row {
  readonly name: string;
  readonly type: string;
  readonly labels: string[];
  readonly alerts: string[];
}

/** Rows of the table under `## Metrics` in README.md: metric | type | unit | labels | meaning | alert. */
function readmeRows(): Row[] {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const section = readme.split(/^## /m).find((s) => s.startsWith('Metrics\n'));
  if (!section) throw new Error('README.md has no "## Metrics" section');
  return section
    .split('\n')
    .filter((l) => l.startsWith('| `'))
    .map((l) => {
      const cells = l
        .split('|')
        .slice(1, -1)
        .map((c) => c.trim());
      if (cells.length !== 6) throw new Error(`README metrics row has ${cells.length} cells, not 6: ${l}`);
      const [name, type, , labels, , alerts] = cells as [string, string, string, string, string, string];
      const list = (s: string) =>
        s
          .split(',')
          .map((x) => x.trim().replace(/`/g, ''))
          .filter(Boolean);
      return { name: name.replace(/`/g, ''), type, labels: list(labels), alerts: list(alerts) };
    });
}

/** Alert name → the esp_ingest_ metrics its expression reads (histogram series folded to the histogram). */
function alertMetrics(): Map<string, Set<string>> {
  const rules = readFileSync(path.join(ROOT, 'ops/prometheus/alerts.yml'), 'utf8');
  const out = new Map<string, Set<string>>();
  for (const block of rules.split(/^\s+- alert: /m).slice(1)) {
    const name = block.slice(0, block.indexOf('\n')).trim();
    const expr = block.slice(block.indexOf('expr:'), block.indexOf('\n        for:'));
    const names = [...expr.matchAll(/esp_ingest_\w+/g)].map((m) => m[0].replace(/_(bucket|count|sum)$/, ''));
    out.set(name, new Set(names));
  }
  return out;
}

const matches = (row: Row, metric: string) => (row.name.endsWith('*') ? metric.startsWith(row.name.slice(0, -1)) : metric === row.name);

describe('README Metrics table and the registry', () => {
  const rows = readmeRows();

  it('lists every registered metric once, and nothing that is not registered', async () => {
    const registered = await createMetrics().registry.getMetricsAsJSON();
    expect(registered.length).toBeGreaterThan(40);
    const unlisted = registered.filter((m) => rows.filter((r) => matches(r, m.name)).length !== 1).map((m) => m.name);
    expect(unlisted, 'metrics missing from (or listed twice in) the README Metrics table').toEqual([]);
    const stale = rows.filter((r) => !registered.some((m) => matches(r, m.name))).map((r) => r.name);
    expect(stale, 'README rows naming no registered metric').toEqual([]);
  });

  it('gives each named metric its registered type and labels', async () => {
    const registry = createMetrics().registry;
    const byName = new Map((await registry.getMetricsAsJSON()).map((m) => [m.name, String(m.type)]));
    for (const row of rows.filter((r) => !r.name.endsWith('*'))) {
      const labelNames = (registry.getSingleMetric(row.name) as unknown as { labelNames: readonly string[] }).labelNames;
      expect({ name: row.name, type: row.type, labels: row.labels }).toEqual({ name: row.name, type: byName.get(row.name), labels: [...labelNames] });
    }
  });

  it('names in its alert column exactly the rules of ops/prometheus/alerts.yml that read the metric', () => {
    const rules = alertMetrics();
    expect(rules.size).toBeGreaterThanOrEqual(6);
    for (const row of rows.filter((r) => !r.name.endsWith('*'))) {
      const readers = [...rules]
        .filter(([, metrics]) => metrics.has(row.name))
        .map(([alert]) => alert)
        .sort();
      expect({ metric: row.name, alerts: [...row.alerts].sort() }).toEqual({ metric: row.name, alerts: readers });
    }
    // Every esp_ingest_ metric a rule reads is in the table (a renamed metric breaks the rule).
    const read = new Set([...rules.values()].flatMap((s) => [...s]));
    expect([...read].filter((m) => !rows.some((r) => matches(r, m)))).toEqual([]);
  });
});

describe('naming', () => {
  it('ends counters, and only counters, in _total', async () => {
    const registered = await createMetrics().registry.getMetricsAsJSON();
    const wrong = registered.filter((m) => (String(m.type) === 'counter') !== m.name.endsWith('_total')).map((m) => `${m.name} (${m.type})`);
    expect(wrong).toEqual([]);
  });
});

describe('per-well freshness', () => {
  /** Samples of one metric as { labels-or-'' : value }. */
  async function samples(m: ReturnType<typeof createMetrics>, name: string): Promise<Record<string, number>> {
    const metric = (await m.registry.getMetricsAsJSON()).find((x) => x.name === name);
    if (!metric) throw new Error(`${name} not registered`);
    return Object.fromEntries(metric.values.map((v) => [Object.values(v.labels).join(','), v.value]));
  }

  it('is the seconds since the newest committed reading was received, at scrape time', async () => {
    let now = 1_000_000;
    const m = createMetrics({ clock: () => now });
    m.wellCommitted('W-1', 990_000, 5);
    m.wellCommitted('W-2', 999_500, 1);
    // An older message committed later (redelivery, concurrent batches) never makes a well look staler.
    m.wellCommitted('W-1', 980_000, 1);
    expect(await samples(m, 'esp_ingest_well_last_reading_age_seconds')).toEqual({ 'W-1': 10, 'W-2': 0.5 });
    now += 60_000;
    expect(await samples(m, 'esp_ingest_well_last_reading_age_seconds')).toEqual({ 'W-1': 70, 'W-2': 60.5 });
    m.wellCommitted('W-1', now, 1);
    expect((await samples(m, 'esp_ingest_well_last_reading_age_seconds'))['W-1']).toBe(0);
  });

  it('never goes negative when the receive time is ahead of the scrape clock', async () => {
    const m = createMetrics({ clock: () => 1_000 });
    m.wellCommitted('W-1', 5_000, 1);
    expect(await samples(m, 'esp_ingest_well_last_reading_age_seconds')).toEqual({ 'W-1': 0 });
  });

  it('tracks the first METRICS_WELLS_MAX wells and counts the readings of the others', async () => {
    const m = createMetrics({ wellsMax: 2, clock: () => 10_000 });
    m.wellCommitted('W-1', 1_000, 1);
    m.wellCommitted('W-2', 1_000, 1);
    m.wellCommitted('W-3', 1_000, 7);
    m.wellCommitted('W-4', 1_000, 2);
    m.wellCommitted('W-3', 2_000, 1);
    // A tracked well keeps being tracked once the cap is reached.
    m.wellCommitted('W-2', 9_000, 3);
    expect(await samples(m, 'esp_ingest_well_last_reading_age_seconds')).toEqual({ 'W-1': 9, 'W-2': 1 });
    expect(await samples(m, 'esp_ingest_untracked_well_readings_total')).toEqual({ '': 10 });
    expect(await samples(m, 'esp_ingest_wells_tracked')).toEqual({ '': 2 });
  });

  it('tracks no well with METRICS_WELLS_MAX=0', async () => {
    const m = createMetrics({ wellsMax: 0 });
    m.wellCommitted('W-1', 1_000, 4);
    expect(await samples(m, 'esp_ingest_well_last_reading_age_seconds')).toEqual({});
    expect(await samples(m, 'esp_ingest_untracked_well_readings_total')).toEqual({ '': 4 });
  });
});

describe('esp_ingest_ready and esp_ingest_database_up', () => {
  it('read the readiness state at scrape time (0 without one)', async () => {
    const last = async (m: ReturnType<typeof createMetrics>, name: string) => (await m.registry.getSingleMetricAsString(name)).split('\n').at(-1);
    expect(await last(createMetrics(), 'esp_ingest_ready')).toBe('esp_ingest_ready 0');
    const readiness = { ready: 1 as 0 | 1, up: 1 as 0 | 1, readyValue: () => readiness.ready, databaseUpValue: () => readiness.up };
    const m = createMetrics({ readiness });
    expect(await last(m, 'esp_ingest_ready')).toBe('esp_ingest_ready 1');
    expect(await last(m, 'esp_ingest_database_up')).toBe('esp_ingest_database_up 1');
    readiness.ready = 0;
    readiness.up = 0;
    expect(await last(m, 'esp_ingest_ready')).toBe('esp_ingest_ready 0');
    expect(await last(m, 'esp_ingest_database_up')).toBe('esp_ingest_database_up 0');
  });
});
