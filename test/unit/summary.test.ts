// Unit tests for the summary line's arithmetic: counter deltas per interval (a reset counter
// counts from zero), the rate, the mean device-to-commit lag, and the stable set of keys.
import { describe, expect, it } from 'vitest';
import { type SummaryTotals, summarize } from '../../src/lifecycle/summary.ts';

const zero: SummaryTotals = {
  messagesReceived: 0,
  readingsCommitted: 0,
  readingsRejected: 0,
  duplicates: 0,
  flushRetries: 0,
  backfillReadings: 0,
  lagSecondsSum: 0,
  lagBatches: 0,
};
const gauges = { rowsBuffered: 12, backfillRowsBuffered: 0, unacknowledged: 3, oldestUnacknowledgedAgeS: 0.12345, notReady: [] };

describe('summarize', () => {
  it('reports what the interval did, not the running totals', () => {
    const prev = {
      ...zero,
      messagesReceived: 100,
      readingsCommitted: 1000,
      readingsRejected: 5,
      duplicates: 2,
      flushRetries: 1,
      lagSecondsSum: 10,
      lagBatches: 10,
    };
    const cur = {
      ...zero,
      messagesReceived: 700,
      readingsCommitted: 7000,
      readingsRejected: 6,
      duplicates: 2,
      flushRetries: 1,
      backfillReadings: 1200,
      lagSecondsSum: 16,
      lagBatches: 13,
    };
    expect(summarize(prev, cur, gauges, 60)).toEqual({
      intervalS: 60,
      messagesReceived: 600,
      readingsCommitted: 6000,
      readingsRejected: 1,
      duplicates: 0,
      flushRetries: 0,
      readingsPerS: 100,
      backfillReadings: 1200,
      backfillReadingsPerS: 20,
      deviceToCommitLagS: 2,
      rowsBuffered: 12,
      backfillRowsBuffered: 0,
      unacknowledged: 3,
      oldestUnacknowledgedAgeS: 0.123,
      ready: true,
      notReady: [],
    });
  });

  it('an idle interval: zero counts, no lag (null), not ready with its codes', () => {
    const s = summarize(zero, zero, { ...gauges, notReady: ['database_unreachable'] }, 60);
    expect(s).toMatchObject({ readingsCommitted: 0, readingsPerS: 0, deviceToCommitLagS: null, ready: false, notReady: ['database_unreachable'] });
  });

  it('a counter that went backwards (a reset) counts from zero, never negative', () => {
    const s = summarize({ ...zero, readingsCommitted: 500 }, { ...zero, readingsCommitted: 20 }, gauges, 10);
    expect(s.readingsCommitted).toBe(20);
    expect(s.readingsPerS).toBe(2);
  });
});
