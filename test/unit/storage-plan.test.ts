// Unit tests for the storage lifecycle's pure parts: the duration grammar, the STORAGE_*
// settings, the rollup SQL and column contract, and the planner (what changes for which state).
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.ts';
import type { ConfigError } from '../../src/errors.ts';
import { type Observed, planStorage, type ServerFacts } from '../../src/schema/plan.ts';
import { channelsOfColumns, createGenerationSql, viewColumnNames, viewSql } from '../../src/schema/rollups.ts';
import { DEFAULT_STORAGE_SETTINGS, formatInterval, parseDurationS, parseRollups, type StorageSettings } from '../../src/schema/settings.ts';
import { channel } from '../support/fixtures.ts';

const CATALOG = [channel('a_kpa'), channel('b_hz')];
const V219: ServerFacts = { version: '2.19.3', license: 'apache' };
const V223: ServerFacts = { version: '2.23.0-dev', license: 'timescale' };
const EMPTY: Observed = { hypertable: null, compressionEnabled: false, compressionPolicy: null, retentionPolicy: null, generations: [], viewColumns: {} };
const S = DEFAULT_STORAGE_SETTINGS;

/** The state a default start leaves behind on a licensed server: a second start must change nothing. */
const SETTLED: Observed = {
  hypertable: { chunkIntervalS: 86_400 },
  compressionEnabled: true,
  compressionPolicy: { afterS: 604_800 },
  retentionPolicy: null,
  generations: [
    {
      rollup: '1m',
      n: 1,
      channels: ['a_kpa', 'b_hz'],
      materializedOnly: false,
      policy: { startOffsetS: null, endOffsetS: 60, scheduleS: 300, bucketsPerBatch: 1_440 },
    },
    {
      rollup: '1h',
      n: 1,
      channels: ['a_kpa', 'b_hz'],
      materializedOnly: false,
      policy: { startOffsetS: null, endOffsetS: 3_600, scheduleS: 1_800, bucketsPerBatch: 168 },
    },
  ],
  viewColumns: { '1m': viewColumnNames(['a_kpa', 'b_hz']), '1h': viewColumnNames(['a_kpa', 'b_hz']) },
};

const sqlOf = (server: ServerFacts, observed: Observed, settings: StorageSettings = S, catalog = CATALOG) =>
  Object.fromEntries(planStorage(server, observed, settings, catalog).map((p) => [p.feature, p.steps.map((s) => s.sql.replace(/\s+/g, ' '))]));

describe('durations and rollup lists', () => {
  it.each([
    ['1 day', 86_400],
    ['7 days', 604_800],
    ['12h', 43_200],
    ['90 minutes', 5_400],
    ['2 weeks', 1_209_600],
    ['30 MIN', 1_800],
    [' 45 s ', 45],
  ])('%j is %i s', (text, s) => expect(parseDurationS(text)).toBe(s));

  it.each(['1 month', '1 year', '1.5 days', '-1 day', 'day', '7', ''])('%j is refused with a message', (text) => {
    expect(parseDurationS(text)).toMatch(/is not a duration/);
  });

  it.each([
    [86_400, '1 day'],
    [604_800, '7 days'],
    [5_400, '90 minutes'],
    [3_600, '1 hour'],
    [45, '45 seconds'],
  ])('%i s prints as %j', (s, text) => {
    expect(formatInterval(s)).toBe(text);
  });

  it('reads STORAGE_ROLLUPS as off, a subset in canonical order, or a problem', () => {
    expect(parseRollups('off')).toEqual([]);
    expect(parseRollups('1h, 1m')).toEqual(['1m', '1h']);
    expect(parseRollups('1h')).toEqual(['1h']);
    expect(parseRollups('5m')).toMatch(/expected "off"/);
    expect(parseRollups(',')).toMatch(/expected "off"/);
  });

  it('reports every STORAGE_* problem at once, retention not longer than compression included', () => {
    let problems: readonly string[] = [];
    try {
      loadConfig({
        DATABASE_URL: 'postgres://x/y',
        STORAGE_CHUNK_INTERVAL: '10 min',
        STORAGE_COMPRESS_AFTER: '30 days',
        STORAGE_RETENTION: '7 days',
        STORAGE_ROLLUPS: '1d',
      });
    } catch (err) {
      problems = (err as ConfigError).problems;
    }
    expect(problems).toEqual([
      expect.stringMatching(/^STORAGE_CHUNK_INTERVAL: "10 min" must be between 1 hour and 366 days/),
      expect.stringMatching(/^STORAGE_ROLLUPS: /),
      'STORAGE_RETENTION (7 days) must be longer than STORAGE_COMPRESS_AFTER (30 days), or one of them off',
    ]);
  });

  it('takes off for compression and retention', () => {
    const c = loadConfig({ DATABASE_URL: 'postgres://x/y', STORAGE_COMPRESS_AFTER: 'off', STORAGE_RETENTION: '365 days', STORAGE_ROLLUPS: 'off' });
    expect(c.storage).toEqual({ chunkIntervalS: 86_400, compressAfterS: null, retentionS: 31_536_000, rollups: [] });
  });
});

describe('rollup SQL', () => {
  it('names columns per the contract: well_id, bucket, readings, then min/max/avg/last/count per channel', () => {
    expect(viewColumnNames(['a_kpa'])).toEqual(['well_id', 'bucket', 'readings', 'a_kpa_min', 'a_kpa_max', 'a_kpa_avg', 'a_kpa_last', 'a_kpa_count']);
    expect(channelsOfColumns(viewColumnNames(['a_kpa', 'x_avg', 'b_hz']).filter((c) => c !== 'readings'))).toEqual(['a_kpa', 'x_avg', 'b_hz']);
  });

  it('makes generation 1 count every row and later generations keep only buckets with a value', () => {
    const g1 = createGenerationSql('1m', 1, ['a_kpa']);
    expect(g1).toContain('timescaledb.materialized_only = false');
    expect(g1).toContain("time_bucket(INTERVAL '1 minute', ts) AS bucket");
    expect(g1).toContain('count(*) AS readings');
    expect(g1).toContain('last(a_kpa, ts) AS a_kpa_last');
    expect(g1).toMatch(/WITH NO DATA$/);
    expect(g1).not.toContain('HAVING');
    const g2 = createGenerationSql('1h', 2, ['c_pa', 'd_degc']);
    expect(g2).toContain('CREATE MATERIALIZED VIEW esp_telemetry_1h_g2');
    expect(g2).not.toContain('readings');
    expect(g2).toContain('HAVING count(c_pa) > 0 OR count(d_degc) > 0');
  });

  it('joins generations under the contract name, counts 0 where a later generation has no row', () => {
    const sql = viewSql('1m', [
      { n: 1, channels: ['a_kpa'] },
      { n: 2, channels: ['c_pa'] },
    ]);
    expect(sql).toMatch(/^CREATE OR REPLACE VIEW esp_telemetry_1m AS/);
    expect(sql).toContain('COALESCE(g2.c_pa_count, 0) AS c_pa_count');
    expect(sql).toContain('g1.a_kpa_count');
    expect(sql).toContain('LEFT JOIN esp_telemetry_1m_g2 g2 ON g2.well_id = g1.well_id AND g2.bucket = g1.bucket');
  });
});

describe('planStorage', () => {
  it('creates everything on an empty database, with the columnstore names on 2.18+', () => {
    const sql = sqlOf(V223, EMPTY);
    expect(sql.hypertable).toEqual([
      "SELECT create_hypertable('esp_telemetry', by_range('ts', INTERVAL '1 day'), if_not_exists => true, migrate_data => true)",
    ]);
    expect(sql.compression).toEqual([
      "ALTER TABLE esp_telemetry SET (timescaledb.enable_columnstore = true, timescaledb.segmentby = 'well_id', timescaledb.orderby = 'ts DESC')",
    ]);
    expect(sql.compression_policy).toEqual(["CALL add_columnstore_policy('esp_telemetry', after => INTERVAL '7 days')"]);
    expect(sql.retention_policy).toEqual([]);
    expect(sql.rollups).toHaveLength(6);
    expect(sql.rollups![1]).toBe(
      "SELECT add_continuous_aggregate_policy('esp_telemetry_1m_g1', start_offset => NULL, end_offset => INTERVAL '1 minute', schedule_interval => INTERVAL '5 minutes', buckets_per_batch => 1440)",
    );
  });

  it('leaves refresh batching to the server before 2.19, which lacks buckets_per_batch', () => {
    const sql = sqlOf({ version: '2.18.2', license: 'timescale' }, EMPTY);
    expect(sql.rollups![1]).toBe(
      "SELECT add_continuous_aggregate_policy('esp_telemetry_1m_g1', start_offset => NULL, end_offset => INTERVAL '1 minute', schedule_interval => INTERVAL '5 minutes')",
    );
    // A policy that carries a batch size differs from the wanted one there: it is replaced.
    expect(sqlOf({ version: '2.18.2', license: 'timescale' }, SETTLED).rollups).toHaveLength(4);
  });

  it('uses the compression names before 2.18 and the old create_hypertable form before 2.13', () => {
    const sql = sqlOf({ version: '2.12.2', license: 'timescale' }, { ...EMPTY, compressionPolicy: { afterS: 86_400 } });
    expect(sql.hypertable![0]).toBe(
      "SELECT create_hypertable('esp_telemetry', 'ts', chunk_time_interval => INTERVAL '1 day', if_not_exists => true, migrate_data => true)",
    );
    expect(sql.compression![0]).toContain('timescaledb.compress, timescaledb.compress_segmentby');
    expect(sql.compression_policy).toEqual([
      "SELECT remove_compression_policy('esp_telemetry', if_exists => true)",
      "SELECT add_compression_policy('esp_telemetry', compress_after => INTERVAL '7 days')",
    ]);
  });

  it('changes nothing when the database already matches the settings', () => {
    expect(sqlOf(V223, SETTLED)).toEqual({ hypertable: [], compression: [], compression_policy: [], retention_policy: [], rollups: [] });
  });

  it('changes settings in place: chunk interval, policy age, retention on', () => {
    const sql = sqlOf(V223, SETTLED, { ...S, chunkIntervalS: 43_200, compressAfterS: 86_400, retentionS: 90 * 86_400 });
    expect(sql.hypertable).toEqual(["SELECT set_chunk_time_interval('esp_telemetry', INTERVAL '12 hours')"]);
    expect(sql.compression).toEqual([]);
    expect(sql.compression_policy).toEqual([
      "CALL remove_columnstore_policy('esp_telemetry', if_exists => true)",
      "CALL add_columnstore_policy('esp_telemetry', after => INTERVAL '1 day')",
    ]);
    expect(sql.retention_policy).toEqual(["SELECT add_retention_policy('esp_telemetry', drop_after => INTERVAL '90 days')"]);
    // The refresh windows start at the retention age now.
    expect(sql.rollups).toEqual([
      "SELECT remove_continuous_aggregate_policy('esp_telemetry_1m_g1', if_exists => true)",
      "SELECT add_continuous_aggregate_policy('esp_telemetry_1m_g1', start_offset => INTERVAL '90 days', end_offset => INTERVAL '1 minute', schedule_interval => INTERVAL '5 minutes', buckets_per_batch => 1440)",
      "SELECT remove_continuous_aggregate_policy('esp_telemetry_1h_g1', if_exists => true)",
      "SELECT add_continuous_aggregate_policy('esp_telemetry_1h_g1', start_offset => INTERVAL '90 days', end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '30 minutes', buckets_per_batch => 168)",
    ]);
  });

  it('removes policies set to off and reports them disabled', () => {
    const observed: Observed = { ...SETTLED, retentionPolicy: { afterS: 86_400 * 30 } };
    const plans = planStorage(V223, observed, { ...S, compressAfterS: null, rollups: [] }, CATALOG);
    const by = Object.fromEntries(plans.map((p) => [p.feature, p]));
    expect(by.compression!.target).toEqual({ kind: 'disable', reason: 'STORAGE_COMPRESS_AFTER=off; chunks already compressed stay compressed' });
    expect(by.compression!.steps).toEqual([]);
    expect(by.compression_policy!.steps.map((s) => s.sql)).toEqual(["CALL remove_columnstore_policy('esp_telemetry', if_exists => true)"]);
    expect(by.retention_policy!.steps.map((s) => s.sql)).toEqual(["SELECT remove_retention_policy('esp_telemetry', if_exists => true)"]);
    expect(by.rollups!.target.kind).toBe('disable');
    expect(by.rollups!.steps.map((s) => s.sql)).toEqual([
      "SELECT remove_continuous_aggregate_policy('esp_telemetry_1m_g1', if_exists => true)",
      "SELECT remove_continuous_aggregate_policy('esp_telemetry_1h_g1', if_exists => true)",
    ]);
  });

  it('puts a new channel in a new generation and rebuilds the view over both', () => {
    const sql = sqlOf(V219, SETTLED, S, [...CATALOG, channel('c_pa')]);
    const m = sql.rollups!.filter((s) => s.includes('_1m'));
    expect(m[0]).toMatch(/^CREATE MATERIALIZED VIEW esp_telemetry_1m_g2 .* min\(c_pa\) AS c_pa_min, .* HAVING count\(c_pa\) > 0 WITH NO DATA$/);
    expect(m[1]).toContain("add_continuous_aggregate_policy('esp_telemetry_1m_g2'");
    expect(m[2]).toMatch(
      /^CREATE OR REPLACE VIEW esp_telemetry_1m AS .*COALESCE\(g2.c_pa_count, 0\) AS c_pa_count FROM esp_telemetry_1m_g1 g1 LEFT JOIN esp_telemetry_1m_g2 g2/,
    );
    expect(m).toHaveLength(3);
  });

  it('turns real-time aggregation back on where someone turned it off', () => {
    const observed: Observed = { ...SETTLED, generations: SETTLED.generations.map((g) => (g.rollup === '1h' ? { ...g, materializedOnly: true } : g)) };
    expect(sqlOf(V223, observed).rollups).toEqual(['ALTER MATERIALIZED VIEW esp_telemetry_1h_g1 SET (timescaledb.materialized_only = false)']);
  });
});
