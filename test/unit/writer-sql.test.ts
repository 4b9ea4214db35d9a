// Unit tests for the sink's pure SQL and COPY text (src/sink/writer-sql.ts): the key bounds that
// let TimescaleDB decompress only what a statement touches, and the COPY lines' shape.
import { describe, expect, it } from 'vitest';
import { DEFAULT_CATALOG } from '../../src/decode/catalog.ts';
import { channelValue, packChannels } from '../../src/decode/channels.ts';
import type { Reading } from '../../src/decode/decode.ts';
import { copyFloat, copyInt, copyJson, copyText, copyTimestampUs } from '../../src/sink/copy-encode.ts';
import { keyBounds, readingChunks, readingLines, rejectLines, usedChannels, writerSql } from '../../src/sink/writer-sql.ts';

/** A reading; `values` aligned with the catalog (null: not carried). */
const r = (wellId: string, tsUs: number, values: (number | null)[] = []): Reading => ({
  wellId,
  site: null,
  tsUs,
  seq: null,
  extra: null,
  ...packChannels(values),
});

describe('keyBounds', () => {
  it('gives the distinct wells (sorted) and the inclusive time range to the microsecond', () => {
    expect(keyBounds([r('W2', 1_714_521_600_000_001), r('W1', 1_714_521_600_000_000), r('W2', 1_714_521_601_999_999)])).toEqual([
      ['W1', 'W2'],
      '2024-05-01T00:00:00.000000Z',
      '2024-05-01T00:00:01.999999Z',
    ]);
  });

  it('refuses no rows (a statement without bounds would touch every chunk)', () => {
    expect(() => keyBounds([])).toThrow(RangeError);
  });
});

describe('writerSql', () => {
  const sql = writerSql(DEFAULT_CATALOG);

  it('names the COPY columns in the order readingLines writes them', () => {
    expect(sql.columns.split(', ')).toEqual(['ts', 'well_id', 'site', 'seq', 'extra', ...DEFAULT_CATALOG.map((c) => c.column)]);
    expect(sql.telemetryCopyTarget).toBe(`esp_telemetry (${sql.columns})`);
    expect(sql.stageCopyTarget).toBe(`esp_stage (${sql.columns})`);
  });

  it.each(['insertFromStage', 'compareStage', 'fillFromStage'] as const)('%s bounds esp_telemetry by constant wells and time range ($1..$3)', (k) => {
    expect(sql[k]).toContain('t.well_id = ANY($1::text[]) AND t.ts >= $2::timestamptz AND t.ts <= $3::timestamptz');
  });

  it('inserts only keys not yet stored, keeping ON CONFLICT for a concurrent writer', () => {
    expect(sql.insertFromStage).toMatch(/WHERE NOT EXISTS \(SELECT 1 FROM esp_telemetry t WHERE t\.well_id = s\.well_id AND t\.ts = s\.ts/);
    expect(sql.insertFromStage).toMatch(/ON CONFLICT \(well_id, ts\) DO NOTHING$/);
  });

  it('never overwrites a stored channel value when filling', () => {
    for (const c of DEFAULT_CATALOG) expect(sql.fillFromStage).toContain(`${c.column} = COALESCE(t.${c.column}, s.${c.column})`);
  });
});

describe('readingLines / rejectLines', () => {
  it('writes one tab-separated line per reading with a field per column, \\N for what is missing', () => {
    const lines = [...readingLines([r('W1', 1_714_521_600_000_000, [1.5])], 3)].join('');
    expect(lines).toBe('2024-05-01T00:00:00.000000Z\tW1\t\\N\t\\N\t\\N\t1.5\t\\N\t\\N\n');
  });

  it('writes only the channels it is given, in the order copyTarget names them', () => {
    const rows = [r('W1', 1_714_521_600_000_000, [null, 2.5, null, 4]), r('W2', 1_714_521_600_000_000, [null, null, null, 7])];
    const channels = usedChannels(rows, DEFAULT_CATALOG.length);
    expect(channels).toEqual([1, 3]);
    expect(writerSql(DEFAULT_CATALOG).copyTarget('esp_stage', channels)).toBe(
      `esp_stage (ts, well_id, site, seq, extra, ${DEFAULT_CATALOG[1]!.column}, ${DEFAULT_CATALOG[3]!.column})`,
    );
    expect([...readingLines(rows, channels)].join('')).toBe(
      '2024-05-01T00:00:00.000000Z\tW1\t\\N\t\\N\t\\N\t2.5\t4\n2024-05-01T00:00:00.000000Z\tW2\t\\N\t\\N\t\\N\t\\N\t7\n',
    );
  });

  it('writes the bytes the per-field encoders give, for text that needs escaping, non-ASCII ids and a line longer than a chunk', () => {
    const reference = (x: Reading, channels: number[]) =>
      `${[copyTimestampUs(x.tsUs), copyText(x.wellId), copyText(x.site), copyInt(x.seq), copyJson(x.extra), ...channels.map((i) => copyFloat(channelValue(x, i)))].join('\t')}\n`;
    const rows: Reading[] = [
      { wellId: 'Poço-7', site: 'Campo\\Sul', tsUs: -1, seq: 0, ...packChannels([1e-308, null, -0.5]), extra: { note: 'tab\there, línea\nnueva', n: [1, 2] } },
      { wellId: 'Poço-7', site: 'Campo\\Sul', tsUs: 1_714_521_600_123_456, seq: 9_007_199_254_740_991, ...packChannels([null, 7, null]), extra: null },
      { wellId: 'W2', site: null, tsUs: Date.UTC(10_000, 0, 1) * 1000, seq: null, ...packChannels([1, 2, 3]), extra: { long: 'x'.repeat(200_000) } },
      { wellId: 'W2', site: null, tsUs: 0, seq: 1, ...packChannels([-Number.MIN_VALUE * 3, 0, -1 / 3e300]), extra: null },
    ];
    const channels = [0, 1, 2];
    const chunks = [...readingChunks(rows, channels)];
    expect(Buffer.concat(chunks).toString('utf8')).toBe(rows.map((x) => reference(x, channels)).join(''));
    expect(chunks.every((c) => c.at(-1) === 0x0a)).toBe(true);
  });

  it('refuses a non-finite value as the per-field encoder does (RangeError)', () => {
    expect(() => [...readingChunks([r('W1', 0, [Number.POSITIVE_INFINITY])], 1)]).toThrow(RangeError);
  });

  it('finds no channel in readings that carry none, and every channel once all are used', () => {
    expect(usedChannels([r('W1', 0, [])], 3)).toEqual([]);
    expect(usedChannels([r('W1', 0, [1, null, null]), r('W1', 1, [null, 2, 3])], 3)).toEqual([0, 1, 2]);
  });

  it('yields pieces of about 64 KiB that together hold every line', () => {
    const rows = Array.from({ length: 5000 }, (_, i) => r('ESP-006', 1_714_521_600_000_000 + i * 1_000_000, [i]));
    const pieces = [...readingLines(rows, DEFAULT_CATALOG.length)];
    expect(pieces.length).toBeGreaterThan(1);
    expect(pieces.slice(0, -1).every((p) => p.length > 60 * 1024 && p.length <= 64 * 1024 && p.endsWith('\n'))).toBe(true);
    expect(pieces.join('').split('\n')).toHaveLength(5001);
  });

  it('writes a rejection as received_at, topic, well_id, reason, detail, index, bytea', () => {
    const [line] = [
      ...rejectLines([
        { receivedAtMs: 1_714_521_600_000, topic: 'w/W1/t', wellId: null, reason: 'invalid_json', detail: 'a\tb', index: null, payload: Buffer.from([0, 255]) },
      ]),
    ];
    expect(line).toBe('2024-05-01T00:00:00.000000Z\tw/W1/t\t\\N\tinvalid_json\ta\\tb\t\\N\t\\\\x00ff\n');
  });
});
