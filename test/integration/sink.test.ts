// The sink against real servers: schema and storage mode on TimescaleDB (Apache build) and on
// plain PostgreSQL; COPY + merge semantics; rejects keep the raw bytes; a killed backend
// mid-COPY discards the connection.

import pg from 'pg';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_CATALOG } from '../../src/decode/catalog.ts';
import type { RejectRow } from '../../src/decode/work.ts';
import { migrate } from '../../src/schema/migrate.ts';
import { RetryableWriteError, TelemetryWriter } from '../../src/sink/writer.ts';
import { reading } from '../support/fixtures.ts';
import { freshDatabase, PLAIN_PG_URL, query, Teardown, waitFor } from '../support/harness.ts';

const log = pino({ level: 'silent' });
const t = new Teardown();
afterAll(() => t.run());

/** 2024-05-01T00:00:00Z, µs since the epoch. */
const MAY_1_US = Date.parse('2024-05-01T00:00:00Z') * 1000;

async function setup(baseUrl?: string) {
  const url = await freshDatabase(t, baseUrl);
  const pool = new pg.Pool({ connectionString: url, max: 2, application_name: 'esp-ingest-test' });
  pool.on('error', () => undefined);
  t.add(() => pool.end());
  const schema = await migrate(pool, DEFAULT_CATALOG, log);
  return { url, pool, schema, writer: new TelemetryWriter(pool, DEFAULT_CATALOG, 30_000) };
}

describe('schema', () => {
  it('makes esp_telemetry a hypertable with 1-day chunks (compressed only where the license allows)', async () => {
    const { url, schema } = await setup();
    expect(schema.storage.mode).toBe(schema.storage.license === 'timescale' ? 'timescaledb_compressed' : 'timescaledb_hypertable');
    const [h] = await query<{ n: string }>(
      url,
      `SELECT count(*) AS n FROM timescaledb_information.dimensions WHERE hypertable_name = 'esp_telemetry' AND column_name = 'ts' AND time_interval = interval '1 day'`,
    );
    expect(Number(h!.n)).toBe(1);
  });

  it('falls back to a plain table where TimescaleDB is missing, and never fails on that', async () => {
    const { url, schema } = await setup(PLAIN_PG_URL);
    expect(schema.storage.mode).toBe('postgresql_table');
    const rows = await query<{ c: string }>(
      url,
      `SELECT count(*) AS c FROM information_schema.columns WHERE table_name = 'esp_telemetry' AND column_name = 'vsd_frequency_hz'`,
    );
    expect(Number(rows[0]!.c)).toBe(1);
  });

  it('applies each migration once, also when two instances start together', async () => {
    const { url, pool } = await setup();
    const [a, b] = await Promise.all([migrate(pool, DEFAULT_CATALOG, log), migrate(pool, DEFAULT_CATALOG, log)]);
    expect([...a.applied, ...b.applied]).toEqual([]);
    const rows = await query<{ n: string }>(url, 'SELECT count(*) AS n FROM esp_schema_migrations');
    expect(Number(rows[0]!.n)).toBeGreaterThan(0);
  });

  it('adds the column of a new catalog channel at start-up', async () => {
    const { url, pool } = await setup();
    await migrate(pool, [...DEFAULT_CATALOG, { column: 'sand_rate_g_s', unit: 'g/s', min: 0, max: 1000, description: 'Sand production rate' }], log);
    const rows = await query(url, `SELECT 1 FROM information_schema.columns WHERE table_name = 'esp_telemetry' AND column_name = 'sand_rate_g_s'`);
    expect(rows).toHaveLength(1);
  });
});

describe('TelemetryWriter', () => {
  it('stores a reading once, fills channels a later reading brings, never overwrites, counts disagreements', async () => {
    const { url, writer } = await setup();
    const first = await writer.write([reading('W1', MAY_1_US, { motor_current_a: 40 })], []);
    expect(first).toEqual({ inserted: 1, duplicates: 0, conflicts: 0, filled: 0 });
    // The downhole gauge of the same well, same second: fills its channel in.
    const gauge = await writer.write([reading('W1', MAY_1_US, { downhole_gauge_pressure_pa: 2.1e7 }, { extra: { gauge: 'pdg-1' } })], []);
    expect(gauge).toEqual({ inserted: 0, duplicates: 1, conflicts: 0, filled: 1 });
    // A disagreeing motor current: counted, stored value kept.
    const clash = await writer.write([reading('W1', MAY_1_US, { motor_current_a: 41 })], []);
    expect(clash).toEqual({ inserted: 0, duplicates: 1, conflicts: 1, filled: 0 });
    const rows = await query<{ motor_current_a: number; downhole_gauge_pressure_pa: number; extra: unknown }>(
      url,
      'SELECT motor_current_a, downhole_gauge_pressure_pa, extra FROM esp_telemetry',
    );
    expect(rows).toEqual([{ motor_current_a: 40, downhole_gauge_pressure_pa: 2.1e7, extra: { gauge: 'pdg-1' } }]);
  });

  it('keeps microseconds and escapes text through COPY', async () => {
    const { url, writer } = await setup();
    const r = reading('W\t2\\N', MAY_1_US + 123_456, { vsd_frequency_hz: 50 }, { site: 's1', extra: { note: 'line1\nline2 \\ ünï 🛢' } });
    await writer.write([r], []);
    const rows = await query<{ well_id: string; us: string; note: string }>(
      url,
      `SELECT well_id, to_char(ts AT TIME ZONE 'UTC', 'US') AS us, extra->>'note' AS note FROM esp_telemetry`,
    );
    expect(rows).toEqual([{ well_id: 'W\t2\\N', us: '123456', note: 'line1\nline2 \\ ünï 🛢' }]);
  });

  it('stores the same rows through the binary and the text COPY format, to the bit', async () => {
    // Both encoders on one batch of awkward values: before 2000 and after 2038, µs, negative,
    // negative zero and subnormal floats, the largest seq, text needing escapes, non-ASCII, a NULL site, jsonb.
    const rows = [
      reading('Poço-7', -1, { vsd_frequency_hz: 5e-324, motor_current_a: -0.1 }, { site: 'Campo\\Sul', seq: Number.MAX_SAFE_INTEGER }),
      reading(
        'Poço-7',
        MAY_1_US + 1,
        { intake_pressure_kpa: 1 / 3, gas_lift_flow_sm3_s: 1e-300, motor_current_a: -0 },
        { seq: 0, extra: { note: 'tab\there ✓', n: [1, { x: null }] } },
      ),
      reading('W\t2', Date.parse('2100-02-28T23:59:59.999Z') * 1000 + 999, { downhole_gauge_pressure_pa: 2e8 }, { site: null, extra: { ünï: '🛢' } }),
    ];
    const stored = async (url: string) =>
      query<{ r: string }>(
        url,
        `SELECT concat_ws('|', ts, well_id, site, seq, extra, float8send(vsd_frequency_hz), float8send(motor_current_a), float8send(intake_pressure_kpa), float8send(gas_lift_flow_sm3_s), float8send(downhole_gauge_pressure_pa)) AS r FROM esp_telemetry ORDER BY well_id, ts`,
      );
    const binary = await setup();
    await binary.writer.write(rows, []);
    const text = await setup();
    // A catalog column of another type makes the writer use the text format.
    await query(text.url, 'ALTER TABLE esp_telemetry ADD COLUMN probe_only_text_pa double precision');
    await query(text.url, 'ALTER TABLE esp_telemetry ALTER COLUMN vibration_mm_s TYPE real');
    await text.writer.write(rows, []);
    const [a, b] = [await stored(binary.url), await stored(text.url)];
    expect(a).toHaveLength(3);
    expect(a).toEqual(b);
  });

  it.each([
    ['numeric', '2.5'],
    ['real', '2.5'],
    // Another 8-byte type: binary data would be taken in without complaint, the float's bits
    // stored as an integer. The text format refuses 2.5 (22P02, as it always did) and stores 3.
    ['bigint', null],
  ] as const)(
    'a channel column ALTERed to %s while running: found in the transaction, retried in the text format, never stored wrong',
    async (type, stored) => {
      const { url, writer } = await setup();
      await writer.write([reading('W-1', MAY_1_US, { vibration_mm_s: 1 })], []);
      await query(url, `ALTER TABLE esp_telemetry ALTER COLUMN vibration_mm_s TYPE ${type}`);
      // Retryable, not refused data (class 22 would move a batch of one message to rejected_messages).
      const first = await writer.write([reading('W-1', MAY_1_US + 1, { vibration_mm_s: 2.5 })], []).catch((err: unknown) => err);
      expect(first).toBeInstanceOf(RetryableWriteError);
      expect((first as RetryableWriteError).code).toBe('42804');
      const retry = writer.write([reading('W-1', MAY_1_US + 1, { vibration_mm_s: 2.5 })], []);
      if (stored === null) {
        await expect(retry).rejects.toMatchObject({ code: '22P02' });
        await writer.write([reading('W-1', MAY_1_US + 1, { vibration_mm_s: 3 })], []);
      } else await retry;
      const rows = await query<{ v: string }>(url, 'SELECT vibration_mm_s::text AS v FROM esp_telemetry ORDER BY ts');
      expect(rows.map((r) => r.v)).toEqual(['1', stored ?? '3']);
    },
  );

  it('stores rejects with the raw bytes, topic, reason and time received', async () => {
    const { url, writer } = await setup();
    const payload = Buffer.from([0x7b, 0xff, 0x00, 0x0a, 0x5c]);
    const rej: RejectRow = {
      receivedAtMs: Date.parse('2024-05-01T00:00:01Z'),
      topic: 'esp/s1/W1/telemetry',
      wellId: 'W1',
      reason: 'invalid_utf8',
      detail: 'payload is not valid UTF-8',
      index: null,
      payload,
    };
    await writer.write([], [rej]);
    const rows = await query<{ payload: Buffer; reason: string; topic: string; received_at: Date }>(
      url,
      'SELECT payload, reason, topic, received_at FROM rejected_messages',
    );
    expect(rows).toHaveLength(1);
    expect(Buffer.compare(rows[0]!.payload, payload)).toBe(0);
    expect(rows[0]!.reason).toBe('invalid_utf8');
    expect(rows[0]!.received_at.toISOString()).toBe('2024-05-01T00:00:01.000Z');
  });

  it('discards the connection when its backend is killed mid-COPY, and the next write succeeds (pg-copy-streams #115)', async () => {
    const { url, pool, writer } = await setup();
    const many = Array.from({ length: 300_000 }, (_, i) => reading('W9', MAY_1_US + i * 1_000_000, { vsd_frequency_hz: 50 }));
    const writing = writer.write(many, []).then(
      () => 'committed',
      (err: Error) => err,
    );
    const killed = await waitFor(
      'the COPY to be running, then killed',
      async () => {
        const rows = await query<{ ok: boolean }>(
          url,
          `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = 'esp-ingest-test' AND state = 'active' AND query LIKE 'COPY esp_%'`,
        );
        return rows[0]?.ok;
      },
      20_000,
      5,
    );
    expect(killed).toBe(true);
    expect(await writing).toBeInstanceOf(Error);
    const ok = await writer.write(many.slice(0, 10), []);
    expect(ok.inserted).toBe(10);
    expect(pool.totalCount).toBeLessThanOrEqual(2);
    const rows = await query<{ n: string }>(url, 'SELECT count(*) AS n FROM esp_telemetry');
    expect(Number(rows[0]!.n)).toBe(10);
  });
});
