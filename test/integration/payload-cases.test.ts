// Payloads that broke other ingest tools (their upstream reports named in each test) through the
// whole path: non-finite numbers, numbers as strings, timestamp units and ranges, ids that COPY
// must escape, oversized payloads, a payload well id that disagrees with the topic, and /metrics
// after garbage. The machine's Mosquitto (MQTT 5), the in-process service and real TimescaleDB.
// Each test asserts the exact rows stored and rejected, their reason codes, and that
// esp_ingest_readings_rejected_total matches the rejects table.
import { afterAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import { DEFAULT_CATALOG } from '../../src/decode/catalog.ts';
import { REJECT_REASONS } from '../../src/decode/decode.ts';
import { metric, query, startInProcessWithPublisher, Teardown, waitFor } from '../support/harness.ts';

const t = new Teardown();
afterAll(() => t.run());
const BROKER = process.env.TEST_MQTT_URL ?? 'mqtt://127.0.0.1:1883';

interface Run {
  app: App;
  db: string;
  /** Publishes QoS 1 on `<prefix>/<site>/<well>/telemetry`. */
  send(well: string, payload: string | Buffer, site?: string): Promise<void>;
  /** Waits until every message sent so far is committed and acknowledged. */
  settled(): Promise<void>;
  rejects(): Promise<{ reason: string; well_id: string | null; reading_index: number | null; detail: string }[]>;
  metric(name: string): Promise<number>;
}

async function start(env: Record<string, string> = {}): Promise<Run> {
  const { app, databaseUrl: db, prefix, pub } = await startInProcessWithPublisher(t, BROKER, env);
  let sent = 0;
  return {
    app,
    db,
    async send(well, payload, site = 'north') {
      await pub.publishAsync(`${prefix}/${site}/${well}/telemetry`, payload, { qos: 1 });
      sent++;
    },
    async settled() {
      await waitFor(
        `${sent} messages acknowledged`,
        async () => (await metric(app.httpPort, 'esp_ingest_messages_acknowledged_total')) >= sent || undefined,
        30_000,
      );
    },
    rejects: () => query(db, 'SELECT reason, well_id, reading_index, detail FROM rejected_messages ORDER BY id'),
    metric: (name) => metric(app.httpPort, name),
  };
}

/** Every rejection is counted: the counter matches the table row for row, per reason. */
async function expectCountedLikeTable(r: Run): Promise<void> {
  const byReason = await query<{ reason: string; n: string }>(r.db, 'SELECT reason, count(*) AS n FROM rejected_messages GROUP BY reason');
  const text = await (await fetch(`http://127.0.0.1:${r.app.httpPort}/metrics`)).text();
  const counted = new Map<string, number>();
  for (const m of text.matchAll(/^esp_ingest_readings_rejected_total\{reason="([^"]*)"\} (\S+)$/gm)) counted.set(m[1]!, Number(m[2]));
  expect(Object.fromEntries([...counted].filter(([, n]) => n > 0))).toEqual(Object.fromEntries(byReason.map((x) => [x.reason, Number(x.n)])));
}

const CHANNELS = DEFAULT_CATALOG.map((c) => c.column);
const nonFiniteStored = (db: string) =>
  query<{ n: string }>(db, `SELECT count(*) AS n FROM esp_telemetry WHERE ${CHANNELS.map((c) => `${c} IN ('Infinity', '-Infinity', 'NaN')`).join(' OR ')}`);

describe('payload cases', () => {
  it('non-finite numbers (zod #512, #4721): 1e309 / -1e309 reject the reading (non_finite_number, path), NaN is invalid_json, the next message is stored', async () => {
    const r = await start();
    await r.send('ESP-001', '{"ts":"2024-05-01T00:00:00Z","intake_pressure_kpa":1e309,"motor_current_a":-1e309,"vsd_frequency_hz":50.0}');
    await r.send('ESP-001', '{"ts":"2024-05-01T00:00:01Z","intake_pressure_kpa":NaN}');
    await r.send('ESP-001', '{"ts":"2024-05-01T00:00:02Z","intake_pressure_kpa":8200.5,"vsd_frequency_hz":50.0}');
    await r.settled();
    expect(await r.rejects()).toEqual([
      { reason: 'non_finite_number', well_id: 'ESP-001', reading_index: null, detail: 'intake_pressure_kpa: Infinity is not finite' },
      { reason: 'invalid_json', well_id: 'ESP-001', reading_index: null, detail: expect.stringMatching(/^payload is not JSON: /) },
    ]);
    expect(await query(r.db, 'SELECT well_id, site, intake_pressure_kpa, vsd_frequency_hz, motor_current_a FROM esp_telemetry')).toEqual([
      { well_id: 'ESP-001', site: 'north', intake_pressure_kpa: 8200.5, vsd_frequency_hz: 50, motor_current_a: null },
    ]);
    expect(await nonFiniteStored(r.db)).toEqual([{ n: '0' }]);
    await expectCountedLikeTable(r);
  });

  it('numbers as strings (telegraf #4705, zod #2461): "12.5" is stored as 12.5 (coerced, counted); "", "12,5", " 12.5 " are type_mismatch; null is SQL NULL; never a 0', async () => {
    const r = await start();
    const values = ['"12.5"', '""', 'null', '"12,5"', '" 12.5 "'];
    for (const [i, v] of values.entries()) await r.send('ESP-001', `{"ts":"2024-05-01T00:00:0${i + 1}Z","motor_current_a":${v},"vsd_frequency_hz":50}`);
    await r.settled();
    expect(await query(r.db, "SELECT to_char(ts AT TIME ZONE 'UTC', 'SS') AS s, motor_current_a FROM esp_telemetry ORDER BY ts")).toEqual([
      { s: '01', motor_current_a: 12.5 },
      { s: '03', motor_current_a: null },
    ]);
    expect((await r.rejects()).map((x) => [x.reason, x.detail])).toEqual([
      ['type_mismatch', 'motor_current_a: "" is a string, expected a JSON number or a numeric string such as "12.5"'],
      ['type_mismatch', 'motor_current_a: "12,5" is a string, expected a JSON number or a numeric string such as "12.5"'],
      ['type_mismatch', 'motor_current_a: " 12.5 " is a string, expected a JSON number or a numeric string such as "12.5"'],
    ]);
    expect(await query(r.db, 'SELECT count(*) AS n FROM esp_telemetry WHERE motor_current_a = 0')).toEqual([{ n: '0' }]);
    expect(await r.metric('esp_ingest_channel_values_coerced_total')).toBe(1);
    await expectCountedLikeTable(r);
  });

  it('timestamp forms (telegraf #10786, node-postgres #3318): ms, offset and Z forms are one instant; .123 ms exact; seconds and microseconds rejected with a hint; invalid and missing ts rejected, the rest stored', async () => {
    const r = await start();
    const tsValues = [
      '1714521600',
      '1714521600000',
      '"2024-05-01T02:00:00+02:00"',
      '"2024-05-01T00:00:00Z"',
      '1714521600123',
      '1714521600000000',
      '"2024-13-45T99:00:00Z"',
      null,
    ];
    for (const [seq, ts] of tsValues.entries())
      await r.send('ESP-001', ts === null ? `{"seq":${seq},"intake_pressure_kpa":1}` : `{"ts":${ts},"seq":${seq},"intake_pressure_kpa":1}`);
    await r.settled();
    expect(
      await query(
        r.db,
        "SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') AS ts, seq::int AS seq, (extract(microseconds FROM ts)::bigint % 1000000)::int AS us FROM esp_telemetry ORDER BY ts",
      ),
    ).toEqual([
      { ts: '2024-05-01 00:00:00.000000', seq: 1, us: 0 },
      { ts: '2024-05-01 00:00:00.123000', seq: 4, us: 123_000 },
    ]);
    expect(await r.metric('esp_ingest_readings_duplicate_total')).toBe(2);
    expect((await r.rejects()).map((x) => [x.reason, x.detail])).toEqual([
      ['ts_out_of_range', expect.stringContaining('(looks like epoch seconds; TS_EPOCH_UNIT is ms)')],
      ['ts_out_of_range', expect.stringContaining('(looks like epoch microseconds; TS_EPOCH_UNIT is ms)')],
      ['invalid_ts', 'ts: 2024-13-45T99:00:00Z is not a calendar date-time'],
      ['missing_ts', 'ts: missing'],
    ]);
    expect(await query(r.db, "SELECT count(*) AS n FROM esp_telemetry WHERE ts > '3000-01-01'")).toEqual([{ n: '0' }]);
    await expectCountedLikeTable(r);
  });

  it('timestamp units (telegraf #4607): TS_EPOCH_UNIT=s reads seconds; MISSING_TS=stamp stores the receive time, marked', async () => {
    const r = await start({ TS_EPOCH_UNIT: 's', MISSING_TS: 'stamp' });
    const before = Date.now();
    await r.send('ESP-001', '{"ts":1714521600,"seq":0,"intake_pressure_kpa":1}');
    await r.send('ESP-001', '{"seq":1,"intake_pressure_kpa":2}');
    await r.settled();
    const rows = await query<{ seq: string; ts: Date; extra: unknown }>(r.db, 'SELECT seq, ts, extra FROM esp_telemetry ORDER BY seq');
    expect(rows.map((x) => [x.seq, x.extra])).toEqual([
      ['0', null],
      ['1', { ts_source: 'receive_time' }],
    ]);
    expect(rows[0]!.ts.toISOString()).toBe('2024-05-01T00:00:00.000Z');
    expect(rows[1]!.ts.getTime()).toBeGreaterThanOrEqual(before - 1000);
    expect(rows[1]!.ts.getTime()).toBeLessThanOrEqual(Date.now());
    expect(await r.rejects()).toEqual([]);
  });

  it('out-of-range timestamps (timescaledb #6223): dead-clock and far-future times are rejected with the raw value; no chunk is created', async () => {
    const r = await start();
    const chunks = () => query<{ n: string }>(r.db, "SELECT count(*) AS n FROM timescaledb_information.chunks WHERE hypertable_name = 'esp_telemetry'");
    const n0 = await chunks();
    const in10min = new Date(Date.now() + 600_000).toISOString();
    const tsValues = ['0', 'null', '"1970-01-01T00:00:00Z"', '4102444800', '"9999-12-31T23:59:59Z"', `"${in10min}"`];
    for (const ts of tsValues) await r.send('ESP-002', `{"ts":${ts},"intake_pressure_kpa":1}`);
    await r.settled();
    expect((await r.rejects()).map((x) => [x.reason, x.detail])).toEqual([
      ['ts_out_of_range', 'ts: 1970-01-01T00:00:00.000Z is outside [2000-01-01T00:00:00.000Z, receive time + 300 s]'],
      ['invalid_ts', 'ts: null is not valid'],
      ['ts_out_of_range', 'ts: 1970-01-01T00:00:00.000Z is outside [2000-01-01T00:00:00.000Z, receive time + 300 s]'],
      [
        'ts_out_of_range',
        'ts: 1970-02-17T11:34:04.800Z is outside [2000-01-01T00:00:00.000Z, receive time + 300 s] (looks like epoch seconds; TS_EPOCH_UNIT is ms)',
      ],
      ['ts_out_of_range', 'ts: 9999-12-31T23:59:59.000Z is outside [2000-01-01T00:00:00.000Z, receive time + 300 s]'],
      ['ts_out_of_range', `ts: ${in10min} is outside [2000-01-01T00:00:00.000Z, receive time + 300 s]`],
    ]);
    // The raw bytes keep the raw ts value.
    const raw = await query<{ p: string }>(r.db, "SELECT convert_from(payload, 'UTF8') AS p FROM rejected_messages ORDER BY id");
    expect(raw.map((x) => x.p)).toEqual(tsValues.map((ts) => `{"ts":${ts},"intake_pressure_kpa":1}`));
    expect(await chunks()).toEqual(n0);
    expect(await query(r.db, 'SELECT count(*) AS n FROM esp_telemetry')).toEqual([{ n: '0' }]);
    await expectCountedLikeTable(r);
  });

  it('well ids by allow-list: look-alikes, invisible characters, spaces and %2F are refused (invalid_well_id) and never stored; "" in a text field stays ""', async () => {
    const r = await start();
    const stored = ['ESP-009', 'WELL_00003.a'];
    // Each would store a second well that looks like ESP-009 (or a path-like one).
    const refused: [string, string][] = [
      ['ESP-009\u200b', 'U+200B at 7'], // zero-width space
      ['ESP\u2028009', 'U+2028 at 3'], // line separator
      ['\u0415SP-009', 'U+0415 at 0'], // Cyrillic capital IE, looks like E
      ['ESP 009', 'U+0020 at 3'], // space
      ['ESP%2F009', 'U+0025 "%" at 3'], // a percent-encoded slash
      ['ESP\u202e01', 'U+202E at 3'], // bidi override (Trojan Source)
    ];
    for (const id of [...stored, ...refused.map(([x]) => x)]) await r.send(id, '{"ts":"2024-05-01T00:00:00Z","intake_pressure_kpa":1}');
    await r.send('ESP-FW', '{"ts":"2024-05-01T00:00:00Z","intake_pressure_kpa":1,"fw_version":""}');
    await r.settled();
    const rows = await query<{ well_id: string }>(r.db, 'SELECT well_id FROM esp_telemetry ORDER BY well_id');
    expect(rows.map((x) => x.well_id)).toEqual([...stored, 'ESP-FW'].sort());
    expect(await query(r.db, "SELECT extra->>'fw_version' AS fw FROM esp_telemetry WHERE well_id = 'ESP-FW'")).toEqual([{ fw: '' }]);
    expect((await r.rejects()).map((x) => [x.reason, x.well_id, x.detail])).toEqual(
      refused.map(([, at]) => ['invalid_well_id', null, `topic level well_id contains ${at}; allowed: A-Za-z0-9._- (WELL_ID_CHARS)`]),
    );
    await expectCountedLikeTable(r);
  });

  it('oversized payloads (mosquitto #265, MQTT.js #1005): 10,000 readings in one message stored; more is too_many_readings; 5 MB is payload_too_large; 200 kB of "[" is invalid_json; no reconnect', async () => {
    const r = await start({ MESSAGE_MAX_BYTES: '1048576' });
    const t0 = Date.parse('2024-05-01T00:00:00Z');
    const readings = (n: number) => JSON.stringify(Array.from({ length: n }, (_, i) => ({ ts: t0 + i, vsd_frequency_hz: 50 })));
    await r.send('ESP-008', readings(10_000));
    await r.send('ESP-009', readings(10_001));
    await r.send('ESP-010', Buffer.alloc(5 * 1024 * 1024, 0x20));
    await r.send('ESP-011', '['.repeat(200_000));
    await r.send('ESP-012', '{"ts":"2024-05-01T00:00:00Z","vsd_frequency_hz":50}');
    await r.settled();
    expect(await query(r.db, 'SELECT well_id, count(*)::int AS n FROM esp_telemetry GROUP BY well_id ORDER BY well_id')).toEqual([
      { well_id: 'ESP-008', n: 10_000 },
      { well_id: 'ESP-012', n: 1 },
    ]);
    expect((await r.rejects()).map((x) => [x.reason, x.well_id, x.reading_index, x.detail])).toEqual([
      ['too_many_readings', 'ESP-009', null, 'payload carries 10001 readings; MESSAGE_MAX_READINGS is 10000'],
      ['payload_too_large', 'ESP-010', null, 'payload is 5242880 bytes; MESSAGE_MAX_BYTES is 1048576'],
      ['invalid_json', 'ESP-011', null, expect.stringMatching(/^payload is not JSON: /)],
    ]);
    expect(await r.metric('esp_ingest_mqtt_reconnects_total')).toBe(0);
    await expectCountedLikeTable(r);
  }, 60_000);

  it('cross-device publishing, payload side (aedes-cli #30): a payload well_id that disagrees with the topic is well_id_mismatch; no row for the other well', async () => {
    const r = await start();
    await r.send('ESP-010', '{"ts":"2024-05-01T00:00:00Z","well_id":"ESP-011","intake_pressure_kpa":1}');
    await r.send('ESP-010', '{"ts":"2024-05-01T00:00:01Z","well_id":"ESP-010","intake_pressure_kpa":2}');
    await r.settled();
    expect(await query(r.db, 'SELECT well_id, intake_pressure_kpa, extra FROM esp_telemetry')).toEqual([
      { well_id: 'ESP-010', intake_pressure_kpa: 2, extra: null },
    ]);
    expect(await r.rejects()).toEqual([
      { reason: 'well_id_mismatch', well_id: 'ESP-010', reading_index: null, detail: `well_id: "ESP-011" disagrees with the topic's well id "ESP-010"` },
    ]);
    await expectCountedLikeTable(r);
  });

  it('metrics integrity (prom-client #741, wg-easy #2699): after garbage from 300 wells, /metrics parses, has only known reasons, well ids only in the capped freshness gauge, and a series count otherwise independent of the wells', async () => {
    const r = await start();
    const FRESHNESS = 'esp_ingest_well_last_reading_age_seconds{';
    const allLines = async () => {
      const text = await (await fetch(`http://127.0.0.1:${r.app.httpPort}/metrics`)).text();
      return text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
    };
    // Per-well freshness is the one per-well family, capped by METRICS_WELLS_MAX and
    // tested in metrics-cardinality.test.ts; everything else must not grow with the wells.
    const seriesLines = async () => (await allLines()).filter((l) => !l.startsWith(FRESHNESS));
    await r.send('W-0', '{"ts":"2024-05-01T00:00:00Z","intake_pressure_kpa":1}');
    await r.settled();
    const baseline = (await seriesLines()).filter(
      (l) => !/^esp_ingest_(process|nodejs)_/.test(l) && !l.startsWith('esp_ingest_readings_rejected_total'),
    ).length;
    const garbage = [
      '{"ts":"x"}',
      'not json',
      '[]',
      '{"ts":"2024-05-01T00:00:00Z","motor_current_a":"a\\"b\\\\c\\nd"}',
      '{"ts":"2024-05-01T00:00:00Z","motor_current_a":1e309}',
      '\u0000',
    ];
    const evil = ['W"1', 'W\\1', 'W\u202e1', `W${'x'.repeat(200)}`];
    for (let i = 0; i < 300; i++) {
      const well = i < evil.length ? evil[i]! : `W-${i}`;
      await r.send(well, garbage[i % garbage.length]!);
    }
    for (let i = 1; i <= 300; i++) await r.send(`W-${i}`, '{"ts":"2024-05-01T00:00:00Z","intake_pressure_kpa":1}');
    await r.settled();
    const freshness = (await allLines()).filter((l) => l.startsWith(FRESHNESS));
    // Wells whose readings were committed: W-0 and W-1..W-300 (the garbage was all rejected).
    expect(freshness).toHaveLength(301);
    const lines = await seriesLines();
    // Every sample line is well-formed exposition text (values as Go's ParseFloat reads them:
    // prom-client writes a NaN event-loop mean as "Nan" before the first sample).
    for (const l of lines)
      expect(l).toMatch(/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\["\\n])*",?)*\})? (-?[0-9.]+(e[+-]?[0-9]+)?|NaN|[+-]Inf)$/i);
    const reasons = lines.filter((l) => l.startsWith('esp_ingest_readings_rejected_total{')).map((l) => /reason="([^"]*)"/.exec(l)![1]!);
    expect(reasons.length).toBeGreaterThan(0);
    for (const reason of reasons) expect(REJECT_REASONS).toContain(reason);
    expect(lines.some((l) => /W-\d|W"1|ESP-/.test(l))).toBe(false);
    const after = lines.filter((l) => !/^esp_ingest_(process|nodejs)_/.test(l) && !l.startsWith('esp_ingest_readings_rejected_total')).length;
    expect(after).toBe(baseline);
    expect(lines.length).toBeLessThan(200);
    await expectCountedLikeTable(r);
  }, 60_000);
});
