// Licensed TimescaleDB (PGlite build, test tool only): settings changed between starts are
// applied in place by the next start (chunk interval, columnstore policy age, retention off → on
// → off, rollup refresh policies), a start with unchanged settings changes nothing, and the
// retention policy drops only old chunks when run.

import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CATALOG } from '../../src/decode/catalog.ts';
import type { SqlClient } from '../../src/schema/apply.ts';
import { migrateWith } from '../../src/schema/migrate.ts';
import { DEFAULT_STORAGE_SETTINGS, type StorageSettings } from '../../src/schema/settings.ts';
import { type LicensedDb, openLicensedTimescale } from '../support/pglite.ts';
import { sqlClient } from '../support/sql-client.ts';

const log = pino({ level: 'silent' });
const DAY = 86_400;
let db: LicensedDb;
let client: SqlClient;

async function all<T>(sql: string): Promise<T[]> {
  return (await client.query(sql)).rows as T[];
}
const start = (settings: Partial<StorageSettings>) => migrateWith(client, DEFAULT_CATALOG, log, { ...DEFAULT_STORAGE_SETTINGS, ...settings });

interface Job {
  job_id: number;
  proc_name: string;
  on: string;
  after: string | null;
  start: string | null;
}
/** The policies in place: job, what it is on, its age setting, as TimescaleDB stores them. */
const jobs = () =>
  all<Job>(`SELECT j.job_id, j.proc_name, COALESCE(c.view_name, j.hypertable_name) AS on,
                   COALESCE(j.config->>'compress_after', j.config->>'drop_after') AS after, j.config->>'start_offset' AS start
              FROM timescaledb_information.jobs j
              LEFT JOIN timescaledb_information.continuous_aggregates c ON j.hypertable_name IN (c.view_name, c.materialization_hypertable_name)
             WHERE j.proc_name IN ('policy_compression', 'policy_retention', 'policy_refresh_continuous_aggregate')
             ORDER BY 2, 3`);
const chunkInterval = async () =>
  (await all<{ i: string }>(`SELECT time_interval::text AS i FROM timescaledb_information.dimensions WHERE hypertable_name = 'esp_telemetry'`))[0]?.i;

beforeAll(async () => {
  db = await openLicensedTimescale();
  client = sqlClient(db);
});
afterAll(async () => {
  await db?.close();
});

describe('licensed TimescaleDB: settings applied in place at every start', () => {
  it('creates the defaults: 1-day chunks, columnstore after 7 days, no retention, both rollups refreshed', async () => {
    const { storage } = await start({});
    expect(storage.features).toEqual({
      hypertable: { state: 'applied', detail: 'chunks of 1 day' },
      compression: { state: 'applied', detail: 'columnstore: segmentby well_id, orderby ts DESC' },
      compression_policy: { state: 'applied', detail: 'chunks older than 7 days' },
      retention_policy: { state: 'disabled', reason: 'STORAGE_RETENTION=off' },
      rollups: { state: 'applied', detail: 'esp_telemetry_1m (esp_telemetry_1m_g1), esp_telemetry_1h (esp_telemetry_1h_g1)' },
    });
    expect(await chunkInterval()).toBe('1 day');
    expect((await jobs()).map(({ proc_name, on, after, start: s }) => ({ proc_name, on, after, s }))).toEqual([
      { proc_name: 'policy_compression', on: 'esp_telemetry', after: '7 days', s: null },
      { proc_name: 'policy_refresh_continuous_aggregate', on: 'esp_telemetry_1h_g1', after: null, s: null },
      { proc_name: 'policy_refresh_continuous_aggregate', on: 'esp_telemetry_1m_g1', after: null, s: null },
    ]);
    const settings = await all(
      `SELECT attname::text AS col, segmentby_column_index AS seg, orderby_column_index AS ord, orderby_asc AS asc FROM timescaledb_information.compression_settings WHERE hypertable_name = 'esp_telemetry' ORDER BY 1`,
    );
    expect(settings).toEqual([
      { col: 'ts', seg: null, ord: 1, asc: false },
      { col: 'well_id', seg: 1, ord: null, asc: null },
    ]);
  });

  it('changes nothing on a start with the same settings (same jobs, same ids)', async () => {
    const before = await jobs();
    await start({});
    expect(await jobs()).toEqual(before);
  });

  it('applies a new chunk interval, policy age and retention on restart; new chunks get the new interval', async () => {
    const { storage } = await start({ chunkIntervalS: DAY / 2, compressAfterS: DAY, retentionS: 30 * DAY });
    expect(storage.features.hypertable).toEqual({ state: 'applied', detail: 'chunks of 12 hours' });
    expect(storage.features.retention_policy).toEqual({ state: 'applied', detail: 'chunks older than 30 days dropped' });
    expect(await chunkInterval()).toBe('12:00:00');
    expect((await jobs()).map(({ proc_name, on, after, start: s }) => ({ proc_name, on, after, s }))).toEqual([
      { proc_name: 'policy_compression', on: 'esp_telemetry', after: '1 day', s: null },
      { proc_name: 'policy_refresh_continuous_aggregate', on: 'esp_telemetry_1h_g1', after: null, s: '30 days' },
      { proc_name: 'policy_refresh_continuous_aggregate', on: 'esp_telemetry_1m_g1', after: null, s: '30 days' },
      { proc_name: 'policy_retention', on: 'esp_telemetry', after: '30 days', s: null },
    ]);
    await client.query(
      `INSERT INTO esp_telemetry (ts, well_id, tree_pressure_pa) VALUES (now() - INTERVAL '3 days', 'W1', 1), ('2018-01-01T00:00:00Z', 'W1', 2)`,
    );
    const widths = await all<{ w: string }>(
      `SELECT (range_end - range_start)::text AS w FROM timescaledb_information.chunks WHERE hypertable_name = 'esp_telemetry'`,
    );
    expect(widths).toEqual([{ w: '12:00:00' }, { w: '12:00:00' }]);
  });

  it('drops only chunks past the retention age when the retention policy runs', async () => {
    const [job] = (await jobs()).filter((j) => j.proc_name === 'policy_retention');
    await client.query(`CALL run_job(${job!.job_id})`);
    expect(await all(`SELECT tree_pressure_pa AS p FROM esp_telemetry`)).toEqual([{ p: 1 }]);
  });

  it('removes the retention policy when set back to off, and puts the rollup windows back to open', async () => {
    const { storage } = await start({ chunkIntervalS: DAY / 2, compressAfterS: DAY, retentionS: null });
    expect(storage.features.retention_policy).toEqual({ state: 'disabled', reason: 'STORAGE_RETENTION=off' });
    const left = await jobs();
    expect(left.map((j) => j.proc_name)).not.toContain('policy_retention');
    expect(left.filter((j) => j.proc_name === 'policy_refresh_continuous_aggregate').map((j) => j.start)).toEqual([null, null]);
  });

  it('removes the columnstore and refresh policies when compression and rollups are turned off, and restores them', async () => {
    const off = await start({ compressAfterS: null, rollups: [] });
    expect(off.storage.features.compression).toEqual({ state: 'disabled', reason: 'STORAGE_COMPRESS_AFTER=off; chunks already compressed stay compressed' });
    expect(off.storage.features.compression_policy).toEqual({ state: 'disabled', reason: 'STORAGE_COMPRESS_AFTER=off' });
    expect(off.storage.features.rollups.state).toBe('disabled');
    expect(await jobs()).toEqual([]);
    // The rollup views stay queryable (real-time aggregation over the raw rows).
    expect(await all(`SELECT readings::int AS n FROM esp_telemetry_1h`)).toEqual([{ n: 1 }]);
    const on = await start({});
    expect(Object.values(on.storage.features).map((f) => f.state)).toEqual(['applied', 'applied', 'applied', 'disabled', 'applied']);
    expect((await jobs()).map((j) => `${j.proc_name} ${j.on} ${j.after ?? ''}`)).toEqual([
      'policy_compression esp_telemetry 7 days',
      'policy_refresh_continuous_aggregate esp_telemetry_1h_g1 ',
      'policy_refresh_continuous_aggregate esp_telemetry_1m_g1 ',
    ]);
  });
});
