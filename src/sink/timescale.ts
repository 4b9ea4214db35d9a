// TimescaleDB features, applied at every start after migrations: hypertable (1-day chunks),
// compression (segment by well_id, order by ts DESC) and a 7-day compression policy. Where the
// server lacks TimescaleDB, or has the Apache-only build (compression → SQLSTATE 0A000), the
// service runs on what is there and says so; it never fails on that.
import type { PoolClient } from 'pg';
import type { Logger } from '../log/logger.ts';

/** What the server gave us, best first. */
export type StorageMode = 'timescaledb_compressed' | 'timescaledb_hypertable' | 'postgresql_table';

export const CHUNK_INTERVAL = '1 day';
export const COMPRESS_AFTER = '7 days';

/** @returns the storage mode reached; logs a warning naming what is missing and why. */
export async function applyTimescale(client: PoolClient, log: Logger): Promise<StorageMode> {
  const ext = await client.query<{ installed: string | null; available: string | null; preloaded: boolean }>(
    `SELECT (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb') AS installed,
            (SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb') AS available,
            current_setting('shared_preload_libraries') ~ 'timescaledb' AS preloaded`,
  );
  const row = ext.rows[0];
  if (!row?.installed || !row.preloaded) {
    // Without the preload, TimescaleDB refuses to load and may end the session: don't try.
    if (!row?.available || !row.preloaded) {
      log.warn(
        { available: row?.available ?? null, preloaded: row?.preloaded ?? false },
        'TimescaleDB is not available on this server (not installed, or not in shared_preload_libraries): storing in a plain PostgreSQL table (no chunks, no compression)',
      );
      return 'postgresql_table';
    }
    try {
      await client.query('CREATE EXTENSION IF NOT EXISTS timescaledb');
    } catch (err) {
      log.warn({ err }, 'TimescaleDB could not be created (is it in shared_preload_libraries?): storing in a plain PostgreSQL table');
      return 'postgresql_table';
    }
  }
  await client.query(
    `SELECT create_hypertable('esp_telemetry', by_range('ts', INTERVAL '${CHUNK_INTERVAL}'), if_not_exists => true, migrate_data => true)`,
  );
  try {
    const compressed = await client.query<{ compression_enabled: boolean }>(
      `SELECT compression_enabled FROM timescaledb_information.hypertables WHERE hypertable_name = 'esp_telemetry'`,
    );
    if (!compressed.rows[0]?.compression_enabled) {
      await client.query(
        `ALTER TABLE esp_telemetry SET (timescaledb.compress, timescaledb.compress_segmentby = 'well_id', timescaledb.compress_orderby = 'ts DESC')`,
      );
    }
    await client.query(`SELECT add_compression_policy('esp_telemetry', INTERVAL '${COMPRESS_AFTER}', if_not_exists => true)`);
    return 'timescaledb_compressed';
  } catch (err) {
    const code = (err as { code?: string }).code;
    const license = await client.query<{ l: string }>(`SELECT current_setting('timescaledb.license', true) AS l`).catch(() => undefined);
    // Expected on the Apache-only build: one line, no stack trace.
    log.warn(
      { sqlstate: code, error: (err as Error).message, license: license?.rows[0]?.l },
      'TimescaleDB compression is not available (Apache-only build?): hypertable without compression',
    );
    return 'timescaledb_hypertable';
  }
}
