// The pure sequence tracker: gaps counted exactly; wraps (8, 16, 32 bits, configured or
// inferred), reboots, out-of-order readings and redeliveries give no gap.
import { describe, expect, it } from 'vitest';
import { modulus, type SeqState, type SeqWidth, trackSequence } from '../../src/sequence/tracker.ts';

const T0 = 1_714_521_600_000_000;
/** Readings with the given seqs, one second apart in device time from `from` seconds. */
const run = (seqs: (number | null)[], from = 0) => seqs.map((seq, i) => ({ seq, tsUs: T0 + (from + i) * 1_000_000 }));
const missing = (o: { gaps: { missing: number }[] }) => o.gaps.reduce((n, g) => n + g.missing, 0);

describe('trackSequence', () => {
  it.each<[string, (number | null)[], SeqWidth, number, number, number]>([
    // what, seqs, width, missing, wraps, reboots
    ['an unbroken run', [1, 2, 3, 4, 5], 'auto', 0, 0, 0],
    ['one gap of 3', [1, 2, 6, 7], 'auto', 3, 0, 0],
    ['two gaps', [10, 12, 20], 32, 8, 0, 0],
    ['an 8-bit wrap 255 → 0', [253, 254, 255, 0, 1], 8, 0, 1, 0],
    ['an 8-bit wrap, inferred', [253, 254, 255, 0, 1], 'auto', 0, 1, 0],
    ['an 8-bit wrap with readings lost across it', [250, 3], 8, 8, 1, 0],
    ['a 16-bit wrap 65535 → 0', [65_534, 65_535, 0, 1], 16, 0, 1, 0],
    ['a 16-bit wrap, inferred from a seq past 255', [65_000, 65_001, 65_535, 0], 'auto', 533, 1, 0],
    ['a 32-bit wrap', [4_294_967_294, 4_294_967_295, 0], 32, 0, 1, 0],
    ['a reboot back to 0', [500, 501, 0, 1, 2], 'auto', 0, 0, 1],
    ['a reboot back to 1 (1-based counter)', [500, 501, 1, 2], 'auto', 0, 0, 1],
    ['a reboot to 0 in an 8-bit counter, not at the top', [200, 0, 1], 8, 0, 0, 1],
    ['a fall back to a small seq (32 bits)', [90_000, 5, 6], 32, 0, 0, 1],
    ['the same seq again', [7, 7, 8], 'auto', 0, 0, 0],
    ['readings without seq are passed over', [1, null, 2, null, 3], 'auto', 0, 0, 0],
  ])('%s', (_what, seqs, width, gaps, wraps, reboots) => {
    const o = trackSequence(undefined, run(seqs), width);
    expect({ missing: missing(o), wraps: o.wraps, reboots: o.reboots }).toEqual({ missing: gaps, wraps, reboots });
  });

  it('records where a gap is: the seqs and device times on both sides', () => {
    const o = trackSequence(undefined, run([1, 2, 6]), 'auto');
    expect(o.gaps).toEqual([{ afterSeq: 2, beforeSeq: 6, afterTsUs: T0 + 1_000_000, beforeTsUs: T0 + 2_000_000, missing: 3 }]);
    expect(o.state).toEqual({ lastSeq: 6, lastTsUs: T0 + 2_000_000, maxSeq: 6 });
  });

  it('orders a batch by device time: out of order within it is no gap', () => {
    const shuffled = [...run([1, 2, 3, 4, 5, 6])].reverse();
    expect(missing(trackSequence(undefined, shuffled, 'auto'))).toBe(0);
  });

  it('counts a gap once: the same readings again (a redelivery, a restart) add nothing', () => {
    const first = trackSequence(undefined, run([1, 2, 6, 7]), 'auto');
    expect(missing(first)).toBe(3);
    const again = trackSequence(first.state, run([1, 2, 6, 7]), 'auto');
    expect(again).toEqual({ state: first.state, gaps: [], wraps: 0, reboots: 0 });
  });

  it('continues from a stored state across batches (the gap at the end of one shows with the next)', () => {
    const state: SeqState = { lastSeq: 10, lastTsUs: T0, maxSeq: 10 };
    const o = trackSequence(state, run([15, 16], 5), 'auto');
    expect(o.gaps.map((g) => [g.afterSeq, g.beforeSeq, g.missing])).toEqual([[10, 15, 4]]);
  });

  it('passes over a reading older than the state (late, or replayed)', () => {
    const state: SeqState = { lastSeq: 10, lastTsUs: T0 + 10_000_000, maxSeq: 10 };
    expect(trackSequence(state, run([3]), 'auto')).toEqual({ state, gaps: [], wraps: 0, reboots: 0 });
  });

  it('gives no state when nothing carried a seq', () => {
    expect(trackSequence(undefined, run([null, null]), 'auto').state).toBeUndefined();
  });
});

describe('modulus', () => {
  it.each<[SeqWidth, number, number]>([
    [8, 10, 256],
    [16, 10, 65_536],
    [32, 10, 4_294_967_296],
    ['auto', 255, 256],
    ['auto', 256, 65_536],
    ['auto', 70_000, 4_294_967_296],
    [8, 300, 65_536],
    ['auto', 2 ** 40, Number.MAX_SAFE_INTEGER],
  ])('width %s with max seq %i → %i', (width, max, m) => {
    expect(modulus(width, max)).toBe(m);
  });
});
