// Unit tests for the committer's retry backoff (the only pure export of committer.ts).
import { describe, expect, it } from 'vitest';
import { backoffMs } from '../../src/sink/backoff.ts';

const top = () => 1;
const bottom = () => 0;

describe('backoffMs', () => {
  it.each([
    [1, 100],
    [2, 200],
    [3, 400],
    [4, 800],
    [5, 1600],
    [6, 3200],
    [7, 5000],
    [50, 5000],
    [1_000_000, 5000],
  ])('attempt %i with full jitter at its top → %i ms (cap 5000)', (attempt, ms) => {
    expect(backoffMs(attempt, 5000, top)).toBe(ms);
  });

  it('jitter spans half to all of the ceiling', () => {
    expect(backoffMs(4, 5000, bottom)).toBe(400);
    expect(backoffMs(4, 5000, () => 0.5)).toBe(600);
    expect(backoffMs(4, 5000, top)).toBe(800);
  });

  it('grows with the attempt until the cap, for any fixed jitter', () => {
    for (const r of [0, 0.3, 1]) {
      let prev = 0;
      for (let attempt = 1; attempt <= 40; attempt++) {
        const ms = backoffMs(attempt, 30_000, () => r);
        expect(ms).toBeGreaterThanOrEqual(prev);
        expect(ms).toBeLessThanOrEqual(30_000);
        prev = ms;
      }
      expect(prev).toBeGreaterThanOrEqual(15_000);
    }
  });

  it.each([
    ['a cap below 10', 1, 5, top],
    ['a cap of 0', 3, 0, top],
    ['a small cap at the jitter bottom', 1, 15, bottom],
  ] as const)('is never below 10 ms: %s', (_what, attempt, cap, random) => {
    expect(backoffMs(attempt, cap, random)).toBe(10);
  });

  it('stays within [max(10, ceiling/2), ceiling] with the default random source', () => {
    for (let i = 0; i < 200; i++) {
      const ms = backoffMs(3, 5000);
      expect(ms).toBeGreaterThanOrEqual(200);
      expect(ms).toBeLessThanOrEqual(400);
    }
  });
});
