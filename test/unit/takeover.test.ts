// Unit tests for session-takeover detection: silent closes counted in a sliding window.
import { describe, expect, it } from 'vitest';
import { SessionMarkerJudge, TAKEOVER_SILENT_CLOSES, TAKEOVER_WINDOW_MS, TakeoverDetector } from '../../src/ingress/takeover.ts';

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

describe('SessionMarkerJudge', () => {
  type Step = ['close', number] | ['own'] | ['foreign'] | ['connect'];
  const judge = (steps: Step[]) => {
    const j = new SessionMarkerJudge();
    return steps.map((s) => {
      if (s[0] === 'close') return j.silentClose(s[1]);
      if (s[0] === 'own' || s[0] === 'foreign') return j.marker(s[0] === 'own');
      j.connected();
      return false;
    });
  };

  it('a flaky network: three silent closes within 15 s, our own marker back after each reconnect → no takeover', () => {
    const verdicts = judge([
      ['connect'],
      ['own'],
      ['close', 0],
      ['connect'],
      ['own'],
      ['close', 5_000],
      ['connect'],
      ['own'],
      ['close', 10_000],
      ['connect'],
      ['own'],
      ['close', 14_000],
      ['connect'],
      ['own'],
    ]);
    expect(verdicts.some(Boolean)).toBe(false);
  });

  it('a second instance with our id: each reconnect finds its marker → takeover at the third close', () => {
    // A (us) runs; B connects (close 1); we reconnect and find B's marker; B kicks us back (close 2,
    // on a connection that saw B's marker), and again (close 3).
    const verdicts = judge([
      ['connect'],
      ['own'],
      ['close', 0],
      ['connect'],
      ['foreign'],
      ['own'],
      ['close', 2_000],
      ['connect'],
      ['foreign'],
      ['own'],
      ['close', 4_000],
    ]);
    expect(verdicts.at(-1)).toBe(true);
    expect(verdicts.slice(0, -1).some(Boolean)).toBe(false);
  });

  it('a restart of a predecessor with our id (its old marker once, then ours) is not a takeover', () => {
    const verdicts = judge([['connect'], ['foreign'], ['own'], ['close', 0], ['connect'], ['own'], ['close', 1_000], ['connect'], ['own'], ['close', 2_000]]);
    expect(verdicts.some(Boolean)).toBe(false);
  });

  it('without a working marker (ACL refuses it) every silent close counts, as before', () => {
    const verdicts = judge([['connect'], ['close', 0], ['connect'], ['close', 1_000], ['connect'], ['close', 2_000]]);
    expect(verdicts).toEqual([false, false, false, false, false, true]);
  });
});
