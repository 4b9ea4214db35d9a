// Unit tests for the event-loop heartbeat behind /livez on an injected clock: a late beat is a
// block; it is reported while it lasts and for as long again after it ended; nothing else is.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { EventLoopWatchdog, heartbeatMsFor, LoopBlockTracker } from '../../src/lifecycle/liveness.ts';

function tracker(heartbeatMs = 100, maxBlockMs = 1000) {
  const clock = { nowMs: 0 };
  const t = new LoopBlockTracker(heartbeatMs, maxBlockMs, () => clock.nowMs);
  /** Beats every heartbeat until `untilMs` (a healthy loop). */
  const run = (untilMs: number) => {
    while (clock.nowMs + heartbeatMs <= untilMs) {
      clock.nowMs += heartbeatMs;
      t.beat();
    }
  };
  return { t, clock, run };
}

describe('heartbeatMsFor', () => {
  it.each([
    [10_000, 1_000],
    [2_000, 500],
    [100, 25],
    [20, 10],
  ])('bound %i ms: heartbeat %i ms', (bound, beat) => expect(heartbeatMsFor(bound)).toBe(beat));
});

describe('LoopBlockTracker', () => {
  it('a loop beating on time is never blocked', () => {
    const { t, run } = tracker();
    run(60_000);
    expect(t.blocked()).toBeUndefined();
  });

  it('a late beat within the bound is not a block', () => {
    const { t, clock, run } = tracker(100, 1000);
    run(1000);
    clock.nowMs += 100 + 1000;
    t.beat();
    expect(t.blocked()).toBeUndefined();
  });

  it('while blocked past the bound: ongoing, with how long so far', () => {
    const { t, clock, run } = tracker(100, 1000);
    run(1000);
    clock.nowMs += 100 + 1000;
    expect(t.blocked()).toBeUndefined();
    clock.nowMs += 500;
    expect(t.blocked()).toEqual({ blockedMs: 1500, ongoing: true });
  });

  it('after a block past the bound: reported for as long as the bound, then healthy again', () => {
    const { t, clock, run } = tracker(100, 1000);
    run(1000);
    clock.nowMs += 100 + 3000;
    t.beat();
    const ended = clock.nowMs;
    expect(t.blocked()).toEqual({ blockedMs: 3000, ongoing: false });
    run(ended + 1000);
    expect(t.blocked()).toEqual({ blockedMs: 3000, ongoing: false });
    run(ended + 1100);
    expect(t.blocked()).toBeUndefined();
  });

  it('restart forgets the gap before the heartbeat started', () => {
    const { t, clock } = tracker(100, 1000);
    clock.nowMs = 60_000;
    t.restart();
    clock.nowMs += 100;
    t.beat();
    expect(t.blocked()).toBeUndefined();
  });
});

describe('EventLoopWatchdog', () => {
  afterEach(() => vi.useRealTimers());

  it('beats on its interval timer, and reports a stall of that timer past the bound', () => {
    vi.useFakeTimers();
    const clock = { nowMs: 0 };
    const w = new EventLoopWatchdog(400, () => clock.nowMs);
    w.start();
    for (let i = 0; i < 10; i++) {
      clock.nowMs += 100;
      vi.advanceTimersByTime(100);
    }
    expect(w.tracker.blocked()).toBeUndefined();
    // The loop is stuck: the clock moves, the timer does not fire.
    clock.nowMs += 600;
    expect(w.tracker.blocked()).toEqual({ blockedMs: 500, ongoing: true });
    clock.nowMs += 100;
    vi.advanceTimersByTime(100);
    expect(w.tracker.blocked()).toEqual({ blockedMs: 600, ongoing: false });
    w.stop();
  });
});
