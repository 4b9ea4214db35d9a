// The Grafana dashboards (ops/grafana/dashboards/) against the code: valid JSON, data sources
// that are provisioned, PromQL that names only metrics the service exports, rollup SQL that
// names only columns of the rollup naming contract. The raw-table SQL is run against a real
// database in test/integration/dashboards-sql.test.ts.
import { describe, expect, it } from 'vitest';
import { DEFAULT_CATALOG } from '../../src/decode/catalog.ts';
import { createMetrics } from '../../src/metrics/metrics.ts';
import { ROLLUP_VIEWS, rollupColumnNames } from '../../src/schema/rollup-columns.ts';
import {
  customValues,
  interpolateSql,
  loadDashboard,
  loadDashboards,
  panelsOf,
  promqlExpressions,
  promqlMetricNames,
  provisionedDataSources,
  sqlIdentifiers,
  sqlQueries,
} from '../support/dashboards.ts';

/** Series names the service's registry exposes; a histogram `x` exposes x_bucket, x_sum, x_count. */
async function exportedSeries(): Promise<Set<string>> {
  const { registry } = createMetrics();
  const names = new Set<string>();
  for (const m of await registry.getMetricsAsJSON()) {
    // prom-client's typings say a numeric enum; the JSON holds the type's name.
    if (String(m.type) === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(`${m.name}${s}`);
    else names.add(m.name);
  }
  return names;
}

const dashboards = loadDashboards();

describe('dashboard files', () => {
  it('are the two shipped dashboards, with unique uids', () => {
    expect(dashboards.map((d) => d.file)).toEqual(['esp-ingest-service.json', 'esp-wells.json']);
    expect(new Set(dashboards.map((d) => d.dashboard.uid)).size).toBe(dashboards.length);
  });

  it.each(dashboards)('$file: schema version 39 or later, unique panel ids, every panel queried', ({ dashboard }) => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(39);
    const panels = panelsOf(dashboard);
    expect(panels.length).toBeGreaterThan(5);
    expect(new Set(panels.map((p) => p.id)).size).toBe(panels.length);
    for (const p of panels) expect(p.targets?.length ?? 0, `panel "${p.title}"`).toBeGreaterThan(0);
  });
});

describe('data sources', () => {
  const provisioned = provisionedDataSources();

  it('provisions Prometheus and PostgreSQL with distinct uids', () => {
    expect(provisioned.map((d) => d.type).sort()).toEqual(['grafana-postgresql-datasource', 'prometheus']);
    expect(new Set(provisioned.map((d) => d.uid)).size).toBe(provisioned.length);
  });

  it.each(dashboards)('$file: every panel, target and query variable names a provisioned uid of the right type', ({ dashboard }) => {
    const refs = [
      ...panelsOf(dashboard).flatMap((p) => [
        { where: `panel "${p.title}"`, ref: p.datasource },
        ...(p.targets ?? []).map((t) => ({ where: `panel "${p.title}" ${t.refId}`, ref: t.datasource })),
      ]),
      ...dashboard.templating.list.filter((v) => v.type === 'query').map((v) => ({ where: `variable $${v.name}`, ref: v.datasource })),
    ];
    for (const { where, ref } of refs) {
      const ds = provisioned.find((d) => d.uid === ref?.uid);
      expect(ds, `${where}: datasource uid ${ref?.uid}`).toBeDefined();
      expect(ref?.type, where).toBe(ds?.type);
    }
  });
});

describe('PromQL', () => {
  it('reads metric names out of expressions', () => {
    expect(promqlMetricNames('histogram_quantile(0.99, sum by (le) (rate(a_bucket{instance=~"$instance", x="b c"}[$__rate_interval])))')).toEqual(['a_bucket']);
    expect(promqlMetricNames('sum(rate(a_sum[5m])) / sum(rate(a_count[5m] offset 1h)) > bool 0')).toEqual(['a_sum', 'a_count']);
    expect(promqlMetricNames('max by (well_id, instance) (b) and on (instance) c == 1e3')).toEqual(['b', 'c']);
    expect(promqlMetricNames('label_values(esp_ingest_mqtt_up, instance)')).toEqual(['esp_ingest_mqtt_up']);
  });

  it.each(dashboards.filter((d) => promqlExpressions(d.dashboard).length > 0))(
    '$file: every expression selects only series esp-ingest exports',
    async ({ dashboard }) => {
      const exported = await exportedSeries();
      for (const { where, expr } of promqlExpressions(dashboard)) {
        const names = promqlMetricNames(expr);
        expect(names.length, `${where}: no metric in ${expr}`).toBeGreaterThan(0);
        for (const name of names) expect(exported, `${where}: ${name} is not in createMetrics()`).toContain(name);
      }
    },
  );

  it('the service dashboard shows what operators ask first', () => {
    const names = new Set(promqlExpressions(loadDashboard('esp-ingest-service.json')).flatMap((e) => promqlMetricNames(e.expr)));
    for (const n of [
      'esp_ingest_readings_committed_total',
      'esp_ingest_readings_rejected_total',
      'esp_ingest_device_to_commit_lag_seconds_bucket',
      'esp_ingest_oldest_unacknowledged_age_seconds',
      'esp_ingest_flush_duration_seconds_bucket',
      'esp_ingest_rows_buffered',
      'esp_ingest_messages_waiting',
      'esp_ingest_unacknowledged_messages',
      'esp_ingest_database_up',
      'esp_ingest_mqtt_up',
      'esp_ingest_well_last_reading_age_seconds',
      'esp_ingest_nodejs_eventloop_lag_p99_seconds',
      'esp_ingest_process_resident_memory_bytes',
    ])
      expect(names, n).toContain(n);
  });
});

describe('rollup SQL (esp-wells.json)', () => {
  const wells = loadDashboard('esp-wells.json');
  const contract = new Set(rollupColumnNames(DEFAULT_CATALOG));
  const rollupViews: string[] = ROLLUP_VIEWS.map((r) => r.view);

  it('reads identifiers out of SQL', () => {
    expect(
      sqlIdentifiers(`SELECT DISTINCT ON (well_id) well_id, ts AS "time", max(a_b) AS x FROM t WHERE ts BETWEEN '1' AND 'x y' AND well_id IN ('w') ORDER BY 1`),
    ).toEqual({ relations: ['t'], columns: ['well_id', 'ts', 'a_b'] });
  });

  it('offers exactly the rollup views as resolutions', () => {
    expect(customValues(wells, 'rollup')).toEqual(rollupViews);
  });

  it('lists wells from the hourly rollup', () => {
    expect(sqlQueries(wells).find((q) => q.where === 'variable $well_id')?.sql).toMatch(/^SELECT DISTINCT well_id FROM esp_telemetry_1h\b/);
  });

  it('every rollup query, at every resolution, reads only columns of the naming contract', () => {
    let checked = 0;
    for (const { where, sql } of sqlQueries(wells)) {
      for (const rollup of customValues(wells, 'rollup')) {
        const { relations, columns } = sqlIdentifiers(interpolateSql(sql, { rollup, well_id: ['W-1'] }));
        if (!relations.every((r) => rollupViews.includes(r))) continue;
        for (const c of columns) expect(contract, `${where} (${rollup}): column ${c}`).toContain(c);
        checked++;
      }
    }
    // Six channel panels and readings per bucket at two resolutions, plus the well list.
    expect(checked).toBeGreaterThanOrEqual(15);
  });

  it('charts the six ESP channels', () => {
    const columns = new Set(
      sqlQueries(wells).flatMap(({ sql }) => sqlIdentifiers(interpolateSql(sql, { rollup: 'esp_telemetry_1m', well_id: ['W-1'] })).columns),
    );
    for (const ch of [
      'intake_pressure_kpa',
      'discharge_pressure_kpa',
      'motor_current_a',
      'vsd_frequency_hz',
      'motor_winding_temperature_degc',
      'vibration_mm_s',
    ]) {
      expect(columns, ch).toContain(`${ch}_avg`);
      expect(columns, ch).toContain(ch);
    }
  });

  it('refuses a macro it does not know, rather than passing it through', () => {
    expect(() => interpolateSql('SELECT 1 WHERE $__timeGroup(ts, 1m)', {})).toThrow(/no value for \$__timeGroup/);
  });
});
