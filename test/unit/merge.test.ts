// Unit tests for merging readings that share a (well_id, ts) key within one batch.
import { describe, expect, it } from 'vitest';
import { unpackChannels } from '../../src/decode/channels.ts';
import { mergeByKey } from '../../src/sink/merge.ts';
import { reading } from '../support/fixtures.ts';

/** The one key most cases share: well W-1 at 1 s after the epoch. */
const W = 'W-1';
const T = 1_000_000;

describe('mergeByKey', () => {
  it('returns an empty batch unchanged', () => {
    expect(mergeByKey([])).toEqual({ rows: [], duplicates: 0, conflicts: 0 });
  });

  it('passes distinct keys through in arrival order', () => {
    const rs = [reading(W, 3, [1]), reading(W, 1, [2]), reading(W, 2, [3])];
    const m = mergeByKey(rs);
    expect(m.rows).toEqual(rs);
    expect(m.duplicates).toBe(0);
    expect(m.conflicts).toBe(0);
  });

  it('does not merge different wells at the same ts', () => {
    const m = mergeByKey([reading('W-1', T, [1]), reading('W-2', T, [2])]);
    expect(m.rows.map((r) => [r.wellId, unpackChannels(r)])).toEqual([
      ['W-1', [1]],
      ['W-2', [2]],
    ]);
    expect(m.duplicates).toBe(0);
  });

  it('does not merge the same well one microsecond apart', () => {
    expect(mergeByKey([reading(W, 1, [1]), reading(W, 2, [1])]).rows).toHaveLength(2);
  });

  it.each([
    [
      'fills empty channels from a later reading',
      [
        [1, null, null],
        [null, 2, null],
      ],
      [1, 2, null],
      1,
      0,
    ],
    [
      'an identical repeat is a duplicate, not a conflict',
      [
        [1, 2, 3],
        [1, 2, 3],
      ],
      [1, 2, 3],
      1,
      0,
    ],
    [
      'a later null never erases a value',
      [
        [1, 2, 3],
        [null, null, null],
      ],
      [1, 2, 3],
      1,
      0,
    ],
    [
      'disagreeing values: first kept, each counted',
      [
        [1, 2, null],
        [9, 8, 3],
      ],
      [1, 2, 3],
      1,
      2,
    ],
    [
      'three readings of one key',
      [
        [1, null, null],
        [5, 2, null],
        [null, 7, 3],
      ],
      [1, 2, 3],
      2,
      2,
    ],
    [
      '0 is a value, not empty',
      [
        [0, null, null],
        [4, null, null],
      ],
      [0, null, null],
      1,
      1,
    ],
  ])('%s', (_what, valuesList, merged, duplicates, conflicts) => {
    const m = mergeByKey(valuesList.map((values) => reading(W, T, values)));
    expect(m.rows).toHaveLength(1);
    expect(unpackChannels(m.rows[0]!)).toEqual(merged);
    expect(m.duplicates).toBe(duplicates);
    expect(m.conflicts).toBe(conflicts);
  });

  it.each([
    ['first extra only', { a: 1 }, null, { a: 1 }],
    ['later extra only', null, { b: 2 }, { b: 2 }],
    ['both: union, first arrival wins', { a: 1, c: 'first' }, { b: 2, c: 'later' }, { a: 1, b: 2, c: 'first' }],
    ['neither', null, null, null],
  ])('merges extra fields: %s', (_what, first, later, extra) => {
    const m = mergeByKey([reading(W, T, [1], { extra: first }), reading(W, T, [1], { extra: later })]);
    expect(m.rows[0]?.extra).toEqual(extra);
  });

  it('keeps the first seq, or takes a later one when the first had none', () => {
    expect(mergeByKey([reading(W, T, [1], { seq: 5 }), reading(W, T, [1], { seq: 6 })]).rows[0]?.seq).toBe(5);
    expect(mergeByKey([reading(W, T, [1], { seq: null }), reading(W, T, [1], { seq: 6 })]).rows[0]?.seq).toBe(6);
  });

  it('keeps the merged row at the position of the first arrival', () => {
    const m = mergeByKey([reading(W, 1, [1, null]), reading(W, 2, [2, null]), reading(W, 1, [null, 3])]);
    expect(m.rows.map((r) => [r.tsUs, unpackChannels(r)])).toEqual([
      [1, [1, 3]],
      [2, [2, null]],
    ]);
  });

  it('keeps the first site when a well arrives under two sites at one ts', () => {
    const m = mergeByKey([reading(W, T, [1], { site: 'a' }), reading(W, T, [1], { site: 'b' })]);
    expect(m.rows.map((r) => r.site)).toEqual(['a']);
  });

  it('does not mutate its input', () => {
    const a = reading(W, T, [1, null], { extra: { x: 1 } });
    const b = reading(W, T, [null, 2], { extra: { y: 2 } });
    const snapshot = structuredClone([a, b]);
    mergeByKey([a, b]);
    expect([a, b]).toEqual(snapshot);
  });

  it("finds a repeated key behind another well's readings, and agrees with a key-by-key merge on random batches", () => {
    const m = mergeByKey([reading('W-1', 1, [1]), reading('W-2', 1, [2]), reading('W-1', 2, [3]), reading('W-2', 1, [4])]);
    expect(m).toMatchObject({ duplicates: 1, conflicts: 1 });
    expect(m.rows.map((r) => [r.wellId, r.tsUs])).toEqual([
      ['W-1', 1],
      ['W-2', 1],
      ['W-1', 2],
    ]);
    let seed = 3;
    const random = (n: number) => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed % n;
    };
    for (let batch = 0; batch < 500; batch++) {
      const readings = Array.from({ length: 1 + random(40) }, () => reading(`W-${random(3)}`, random(30), [random(2) === 0 ? null : random(3)]));
      const keys = new Map<string, number>();
      for (const r of readings) keys.set(`${r.wellId} ${r.tsUs}`, (keys.get(`${r.wellId} ${r.tsUs}`) ?? 0) + 1);
      const merged = mergeByKey(readings);
      expect(merged.rows).toHaveLength(keys.size);
      expect(merged.duplicates).toBe(readings.length - keys.size);
      expect(new Set(merged.rows.map((r) => `${r.wellId} ${r.tsUs}`)).size).toBe(keys.size);
    }
  });
});
