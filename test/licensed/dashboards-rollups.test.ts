// Licensed TimescaleDB (PGlite build, test tool only): every SQL query of the Grafana wells
// dashboard (ops/grafana/dashboards/esp-wells.json) runs against the real continuous aggregates
// the service creates, at both resolutions, over the real well data, and returns rows. The
// integration test dashboards-sql.test.ts checks the same queries on the Apache-only server,
// where the rollups cannot exist and stand-in views take their place.
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CATALOG } from '../../src/decode/catalog.ts';
import { migrateWith } from '../../src/schema/migrate.ts';
import { ROLLUP_VIEWS, rollupColumnNames } from '../../src/schema/rollup-columns.ts';
import { customValues, interpolateSql, loadDashboard, sqlQueries } from '../support/dashboards.ts';
import { type LicensedDb, openLicensedTimescale } from '../support/pglite.ts';
import { ROOT } from '../support/root.ts';
import { sqlClient } from '../support/sql-client.ts';
import { copyOf, wellReadings } from '../support/well-rows.ts';

const wells = loadDashboard('esp-wells.json');
let db: LicensedDb;
/** The busiest well and the day of its first reading: a time range that holds data. */
let well = '';
let range = { from: '', to: '' };

beforeAll(async () => {
  db = await openLicensedTimescale();
  const { storage } = await migrateWith(sqlClient(db), DEFAULT_CATALOG, pino({ level: 'silent' }));
  expect(storage.features.rollups.state).toBe('applied');
  const readings = wellReadings(DEFAULT_CATALOG);
  const { target, text } = copyOf(DEFAULT_CATALOG, readings);
  await db.copyFrom(target, text);
  for (const { view } of ROLLUP_VIEWS) {
    const gens = await db.query<{ view_name: string }>(`SELECT view_name FROM timescaledb_information.continuous_aggregates WHERE view_name LIKE $1`, [
      `${view}_g%`,
    ]);
    expect(gens.rows.length, view).toBeGreaterThan(0);
    for (const g of gens.rows) await db.query(`CALL refresh_continuous_aggregate('${g.view_name}', NULL, NULL)`);
  }
  const [busiest] = (
    await db.query<{ well_id: string; first: Date }>(`SELECT well_id, min(ts) AS first FROM esp_telemetry GROUP BY well_id ORDER BY count(*) DESC LIMIT 1`)
  ).rows;
  well = busiest!.well_id;
  const from = new Date(busiest!.first);
  range = { from: from.toISOString(), to: new Date(from.getTime() + 86_400_000).toISOString() };
});
afterAll(async () => {
  await db?.close();
});

describe('wells dashboard on the real continuous aggregates', () => {
  it('the rollup views have every column of the naming contract', async () => {
    for (const { view } of ROLLUP_VIEWS) {
      const cols = await db.query<{ column_name: string }>(`SELECT column_name FROM information_schema.columns WHERE table_name = $1`, [view]);
      expect(
        cols.rows.map((r) => r.column_name),
        view,
      ).toEqual(expect.arrayContaining(rollupColumnNames(DEFAULT_CATALOG)));
    }
  });

  it('every query returns rows for a well with data, at every resolution', async () => {
    const resolutions = customValues(wells, 'rollup');
    expect(resolutions.sort()).toEqual(ROLLUP_VIEWS.map((r) => r.view).sort());
    const empty: string[] = [];
    let ran = 0;
    for (const { where, sql } of sqlQueries(wells)) {
      for (const rollup of sql.includes('$rollup') ? resolutions : resolutions.slice(0, 1)) {
        const { rows } = await db.query(interpolateSql(sql, { rollup, well_id: [well] }, range));
        if (rows.length === 0) empty.push(`${where} (${rollup})`);
        ran++;
      }
    }
    expect(ran).toBeGreaterThanOrEqual(16);
    expect(empty).toEqual([]);
  });

  it('the panels of the channels the shipped 3W wells carry show values (what `npm run demo` stores)', async () => {
    const channels = ['downhole_gauge_pressure_pa', 'tree_pressure_pa', 'tree_temperature_degc', 'choke_upstream_pressure_pa'];
    for (const column of channels) {
      const panel = sqlQueries(wells).find((q) => q.sql.includes(`${column}_avg`));
      expect(panel, `a panel for ${column}`).toBeDefined();
      for (const rollup of customValues(wells, 'rollup')) {
        const { rows } = await db.query<{ avg: number | null }>(interpolateSql(panel!.sql, { rollup, well_id: [well] }, range));
        expect(rows.filter((r) => r.avg !== null).length, `${panel!.where} (${rollup})`).toBeGreaterThan(0);
      }
    }
  });

  it('the README\'s rollup SQL (section "Storage") runs on the real rollups', async () => {
    const readme = readFileSync(`${ROOT}README.md`, 'utf8');
    const storage = readme.slice(readme.indexOf('\n## Storage'), readme.indexOf('\n## ', readme.indexOf('\n## Storage') + 1));
    const statements = [...storage.matchAll(/```sql\n([\s\S]*?)```/g)]
      .flatMap((m) => m[1]!.split(';'))
      .map((q) => q.trim())
      .filter((q) => q !== '' && /^SELECT/i.test(q));
    expect(statements.length).toBeGreaterThanOrEqual(3);
    for (const q of statements) await expect(db.query(q), q).resolves.toHaveProperty('rows');
  });
});
