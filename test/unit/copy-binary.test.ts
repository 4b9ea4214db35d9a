// The COPY binary encoder (src/sink/copy-binary.ts) read back by a parser of the format
// (PostgreSQL docs, "COPY", Binary Format), and the column-type check that decides the format.
// The same rows stored through both formats are compared on a real server in
// test/integration/sink.test.ts.
import { describe, expect, it } from 'vitest';
import { DEFAULT_CATALOG } from '../../src/decode/catalog.ts';
import { packChannels } from '../../src/decode/channels.ts';
import type { Reading } from '../../src/decode/decode.ts';
import { binaryReadingChunks } from '../../src/sink/copy-binary.ts';
import { binaryCopyProblem } from '../../src/sink/writer.ts';

/** Rows of the binary format as field byte strings (null for NULL); checks header and trailer. */
function parse(data: Buffer): (Buffer | null)[][] {
  expect(data.subarray(0, 11).toString('latin1')).toBe('PGCOPY\n\xff\r\n\0');
  expect(data.readInt32BE(11)).toBe(0);
  expect(data.readInt32BE(15)).toBe(0);
  let pos = 19;
  const rows: (Buffer | null)[][] = [];
  for (;;) {
    const fields = data.readInt16BE(pos);
    pos += 2;
    if (fields === -1) break;
    const row: (Buffer | null)[] = [];
    for (let f = 0; f < fields; f++) {
      const length = data.readInt32BE(pos);
      pos += 4;
      row.push(length === -1 ? null : data.subarray(pos, pos + length));
      if (length > 0) pos += length;
    }
    rows.push(row);
  }
  expect(pos).toBe(data.length);
  return rows;
}

/** A reading; `channels` aligned with a 3-channel catalog (null: not carried). */
const r = ({ channels = [1.5, null, -2], ...over }: Partial<Omit<Reading, 'layout' | 'values'>> & { channels?: (number | null)[] }): Reading => ({
  wellId: 'W-1',
  site: null,
  tsUs: 0,
  seq: null,
  extra: null,
  ...over,
  ...packChannels(channels),
});

describe('binaryReadingChunks', () => {
  it('writes ts as µs since 2000-01-01, text as UTF-8, seq as int8, jsonb with its version byte, float8 as IEEE 754', () => {
    const rows = parse(
      Buffer.concat([
        ...binaryReadingChunks(
          [r({ tsUs: 946_684_800_000_001, site: 'Sül', seq: 2 ** 40 + 3, extra: { a: 'ü' } }), r({ tsUs: -1, channels: [null, null, 5e-324] })],
          [0, 2],
        ),
      ]),
    );
    expect(rows).toHaveLength(2);
    const [a, b] = rows as Buffer[][];
    expect(a!.map((f) => f?.length ?? null)).toEqual([8, 3, 4, 8, 1 + Buffer.byteLength('{"a":"ü"}'), 8, 8]);
    expect(a![0]!.readBigInt64BE()).toBe(1n);
    expect(a![1]!.toString()).toBe('W-1');
    expect(a![2]!.toString()).toBe('Sül');
    expect(a![3]!.readBigInt64BE()).toBe(2n ** 40n + 3n);
    expect(a![4]![0]).toBe(1);
    expect(a![4]!.subarray(1).toString()).toBe('{"a":"ü"}');
    expect([a![5]!.readDoubleBE(), a![6]!.readDoubleBE()]).toEqual([1.5, -2]);
    expect(b![0]!.readBigInt64BE()).toBe(-946_684_800_000_001n);
    expect([b![2], b![3], b![4], b![5]]).toEqual([null, null, null, null]);
    expect(b![6]!.readDoubleBE()).toBe(5e-324);
  });

  it('yields chunks of about 64 KiB, a row never split, and one larger than a chunk whole', () => {
    const many = Array.from({ length: 3000 }, (_, i) => r({ tsUs: i, extra: i === 1500 ? { big: 'x'.repeat(100_000) } : null }));
    const chunks = [...binaryReadingChunks(many, [0, 1, 2])];
    expect(chunks.length).toBeGreaterThan(2);
    expect(chunks.slice(0, -1).every((c) => c.length <= 64 * 1024 || c.length > 100_000)).toBe(true);
    expect(parse(Buffer.concat(chunks))).toHaveLength(3000);
    expect(parse(Buffer.concat([...binaryReadingChunks([], [0])]))).toEqual([]);
  });

  it('refuses a non-finite value as the text encoder does (RangeError)', () => {
    expect(() => [...binaryReadingChunks([r({ channels: [Number.NaN] })], [0])]).toThrow(RangeError);
  });
});

describe('binaryCopyProblem', () => {
  const types = new Map<string, string>([
    ['ts', 'timestamp with time zone'],
    ['well_id', 'text'],
    ['site', 'text'],
    ['seq', 'bigint'],
    ['extra', 'jsonb'],
    ['ingested_at', 'timestamp with time zone'],
    ...DEFAULT_CATALOG.map((c): [string, string] => [c.column, 'double precision']),
  ]);

  it('accepts the migrated table', () => {
    expect(binaryCopyProblem(types, DEFAULT_CATALOG)).toBeUndefined();
  });

  it('names each column whose type is not the one the binary data holds, or that is missing', () => {
    const altered = new Map(types).set('vsd_frequency_hz', 'real').set('seq', 'integer');
    altered.delete('motor_current_a');
    expect(binaryCopyProblem(altered, DEFAULT_CATALOG)).toBe(
      'seq is integer, not bigint; motor_current_a is missing, not double precision; vsd_frequency_hz is real, not double precision',
    );
  });
});
