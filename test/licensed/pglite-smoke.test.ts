// Licensed TimescaleDB (PGlite build, test tool only): the test group's own check that the
// features the project relies on are present, so a later failure points at our code.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LicensedDb, openLicensedTimescale } from '../support/pglite.ts';

describe('licensed TimescaleDB (PGlite build)', () => {
  let db: LicensedDb;
  beforeAll(async () => {
    db = await openLicensedTimescale();
  });
  afterAll(async () => {
    await db?.close();
  });

  it('reports the Timescale license and a 2.18+ version (columnstore API names)', async () => {
    const { rows } = await db.query<{ v: string; l: string }>(
      `SELECT extversion AS v, current_setting('timescaledb.license') AS l FROM pg_extension WHERE extname = 'timescaledb'`,
    );
    expect(rows[0]?.l).toBe('timescale');
    const [major, minor] = (rows[0]?.v ?? '0.0').split('.').map(Number);
    expect((major ?? 0) * 100 + (minor ?? 0)).toBeGreaterThanOrEqual(218);
  });

  it('compresses a chunk by policy and takes COPY text from a blob', async () => {
    await db.exec(`CREATE TABLE smoke (ts timestamptz NOT NULL, well_id text NOT NULL, p double precision, UNIQUE (well_id, ts));
      SELECT create_hypertable('smoke', by_range('ts', INTERVAL '1 day'));
      ALTER TABLE smoke SET (timescaledb.enable_columnstore, timescaledb.segmentby = 'well_id', timescaledb.orderby = 'ts DESC');`);
    const copied = await db.copyFrom('smoke (ts, well_id, p)', '2024-01-01 00:00:00+00\tw1\t1.5\n2024-01-01 00:00:01+00\tw1\t\\N\n');
    expect(copied).toBe(2);
    await db.query(`CALL add_columnstore_policy('smoke', after => INTERVAL '7 days')`);
    const job = await db.query<{ job_id: number }>(`SELECT job_id FROM timescaledb_information.jobs WHERE hypertable_name = 'smoke'`);
    await db.query(`CALL run_job(${job.rows[0]?.job_id})`);
    const stats = await db.query<{ number_compressed_chunks: number }>(`SELECT number_compressed_chunks FROM hypertable_columnstore_stats('smoke')`);
    expect(stats.rows[0]?.number_compressed_chunks).toBe(1);
  });
});
