// Licensed TimescaleDB (PGlite build, test tool only): late and backfilled readings into compressed
// chunks (ON CONFLICT DO NOTHING on compressed chunks erred or skipped rows: timescaledb #4523,
// #7672), through the service's own batch transaction (writer.ts commitBatch with writer-sql.ts
// statements and COPY text) and its real Committer. Concurrency (2 connections) cannot run in
// PGlite: see test/integration/late-data.test.ts.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CATALOG } from '../../src/decode/catalog.ts';
import type { Reading } from '../../src/decode/decode.ts';
import type { RejectRow } from '../../src/decode/work.ts';
import { createMetrics, type Metrics } from '../../src/metrics/metrics.ts';
import { Committer } from '../../src/sink/committer.ts';
import { commitBatch, type SqlSession, type WriteOptions, type WriteResult } from '../../src/sink/writer.ts';
import { readingLines, writerSql } from '../../src/sink/writer-sql.ts';
import { message, reading } from '../support/fixtures.ts';
import { type LicensedDb, openLicensedTimescale } from '../support/pglite.ts';

/** First release with timescaledb PR #7673 (#7672: ON CONFLICT DO NOTHING on compressed chunks skipped the rows after the first conflict). */
const FIXED_RELEASE = '2.18.1';
const SQL_DIR = fileURLToPath(new URL('../../sql/', import.meta.url));
const sql = writerSql(DEFAULT_CATALOG);
const N = DEFAULT_CATALOG.length;
const DAY_US = 86_400_000_000;
/** Midnight UTC, 30 days ago: old enough for a 7-day columnstore policy. */
const DAY0_US = (Math.floor(Date.now() / 86_400_000) - 30) * DAY_US;

/** The pump's hourly channels of the seed: deterministic per hour. */
const pump = (h: number) => ({ motor_current_a: 40 + h, intake_pressure_kpa: 9000 + h });
const hourly = (wellId: string, dayUs: number) => Array.from({ length: 24 }, (_, h) => reading(wellId, dayUs + h * 3_600_000_000, pump(h)));

function pgliteSession(db: LicensedDb): SqlSession {
  return {
    query: async <R>(text: string, params?: unknown[]) => db.query<R>(text, params),
    copyIn: async (target, text) => {
      await db.copyFrom(target, [...text].map((t) => (typeof t === 'string' ? t : Buffer.from(t).toString('utf8'))).join(''));
    },
  };
}

function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.-]/).map((x) => Number.parseInt(x, 10) || 0);
  const pb = b.split(/[.-]/).map((x) => Number.parseInt(x, 10) || 0);
  for (let i = 0; i < 3; i++) if ((pa[i] ?? 0) !== (pb[i] ?? 0)) return (pa[i] ?? 0) - (pb[i] ?? 0);
  return 0;
}

describe('late and backfilled data into compressed chunks (licensed TimescaleDB, PGlite build)', () => {
  let db: LicensedDb;
  let session: SqlSession;
  /** Every batch transaction the committer ran: rows, options, outcome. */
  const transactions: { rows: number; lifted: boolean; error: string | null }[] = [];

  const write = (rows: readonly Reading[], rejects: readonly RejectRow[] = [], options: WriteOptions = {}) =>
    commitBatch(session, sql, N, rows, rejects, options);

  /** The service's committer on PGlite: the writer double runs commitBatch, nothing else. */
  function committer(): { c: Committer; metrics: Metrics } {
    const metrics = createMetrics();
    const writer = {
      async write(rows: readonly Reading[], rejects: readonly RejectRow[], _signal?: AbortSignal, options: WriteOptions = {}): Promise<WriteResult> {
        try {
          const r = await write(rows, rejects, options);
          transactions.push({ rows: rows.length, lifted: options.liftDecompressionLimit === true, error: null });
          return r;
        } catch (err) {
          transactions.push({ rows: rows.length, lifted: options.liftDecompressionLimit === true, error: (err as { code?: string }).code ?? 'error' });
          throw err;
        }
      },
    };
    const c = new Committer({
      writer,
      catalog: DEFAULT_CATALOG,
      metrics,
      log: pino({ level: 'silent' }),
      retryMaxDelayMs: 50,
      signal: new AbortController().signal,
      clock: () => Date.now(),
      onDbState: () => undefined,
    });
    return { c, metrics };
  }

  /** One message per reading, as a 1 Hz device publishes them (the committer splits by message). */
  const batch = (readings: Reading[]) => readings.map((r) => message([r]));

  async function counter(metrics: Metrics, name: string, labels: Record<string, string> = {}): Promise<number> {
    const m = (await metrics.registry.getMetricsAsJSON()).find((x) => x.name === name);
    const v = (m?.values ?? []).find((x) => Object.entries(labels).every(([k, l]) => (x.labels as Record<string, unknown>)[k] === l));
    return Number(v?.value ?? 0);
  }

  /** Converts the chunk holding `dayUs` to the columnstore; returns its name. */
  async function compressDay(dayUs: number): Promise<string> {
    const { rows } = await db.query<{ chunk: string }>(
      `SELECT format('%I.%I', chunk_schema, chunk_name) AS chunk FROM timescaledb_information.chunks
       WHERE hypertable_name = 'esp_telemetry' AND range_start <= $1::timestamptz AND range_end > $1::timestamptz`,
      [new Date(dayUs / 1000).toISOString()],
    );
    const chunk = rows[0]!.chunk;
    await db.query(`CALL convert_to_columnstore('${chunk}')`);
    const st = await db.query<{ is_compressed: boolean }>(
      `SELECT is_compressed FROM timescaledb_information.chunks WHERE format('%I.%I', chunk_schema, chunk_name) = $1`,
      [chunk],
    );
    expect(st.rows[0]?.is_compressed).toBe(true);
    return chunk;
  }

  async function keyCounts(wellId: string, fromUs: number, toUs: number): Promise<{ keys: number; rows: number }> {
    const { rows } = await db.query<{ keys: number; rows: number }>(
      `SELECT count(DISTINCT ts)::int AS keys, count(*)::int AS rows FROM esp_telemetry WHERE well_id = $1 AND ts >= $2::timestamptz AND ts < $3::timestamptz`,
      [wellId, new Date(fromUs / 1000).toISOString(), new Date(toUs / 1000).toISOString()],
    );
    return rows[0]!;
  }

  const setLimit = (n: number) => db.exec(`SET timescaledb.max_tuples_decompressed_per_dml_transaction = ${n}`);

  beforeAll(async () => {
    db = await openLicensedTimescale();
    session = pgliteSession(db);
    // The project's schema: sql/*.sql in order, the channel columns, the hypertable, columnstore.
    for (const f of readdirSync(SQL_DIR)
      .filter((x) => /^\d{3}_.+\.sql$/.test(x))
      .sort())
      await db.exec(readFileSync(path.join(SQL_DIR, f), 'utf8'));
    for (const c of DEFAULT_CATALOG) await db.exec(`ALTER TABLE esp_telemetry ADD COLUMN IF NOT EXISTS ${c.column} double precision`);
    await db.exec(`SELECT create_hypertable('esp_telemetry', by_range('ts', INTERVAL '1 day'), migrate_data => true);
      ALTER TABLE esp_telemetry SET (timescaledb.enable_columnstore, timescaledb.segmentby = 'well_id', timescaledb.orderby = 'ts DESC');`);
    await db.exec(sql.createStage);
  });
  afterAll(async () => {
    await db?.close();
  });

  it(`runs a TimescaleDB release with the fix for #7672 (PR #7673, in ${FIXED_RELEASE}); fails loudly on an older one`, async () => {
    const { rows } = await db.query<{ v: string; l: string }>(
      `SELECT extversion AS v, current_setting('timescaledb.license') AS l FROM pg_extension WHERE extname = 'timescaledb'`,
    );
    const version = rows[0]?.v ?? '0';
    expect(rows[0]?.l).toBe('timescale');
    expect(
      compareVersions(version, FIXED_RELEASE) >= 0,
      `TimescaleDB ${version} predates ${FIXED_RELEASE}: INSERT … ON CONFLICT DO NOTHING on compressed chunks skips every row after the first conflict (timescaledb #7672)`,
    ).toBe(true);
  });

  describe('late data into a compressed chunk: A (a compressed row again), then B, C, D (new), ESP-006 hourly, 30 days ago', () => {
    const day = DAY0_US;
    const at = (h: number, minute: number) => day + h * 3_600_000_000 + minute * 60_000_000;
    let before: Record<string, unknown>;

    beforeAll(async () => {
      expect(await write(hourly('ESP-006', day))).toEqual({ inserted: 24, duplicates: 0, conflicts: 0, filled: 0 });
      await compressDay(day);
      before = (await db.query(`SELECT * FROM esp_telemetry WHERE well_id = 'ESP-006' AND ts = $1::timestamptz`, [new Date(at(5, 0) / 1000).toISOString()]))
        .rows[0]!;
    });

    it('the server itself (PR #7673): INSERT … ON CONFLICT DO NOTHING from a table ordered A, B, C, D stores B, C, D', async () => {
      await db.exec(`CREATE TEMP TABLE conflict_probe (LIKE esp_telemetry INCLUDING DEFAULTS)`);
      const iso = (us: number) => new Date(us / 1000).toISOString();
      await db.query(
        `INSERT INTO conflict_probe (ts, well_id, motor_current_a) VALUES ($1, 'ESP-006', 1), ($2, 'ESP-006', 2), ($3, 'ESP-006', 3), ($4, 'ESP-006', 4)`,
        [iso(at(6, 0)), iso(at(6, 1)), iso(at(6, 2)), iso(at(6, 3))],
      );
      const ins = await db.query(
        `INSERT INTO esp_telemetry (ts, well_id, motor_current_a) SELECT ts, well_id, motor_current_a FROM conflict_probe ORDER BY ts ON CONFLICT (well_id, ts) DO NOTHING`,
      );
      expect(ins.rowCount).toBe(3);
      const after = await keyCounts('ESP-006', at(6, 0), at(6, 4));
      expect(after).toEqual({ keys: 4, rows: 4 });
    });

    it('fast path: new readings COPY straight into the compressed chunk', async () => {
      const r = await write([reading('ESP-006', at(7, 30), pump(7)), reading('ESP-006', at(8, 30), pump(8))]);
      expect(r).toEqual({ inserted: 2, duplicates: 0, conflicts: 0, filled: 0 });
    });

    it('A, B, C, D: the COPY meets A (23505), the staged path stores B, C, D once and leaves A unchanged', async () => {
      const batchAbcd = [
        reading('ESP-006', at(5, 0), pump(5)),
        reading('ESP-006', at(5, 1), pump(5)),
        reading('ESP-006', at(5, 2), pump(5)),
        reading('ESP-006', at(5, 3), pump(5)),
      ];
      // The fast path alone refuses it: that is what sends the batch to the staged path.
      await db.exec('BEGIN');
      await expect(db.copyFrom(sql.telemetryCopyTarget, [...readingLines(batchAbcd, N)].join(''))).rejects.toMatchObject({ code: '23505' });
      await db.exec('ROLLBACK');
      expect(await write(batchAbcd)).toEqual({ inserted: 3, duplicates: 1, conflicts: 0, filled: 0 });
      expect(await keyCounts('ESP-006', at(5, 0), at(5, 4))).toEqual({ keys: 4, rows: 4 });
      const a = (await db.query(`SELECT * FROM esp_telemetry WHERE well_id = 'ESP-006' AND ts = $1::timestamptz`, [new Date(at(5, 0) / 1000).toISOString()]))
        .rows[0];
      expect(a).toEqual(before);
      // The same batch again (a redelivery): nothing new, nothing changed.
      expect(await write(batchAbcd)).toEqual({ inserted: 0, duplicates: 4, conflicts: 0, filled: 0 });
      expect(await keyCounts('ESP-006', day, day + DAY_US)).toEqual({ keys: 24 + 3 + 2 + 3, rows: 24 + 3 + 2 + 3 });
    });

    it('A with a disagreeing value is counted and A keeps its stored value; A with a missing channel fills it in', async () => {
      const clash = await write([reading('ESP-006', at(9, 0), { motor_current_a: 99 }), reading('ESP-006', at(9, 5), pump(9))]);
      expect(clash).toEqual({ inserted: 1, duplicates: 1, conflicts: 1, filled: 0 });
      const gauge = await write([reading('ESP-006', at(10, 0), { downhole_gauge_pressure_pa: 2.1e7 })]);
      expect(gauge).toEqual({ inserted: 0, duplicates: 1, conflicts: 0, filled: 1 });
      const { rows } = await db.query<{ h9: number; h10: number; h10g: number }>(
        `SELECT (SELECT motor_current_a FROM esp_telemetry WHERE well_id = 'ESP-006' AND ts = $1::timestamptz) AS h9,
                (SELECT motor_current_a FROM esp_telemetry WHERE well_id = 'ESP-006' AND ts = $2::timestamptz) AS h10,
                (SELECT downhole_gauge_pressure_pa FROM esp_telemetry WHERE well_id = 'ESP-006' AND ts = $2::timestamptz) AS h10g`,
        [new Date(at(9, 0) / 1000).toISOString(), new Date(at(10, 0) / 1000).toISOString()],
      );
      expect(rows[0]).toEqual({ h9: 49, h10: 50, h10g: 2.1e7 });
    });

    it('after the columnstore policy recompresses the chunk (late rows merged in), A, B, C, D again changes nothing', async () => {
      const partial = () =>
        db.query<{ partial: boolean }>(
          `SELECT (c.status & 8) <> 0 AS partial FROM _timescaledb_catalog.chunk c JOIN timescaledb_information.chunks i ON i.chunk_name = c.table_name
           WHERE i.hypertable_name = 'esp_telemetry' AND i.range_start = $1::timestamptz`,
          [new Date(day / 1000).toISOString()],
        );
      // The late rows sit uncompressed beside the compressed batches until the policy runs.
      expect((await partial()).rows[0]?.partial).toBe(true);
      await db.query(`CALL add_columnstore_policy('esp_telemetry', after => INTERVAL '7 days', if_not_exists => true)`);
      const job = await db.query<{ job_id: number }>(
        `SELECT job_id FROM timescaledb_information.jobs WHERE hypertable_name = 'esp_telemetry' AND proc_name = 'policy_compression'`,
      );
      await db.query(`CALL run_job(${job.rows[0]!.job_id})`);
      expect((await partial()).rows[0]?.partial).toBe(false);
      const batchAbcd = [0, 1, 2, 3].map((m) => reading('ESP-006', at(5, m), pump(5)));
      expect(await write(batchAbcd)).toEqual({ inserted: 0, duplicates: 4, conflicts: 0, filled: 0 });
      expect(await keyCounts('ESP-006', day, day + DAY_US)).toEqual({ keys: 24 + 3 + 2 + 3 + 1, rows: 24 + 3 + 2 + 3 + 1 });
    });
  });

  describe('53400: the decompression limit', () => {
    afterAll(async () => {
      await setLimit(100_000);
    });

    it('a batch whose fill would decompress past the limit is split by message, ordered by (well_id, ts), into transactions that store every row once', async () => {
      const day = DAY0_US + DAY_US;
      const wells = ['ESP-006', 'ESP-007', 'ESP-008'];
      for (const w of wells) await write(hourly(w, day));
      await compressDay(day);
      // A downhole gauge of each well brings its channel for every stored hour: 72 fills, 72
      // compressed tuples to decompress in one statement; the limit allows 30 (a batch of 24).
      const gauge = wells.flatMap((w, i) =>
        Array.from({ length: 24 }, (_, h) => reading(w, day + h * 3_600_000_000, { downhole_gauge_pressure_pa: 2e7 + i * 1e5 + h })),
      );
      await setLimit(30);
      await expect(write(gauge)).rejects.toMatchObject({ code: '53400' });
      transactions.length = 0;
      const { c, metrics } = committer();
      await c.commit(batch(gauge));
      const splits = await counter(metrics, 'esp_ingest_decompression_limit_total', { action: 'split' });
      expect(splits).toBeGreaterThan(0);
      expect(await counter(metrics, 'esp_ingest_decompression_limit_total', { action: 'lifted' })).toBe(0);
      expect(transactions.filter((t) => t.error !== null && t.error !== '53400')).toEqual([]);
      for (const w of wells) expect(await keyCounts(w, day, day + DAY_US)).toEqual({ keys: 24, rows: 24 });
      const { rows } = await db.query<{ filled: number; pump: number }>(
        `SELECT count(downhole_gauge_pressure_pa)::int AS filled, count(motor_current_a)::int AS pump FROM esp_telemetry WHERE ts >= $1::timestamptz AND ts < $2::timestamptz`,
        [new Date(day / 1000).toISOString(), new Date((day + DAY_US) / 1000).toISOString()],
      );
      expect(rows[0]).toEqual({ filled: 72, pump: 72 });
      console.log(
        `53400 split: 72 fills, limit 30: ${transactions.length} transactions (${transactions.filter((t) => t.error === '53400').length} refused with 53400, ${splits} splits)`,
      );
    });

    it('one reading that alone exceeds the limit is written with the limit lifted for its transaction', async () => {
      const day = DAY0_US + 2 * DAY_US;
      await write(hourly('ESP-006', day));
      await compressDay(day);
      await setLimit(5);
      transactions.length = 0;
      const { c, metrics } = committer();
      await c.commit(batch([reading('ESP-006', day + 3 * 3_600_000_000, { downhole_gauge_pressure_pa: 1.9e7 })]));
      expect(await counter(metrics, 'esp_ingest_decompression_limit_total', { action: 'lifted' })).toBe(1);
      expect(transactions.map((t) => [t.error, t.lifted])).toEqual([
        ['53400', false],
        [null, true],
      ]);
      // SET LOCAL: the session's own limit is back once the transaction ended.
      const { rows } = await db.query<{ v: string }>(`SELECT current_setting('timescaledb.max_tuples_decompressed_per_dml_transaction') AS v`);
      expect(rows[0]?.v).toBe('5');
      const g = await db.query<{ g: number }>(`SELECT downhole_gauge_pressure_pa AS g FROM esp_telemetry WHERE well_id = 'ESP-006' AND ts = $1::timestamptz`, [
        new Date((day + 3 * 3_600_000_000) / 1000).toISOString(),
      ]);
      expect(g.rows[0]?.g).toBe(1.9e7);
    });
  });

  it('backfill: a whole day of 1 Hz readings for one well into a compressed chunk, in service-sized batches (5000), completes with every key once', async () => {
    const day = DAY0_US + 3 * DAY_US;
    await write(hourly('ESP-006', day));
    await write(hourly('ESP-007', day));
    await compressDay(day);
    // The well was offline: its whole day arrives, pump channels plus the downhole gauge, which
    // the 24 stored hours lack (so those are filled on compressed data).
    const day1Hz = Array.from({ length: 86_400 }, (_, s) =>
      reading('ESP-006', day + s * 1_000_000, { ...pump(Math.floor(s / 3600)), downhole_gauge_pressure_pa: 2e7 + s }),
    );
    transactions.length = 0;
    const { c, metrics } = committer();
    const started = performance.now();
    for (let i = 0; i < day1Hz.length; i += 5000) await c.commit(batch(day1Hz.slice(i, i + 5000)));
    const seconds = (performance.now() - started) / 1000;
    expect(await keyCounts('ESP-006', day, day + DAY_US)).toEqual({ keys: 86_400, rows: 86_400 });
    expect(await keyCounts('ESP-007', day, day + DAY_US)).toEqual({ keys: 24, rows: 24 });
    expect(await counter(metrics, 'esp_ingest_readings_committed_total')).toBe(86_400 - 24);
    const { rows } = await db.query<{ g: number }>(
      `SELECT count(downhole_gauge_pressure_pa)::int AS g FROM esp_telemetry WHERE well_id = 'ESP-006' AND ts >= $1::timestamptz AND ts < $2::timestamptz`,
      [new Date(day / 1000).toISOString(), new Date((day + DAY_US) / 1000).toISOString()],
    );
    expect(rows[0]?.g).toBe(86_400);
    const splits = await counter(metrics, 'esp_ingest_decompression_limit_total', { action: 'split' });
    console.log(
      `backfill 1 Hz day into a compressed chunk: 86400 readings in ${seconds.toFixed(1)} s, ${transactions.length} transactions, ${splits} splits (default limit 100000)`,
    );

    // The second well of that chunk, with the limit below one compressed batch (24 tuples): the
    // batch holding an hour mark is split down to that one reading, which is written with the
    // limit lifted; that decompresses the well's batch, and the rest needs no decompression.
    const day1HzB = day1Hz.map((r) => ({ ...r, wellId: 'ESP-007' }));
    await setLimit(10);
    try {
      transactions.length = 0;
      const second = committer();
      const startedB = performance.now();
      for (let i = 0; i < day1HzB.length; i += 5000) await second.c.commit(batch(day1HzB.slice(i, i + 5000)));
      const secondsB = (performance.now() - startedB) / 1000;
      expect(await keyCounts('ESP-007', day, day + DAY_US)).toEqual({ keys: 86_400, rows: 86_400 });
      const splitsB = await counter(second.metrics, 'esp_ingest_decompression_limit_total', { action: 'split' });
      expect(await counter(second.metrics, 'esp_ingest_decompression_limit_total', { action: 'lifted' })).toBe(1);
      expect(splitsB).toBeGreaterThan(0);
      console.log(
        `backfill, limit 10: 86400 readings in ${secondsB.toFixed(1)} s, ${transactions.length} transactions (${transactions.filter((t) => t.error === '53400').length} refused with 53400), ${splitsB} splits, 1 reading with the limit lifted`,
      );
    } finally {
      await setLimit(100_000);
    }
  });
});
