// Licensed TimescaleDB (PGlite build, test tool only): the project's real migrations, storage
// plan, policies and rollups on the real well data. Compression is applied by the policy
// (CALL run_job: PGlite has no background workers), rollups match a direct aggregate over the
// raw rows, and a channel added to the catalog reaches the table and the rollups without
// decompressing any chunk.

import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Channel, DEFAULT_CATALOG } from '../../src/decode/catalog.ts';
import { packChannels } from '../../src/decode/channels.ts';
import type { Reading } from '../../src/decode/decode.ts';
import type { SqlClient } from '../../src/schema/apply.ts';
import { migrateWith } from '../../src/schema/migrate.ts';
import { type LicensedDb, openLicensedTimescale } from '../support/pglite.ts';
import { sqlClient } from '../support/sql-client.ts';
import { copyOf, wellReadings } from '../support/well-rows.ts';

const log = pino({ level: 'silent' });
const SAND: Channel = { column: 'sand_rate_g_s', unit: 'g/s', min: 0, max: 1_000, description: 'Sand production rate' };

let db: LicensedDb;
let client: SqlClient;
let readings: Reading[];

async function one<T>(sql: string, params?: unknown[]): Promise<T> {
  const { rows } = await client.query(sql, params);
  return rows[0] as T;
}
async function all<T>(sql: string, params?: unknown[]): Promise<T[]> {
  return (await client.query(sql, params)).rows as T[];
}
/** Runs the policy job `proc` (of hypertable or view `on`) as the scheduler would. */
async function runJob(proc: string, on: string): Promise<void> {
  const job = await one<{ job_id: number } | undefined>(
    `SELECT job_id FROM timescaledb_information.jobs j
      LEFT JOIN timescaledb_information.continuous_aggregates c ON j.hypertable_name IN (c.view_name, c.materialization_hypertable_name)
     WHERE j.proc_name = $1 AND (j.hypertable_name = $2 OR c.view_name = $2)`,
    [proc, on],
  );
  expect(job, `a ${proc} job on ${on}`).toBeDefined();
  await client.query(`CALL run_job(${job!.job_id})`);
}
const chunkStats = () =>
  all<{ chunk_name: string; compression_status: string; after_compression_total_bytes: number }>(
    `SELECT chunk_name, compression_status, after_compression_total_bytes FROM chunk_columnstore_stats('esp_telemetry') ORDER BY chunk_name`,
  );

beforeAll(async () => {
  db = await openLicensedTimescale();
  client = sqlClient(db);
  readings = wellReadings(DEFAULT_CATALOG);
  const { storage } = await migrateWith(client, DEFAULT_CATALOG, log);
  expect(storage.license).toBe('timescale');
  expect(storage.api).toBe('columnstore');
  expect(storage.mode).toBe('timescaledb_compressed');
  const { target, text } = copyOf(DEFAULT_CATALOG, readings);
  expect(await db.copyFrom(target, text)).toBe(readings.length);
});
afterAll(async () => {
  await db?.close();
});

describe('licensed TimescaleDB: compression and rollups on the real well data', () => {
  it('compresses every chunk by the columnstore policy, to a fraction of the uncompressed size', async () => {
    const before = await one<{ bytes: number; n: number; s: number }>(
      `SELECT hypertable_size('esp_telemetry')::float8 AS bytes, count(*)::int AS n, sum(downhole_gauge_pressure_pa) AS s FROM esp_telemetry`,
    );
    expect(before.n).toBe(readings.length);
    // The shipped data is from 2017-2018: every chunk is older than STORAGE_COMPRESS_AFTER.
    await runJob('policy_compression', 'esp_telemetry');
    const stats = await one<{
      total_chunks: number;
      number_compressed_chunks: number;
      before_compression_total_bytes: number;
      after_compression_total_bytes: number;
    }>(
      `SELECT total_chunks, number_compressed_chunks, before_compression_total_bytes::float8 AS before_compression_total_bytes, after_compression_total_bytes::float8 AS after_compression_total_bytes
         FROM hypertable_columnstore_stats('esp_telemetry')`,
    );
    expect(stats.total_chunks).toBeGreaterThan(1);
    expect(stats.number_compressed_chunks).toBe(stats.total_chunks);
    const after = await one<{ bytes: number; n: number; s: number }>(
      `SELECT hypertable_size('esp_telemetry')::float8 AS bytes, count(*)::int AS n, sum(downhole_gauge_pressure_pa) AS s FROM esp_telemetry`,
    );
    const ratio = stats.before_compression_total_bytes / stats.after_compression_total_bytes;
    console.info(
      `compression on ${readings.length} real well readings in ${stats.total_chunks} chunks: ${stats.before_compression_total_bytes} → ${stats.after_compression_total_bytes} bytes (${ratio.toFixed(1)}:1); hypertable_size ${before.bytes} → ${after.bytes}`,
    );
    expect(ratio).toBeGreaterThan(4);
    expect(after.bytes).toBeLessThan(before.bytes / 2);
    // Same rows, same values, read back from the columnstore.
    expect(after.n).toBe(before.n);
    expect(after.s).toBeCloseTo(before.s, 0);
  });

  it.each([
    ['1m', '1 minute'],
    ['1h', '1 hour'],
  ])('refreshes esp_telemetry_%s by its policy to exactly a direct aggregate over the raw rows', async (rollup, width) => {
    await runJob('policy_refresh_continuous_aggregate', `esp_telemetry_${rollup}_g1`);
    const mat = await one<{ name: string }>(
      `SELECT format('%I.%I', materialization_hypertable_schema, materialization_hypertable_name) AS name FROM timescaledb_information.continuous_aggregates WHERE view_name = $1`,
      [`esp_telemetry_${rollup}_g1`],
    );
    const materialized = await one<{ n: number }>(`SELECT count(*)::int AS n FROM ${mat.name}`);
    const cols = DEFAULT_CATALOG.map((c) => c.column);
    const direct = cols.flatMap((c) => [
      `min(${c}) AS ${c}_min`,
      `max(${c}) AS ${c}_max`,
      `avg(${c}) AS ${c}_avg`,
      `last(${c}, ts) AS ${c}_last`,
      `count(${c}) AS ${c}_count`,
    ]);
    const differs = cols.flatMap((c) =>
      ['min', 'max', 'avg', 'last', 'count'].map((a) => {
        const [v, d] = [`v.${c}_${a}`, `d.${c}_${a}`];
        return `NOT (${v} IS NOT DISTINCT FROM ${d} OR abs(${v} - ${d}) <= 1e-9 * greatest(abs(${d}), 1))`;
      }),
    );
    const cmp = await one<{ buckets: number; missing: number; differing: number; readings: number }>(`
      WITH d AS (SELECT well_id, time_bucket(INTERVAL '${width}', ts) AS bucket, count(*) AS readings, ${direct.join(', ')}
                   FROM esp_telemetry GROUP BY 1, 2)
      SELECT count(*)::int AS buckets,
             count(*) FILTER (WHERE v.readings IS NULL OR d.readings IS NULL)::int AS missing,
             count(*) FILTER (WHERE v.readings <> d.readings OR ${differs.join(' OR ')})::int AS differing,
             sum(v.readings)::int AS readings
        FROM d FULL JOIN esp_telemetry_${rollup} v ON v.well_id = d.well_id AND v.bucket = d.bucket`);
    expect(cmp.missing).toBe(0);
    expect(cmp.differing).toBe(0);
    expect(cmp.readings).toBe(readings.length);
    // The policy materialized the buckets (not only real-time aggregation answering).
    expect(materialized.n).toBe(cmp.buckets);
    // The contract's column names, spelled out once.
    const sample = await one<Record<string, unknown>>(
      `SELECT well_id, bucket, readings, downhole_gauge_pressure_pa_min, downhole_gauge_pressure_pa_max, downhole_gauge_pressure_pa_avg, downhole_gauge_pressure_pa_last, downhole_gauge_pressure_pa_count FROM esp_telemetry_${rollup} ORDER BY bucket LIMIT 1`,
    );
    expect(sample.bucket).toBeInstanceOf(Date);
    expect(typeof sample.downhole_gauge_pressure_pa_avg).toBe('number');
  });

  it('adds a new channel over compressed chunks, to the table and to the rollups, decompressing nothing', async () => {
    const before = await chunkStats();
    expect(before.length).toBeGreaterThan(0);
    expect(before.every((c) => c.compression_status === 'Compressed')).toBe(true);
    const catalog = [...DEFAULT_CATALOG, SAND];
    const { storage } = await migrateWith(client, catalog, log);
    expect(storage.features.rollups).toEqual({
      state: 'applied',
      detail: 'esp_telemetry_1m (esp_telemetry_1m_g1 + esp_telemetry_1m_g2), esp_telemetry_1h (esp_telemetry_1h_g1 + esp_telemetry_1h_g2)',
    });
    // Ingest with the new catalog: a well reporting sand for 3 minutes, two hours ago.
    const startUs = (Math.floor(Date.now() / 60_000) * 60_000 - 2 * 3_600_000) * 1000;
    const fresh: Reading[] = [0, 1, 2].flatMap((m) =>
      [0, 30].map((s) => ({
        wellId: 'WELL-SAND',
        site: 'offshore',
        tsUs: startUs + (m * 60 + s) * 1e6,
        seq: null,
        extra: null,
        ...packChannels(catalog.map((c) => (c === SAND ? 10 * (m + 1) + s / 30 : c.column === 'tree_pressure_pa' ? 1.5e7 : null))),
      })),
    );
    const { target, text } = copyOf(catalog, fresh);
    expect(await db.copyFrom(target, text)).toBe(6);
    // Raw table: the new column holds the new values; history reads NULL.
    expect(
      await one(
        `SELECT count(sand_rate_g_s)::int AS new, count(*) FILTER (WHERE sand_rate_g_s IS NULL)::int AS old, sum(sand_rate_g_s) AS s FROM esp_telemetry`,
      ),
    ).toEqual({ new: 6, old: readings.length, s: 10 + 11 + 20 + 21 + 30 + 31 });
    // The new generation answers at once (real-time aggregation over a WITH NO DATA view).
    expect(await all(`SELECT sand_rate_g_s_avg AS a, sand_rate_g_s_count AS n FROM esp_telemetry_1m_g2 ORDER BY bucket`)).toEqual([
      { a: 10.5, n: 2 },
      { a: 20.5, n: 2 },
      { a: 30.5, n: 2 },
    ]);
    for (const g of ['esp_telemetry_1m_g1', 'esp_telemetry_1m_g2', 'esp_telemetry_1h_g1', 'esp_telemetry_1h_g2'])
      await runJob('policy_refresh_continuous_aggregate', g);
    const minutes = await all<{ readings: number; avg: number; last: number; min: number; max: number; n: number; p: number }>(
      `SELECT readings::int, sand_rate_g_s_avg AS avg, sand_rate_g_s_last AS last, sand_rate_g_s_min AS min, sand_rate_g_s_max AS max, sand_rate_g_s_count::int AS n, tree_pressure_pa_avg AS p
         FROM esp_telemetry_1m WHERE well_id = 'WELL-SAND' ORDER BY bucket`,
    );
    expect(minutes).toEqual([
      { readings: 2, avg: 10.5, last: 11, min: 10, max: 11, n: 2, p: 1.5e7 },
      { readings: 2, avg: 20.5, last: 21, min: 20, max: 21, n: 2, p: 1.5e7 },
      { readings: 2, avg: 30.5, last: 31, min: 30, max: 31, n: 2, p: 1.5e7 },
    ]);
    const hour = await all(`SELECT sum(sand_rate_g_s_count)::int AS n FROM esp_telemetry_1h WHERE well_id = 'WELL-SAND'`);
    expect(hour).toEqual([{ n: 6 }]);
    // History in the rollup: every old bucket has no sand value, count 0 (not NULL).
    expect(
      await one(
        `SELECT count(*) FILTER (WHERE sand_rate_g_s_count <> 0 OR sand_rate_g_s_avg IS NOT NULL)::int AS bad, count(*)::int AS n FROM esp_telemetry_1h WHERE well_id <> 'WELL-SAND'`,
      ),
    ).toEqual({ bad: 0, n: expect.any(Number) });
    // No chunk was decompressed: the same chunks, still compressed, the same compressed bytes.
    const after = (await chunkStats()).filter((c) => before.some((b) => b.chunk_name === c.chunk_name));
    expect(after).toEqual(before);
  });
});
