// Unit tests for merging readings that share a (well_id, ts) key within one batch.
import { describe, expect, it } from 'vitest';
import { mergeByKey } from '../../src/sink/merge.ts';
import type { Reading } from '../../src/decode/decode.ts';

const reading = (over: Partial<Reading> & Pick<Reading, 'values'>): Reading => ({
  wellId: 'W-1',
  site: 's',
  tsUs: 1_000_000,
  seq: null,
  extra: null,
  ...over,
});

describe('mergeByKey', () => {
  it('returns an empty batch unchanged', () => {
    expect(mergeByKey([])).toEqual({ rows: [], duplicates: 0, conflicts: 0 });
  });

  it('passes distinct keys through in arrival order', () => {
    const rs = [reading({ tsUs: 3, values: [1] }), reading({ tsUs: 1, values: [2] }), reading({ tsUs: 2, values: [3] })];
    const m = mergeByKey(rs);
    expect(m.rows).toEqual(rs);
    expect(m.duplicates).toBe(0);
    expect(m.conflicts).toBe(0);
  });

  it('does not merge different wells at the same ts', () => {
    const m = mergeByKey([reading({ wellId: 'W-1', values: [1] }), reading({ wellId: 'W-2', values: [2] })]);
    expect(m.rows.map((r) => [r.wellId, r.values])).toEqual([
      ['W-1', [1]],
      ['W-2', [2]],
    ]);
    expect(m.duplicates).toBe(0);
  });

  it('does not merge the same well one microsecond apart', () => {
    expect(mergeByKey([reading({ tsUs: 1, values: [1] }), reading({ tsUs: 2, values: [1] })]).rows).toHaveLength(2);
  });

  it.each([
    ['fills empty channels from a later reading', [[1, null, null], [null, 2, null]], [1, 2, null], 1, 0],
    ['an identical repeat is a duplicate, not a conflict', [[1, 2, 3], [1, 2, 3]], [1, 2, 3], 1, 0],
    ['a later null never erases a value', [[1, 2, 3], [null, null, null]], [1, 2, 3], 1, 0],
    ['disagreeing values: first kept, each counted', [[1, 2, null], [9, 8, 3]], [1, 2, 3], 1, 2],
    ['three readings of one key', [[1, null, null], [5, 2, null], [null, 7, 3]], [1, 2, 3], 2, 2],
    ['0 is a value, not empty', [[0, null, null], [4, null, null]], [0, null, null], 1, 1],
  ])('%s', (_what, valuesList, merged, duplicates, conflicts) => {
    const m = mergeByKey(valuesList.map((values) => reading({ values })));
    expect(m.rows).toHaveLength(1);
    expect(m.rows[0]?.values).toEqual(merged);
    expect(m.duplicates).toBe(duplicates);
    expect(m.conflicts).toBe(conflicts);
  });

  it.each([
    ['first extra only', { a: 1 }, null, { a: 1 }],
    ['later extra only', null, { b: 2 }, { b: 2 }],
    ['both: union, first arrival wins', { a: 1, c: 'first' }, { b: 2, c: 'later' }, { a: 1, b: 2, c: 'first' }],
    ['neither', null, null, null],
  ])('merges extra fields: %s', (_what, first, later, extra) => {
    const m = mergeByKey([reading({ values: [1], extra: first }), reading({ values: [1], extra: later })]);
    expect(m.rows[0]?.extra).toEqual(extra);
  });

  it('keeps the first seq, or takes a later one when the first had none', () => {
    expect(mergeByKey([reading({ values: [1], seq: 5 }), reading({ values: [1], seq: 6 })]).rows[0]?.seq).toBe(5);
    expect(mergeByKey([reading({ values: [1], seq: null }), reading({ values: [1], seq: 6 })]).rows[0]?.seq).toBe(6);
  });

  it('keeps the merged row at the position of the first arrival', () => {
    const m = mergeByKey([
      reading({ tsUs: 1, values: [1, null] }),
      reading({ tsUs: 2, values: [2, null] }),
      reading({ tsUs: 1, values: [null, 3] }),
    ]);
    expect(m.rows.map((r) => [r.tsUs, r.values])).toEqual([
      [1, [1, 3]],
      [2, [2, null]],
    ]);
  });

  it('keeps the first site when a well arrives under two sites at one ts', () => {
    const m = mergeByKey([reading({ site: 'a', values: [1] }), reading({ site: 'b', values: [1] })]);
    expect(m.rows.map((r) => r.site)).toEqual(['a']);
  });

  it('does not mutate its input', () => {
    const a = reading({ values: [1, null], extra: { x: 1 } });
    const b = reading({ values: [null, 2], extra: { y: 2 } });
    const snapshot = structuredClone([a, b]);
    mergeByKey([a, b]);
    expect([a, b]).toEqual(snapshot);
  });
});
