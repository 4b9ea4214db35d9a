// Unit tests for session-takeover detection: silent closes counted in a sliding window.
import { describe, expect, it } from 'vitest';
import { TAKEOVER_SILENT_CLOSES, TAKEOVER_WINDOW_MS, TakeoverDetector } from '../../src/ingress/takeover.ts';

describe('TakeoverDetector', () => {
  it.each([
    { what: 'one close (a broker restart)', closesAtMs: [0], taken: false },
    { what: 'two closes in a minute', closesAtMs: [0, 30_000], taken: false },
    { what: 'a storm: a close every 2 s', closesAtMs: [0, 2_000, 4_000], taken: true },
    { what: 'three closes, the first out of the window', closesAtMs: [0, 59_000, TAKEOVER_WINDOW_MS], taken: false },
    { what: 'three closes just inside the window', closesAtMs: [1, 59_000, TAKEOVER_WINDOW_MS], taken: true },
    { what: 'closes spread over hours', closesAtMs: [0, 3_600_000, 7_200_000, 10_800_000], taken: false },
  ])('$what → taken over: $taken', ({ closesAtMs, taken }) => {
    const d = new TakeoverDetector();
    const verdicts = closesAtMs.map((t) => d.silentClose(t));
    expect(verdicts.at(-1)).toBe(taken);
    expect(verdicts.slice(0, -1).every((v) => !v)).toBe(true);
  });

  it(`defaults to ${TAKEOVER_SILENT_CLOSES} closes within ${TAKEOVER_WINDOW_MS} ms; both are settable`, () => {
    const d = new TakeoverDetector(2, 1_000);
    expect(d.silentClose(0)).toBe(false);
    expect(d.silentClose(999)).toBe(true);
  });
});
