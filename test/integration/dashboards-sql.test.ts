// The wells dashboard's SQL run for real: on a fresh database after the service's migrations,
// as the read-only role Grafana uses (ops/timescaledb/grafana-reader.sh). esp_telemetry is the
// real table; a rollup view the migrations do not create is stood in for by a plain view built
// from the naming contract (src/schema/rollup-columns.ts), so the check holds before and after
// the continuous aggregates exist.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CATALOG } from '../../src/decode/catalog.ts';
import { migrate } from '../../src/schema/migrate.ts';
import { ROLLUP_VIEWS, type RollupColumn, rollupColumnNames, rollupColumns } from '../../src/schema/rollup-columns.ts';
import { customValues, interpolateSql, loadDashboard, sqlIdentifiers, sqlQueries } from '../support/dashboards.ts';
import { freshDatabase, query, serverUrl, Teardown } from '../support/harness.ts';
import { ROOT } from '../support/root.ts';

const t = new Teardown();
let url = '';
let readerUrl = '';
const reader = `grafana_t_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
const wells = loadDashboard('esp-wells.json');

/** SQL for one stand-in rollup column over esp_telemetry (the contract's meaning, not its speed). */
function standInExpression(c: RollupColumn, bucket: string): string {
  switch (c.kind) {
    case 'key':
      return c.name === 'bucket' ? `date_bin(INTERVAL '${bucket}', ts, TIMESTAMPTZ '2000-01-01') AS bucket` : 'well_id';
    case 'readings':
      return 'count(*) AS readings';
    case 'last':
      return `(array_agg(${c.channel} ORDER BY ts DESC) FILTER (WHERE ${c.channel} IS NOT NULL))[1] AS ${c.name}`;
    case 'count':
      return `count(${c.channel}) AS ${c.name}`;
    default:
      return `${c.kind}(${c.channel}) AS ${c.name}`;
  }
}

async function columnsOf(relation: string): Promise<string[]> {
  const rows = await query<{ column_name: string }>(
    url,
    `SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position`,
    [relation],
  );
  return rows.map((r) => r.column_name);
}

beforeAll(async () => {
  url = await freshDatabase(t);
  const db = new URL(url);
  // Before the schema exists, as in the TimescaleDB image's first start.
  execFileSync('bash', [path.join(ROOT, 'ops/timescaledb/grafana-reader.sh')], {
    env: {
      PATH: process.env.PATH ?? '',
      PGHOST: db.hostname,
      PGPORT: db.port || '5432',
      POSTGRES_USER: decodeURIComponent(db.username) || 'postgres',
      POSTGRES_DB: db.pathname.slice(1),
      GRAFANA_DB_USER: reader,
      GRAFANA_DB_PASSWORD: "p'w",
    },
    stdio: 'pipe',
  });
  t.add(async () => {
    await query(url, `DROP OWNED BY ${reader}`).catch(() => undefined);
    await query(serverUrl(), `DROP ROLE IF EXISTS ${reader}`);
  });
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  t.add(() => pool.end());
  await migrate(pool, DEFAULT_CATALOG, pino({ level: 'silent' }));
  for (const { view, bucket } of ROLLUP_VIEWS) {
    if ((await columnsOf(view)).length > 0) continue;
    await query(
      url,
      `CREATE VIEW ${view} AS SELECT ${rollupColumns(DEFAULT_CATALOG)
        .map((c) => standInExpression(c, bucket))
        .join(', ')} FROM esp_telemetry GROUP BY 1, 2`,
    );
  }
  await query(
    url,
    `INSERT INTO esp_telemetry (ts, well_id, site, intake_pressure_kpa, motor_current_a, vibration_mm_s) VALUES
    ('2024-01-01T10:00:00Z', 'W-1', 's', 8100, 40, 1.5),
    ('2024-01-01T10:00:10Z', 'W-1', 's', 8200, 41, NULL),
    ('2024-01-01T11:00:00Z', 'W-2', 's', 9000, 50, 2.5),
    ('2024-01-03T00:00:00Z', 'W-2', 's', 1, 1, 1)`,
  );
  const r = new URL(url);
  r.username = reader;
  r.password = '';
  readerUrl = r.toString();
});
afterAll(() => t.run());

describe('wells dashboard SQL on a migrated database', () => {
  it('the rollup views have every column of the naming contract', async () => {
    for (const { view } of ROLLUP_VIEWS) expect(await columnsOf(view), view).toEqual(expect.arrayContaining(rollupColumnNames(DEFAULT_CATALOG)));
  });

  it('every raw-table query reads only columns esp_telemetry has', async () => {
    const table = new Set(await columnsOf('esp_telemetry'));
    const raw = sqlQueries(wells)
      .map((q) => ({ ...q, ids: sqlIdentifiers(interpolateSql(q.sql, { rollup: ROLLUP_VIEWS[0]!.view, well_id: ['W-1'] })) }))
      .filter((q) => q.ids.relations.includes('esp_telemetry'));
    expect(raw.length).toBeGreaterThan(0);
    for (const { where, ids } of raw) for (const c of ids.columns) expect(table, `${where}: column ${c}`).toContain(c);
  });

  it('every query runs as the Grafana role, at every resolution', async () => {
    const vars = customValues(wells, 'rollup').map((rollup) => ({ rollup, well_id: ['W-1', 'W-2'] }));
    let ran = 0;
    for (const { where, sql } of sqlQueries(wells)) {
      for (const v of sql.includes('$rollup') ? vars : vars.slice(0, 1)) {
        await expect(query(readerUrl, interpolateSql(sql, v)), `${where} ${v.rollup}`).resolves.toBeInstanceOf(Array);
        ran++;
      }
    }
    expect(ran).toBeGreaterThanOrEqual(16);
  });

  it('the Grafana role cannot write', async () => {
    await expect(query(readerUrl, `INSERT INTO esp_telemetry (ts, well_id) VALUES (now(), 'x')`)).rejects.toThrow(/read-only transaction/);
  });

  it('"Latest readings" gives the newest row per well in the time range', async () => {
    const sql = sqlQueries(wells).find((q) => q.where.startsWith('panel "Latest readings"'))!.sql;
    const rows = await query<{ well_id: string; time: Date; intake_pressure_kpa: number; vibration_mm_s: number | null }>(
      readerUrl,
      interpolateSql(sql, { well_id: ['W-1', 'W-2'] }),
    );
    expect(rows.map((r) => [r.well_id, r.time.toISOString(), r.intake_pressure_kpa, r.vibration_mm_s])).toEqual([
      ['W-1', '2024-01-01T10:00:10.000Z', 8200, null],
      ['W-2', '2024-01-01T11:00:00.000Z', 9000, 2.5],
    ]);
  });
});
