// Unit tests for the error log throttle (log/throttle.ts) on a fake clock: first error in full,
// repeats at most once per interval with a count, recovery once.
import { describe, expect, it } from 'vitest';
import { ErrorLogThrottle, REPEAT_LOG_INTERVAL_MS, warnThrottled } from '../../src/log/throttle.ts';

function fakeClock() {
  let now = 1_000_000;
  return { clock: () => now, advance: (ms: number) => (now += ms) };
}

describe('ErrorLogThrottle', () => {
  it('logs the first error, then one line a minute with the errors since the last line', () => {
    const { clock, advance } = fakeClock();
    const t = new ErrorLogThrottle(60_000, clock);
    expect(t.error()).toEqual({ log: 'first' });
    const verdicts = [];
    // One error a second for three minutes: 180 errors.
    for (let i = 0; i < 180; i++) {
      advance(1_000);
      verdicts.push(t.error());
    }
    const lines = verdicts.filter((v) => v.log !== 'none');
    expect(lines).toEqual([
      { log: 'repeat', errorsSinceLastLine: 60, outageMs: 60_000 },
      { log: 'repeat', errorsSinceLastLine: 60, outageMs: 120_000 },
      { log: 'repeat', errorsSinceLastLine: 60, outageMs: 180_000 },
    ]);
    advance(500);
    expect(t.ok()).toEqual({ errors: 181, outageMs: 180_500 });
  });

  it('reports the recovery once, and nothing when there was no outage', () => {
    const { clock, advance } = fakeClock();
    const t = new ErrorLogThrottle(60_000, clock);
    expect(t.ok()).toBeUndefined();
    t.error();
    expect(t.down).toBe(true);
    advance(2_000);
    expect(t.ok()).toEqual({ errors: 1, outageMs: 2_000 });
    expect(t.down).toBe(false);
    expect(t.ok()).toBeUndefined();
  });

  it('starts a new outage after a recovery: its first error is logged in full again', () => {
    const { clock, advance } = fakeClock();
    const t = new ErrorLogThrottle(60_000, clock);
    t.error();
    advance(10);
    expect(t.error()).toEqual({ log: 'none' });
    t.ok();
    advance(10);
    expect(t.error()).toEqual({ log: 'first' });
    advance(59_999);
    expect(t.error()).toEqual({ log: 'none' });
    advance(1);
    expect(t.error()).toEqual({ log: 'repeat', errorsSinceLastLine: 2, outageMs: 60_000 });
  });

  it('errors slower than the interval are each logged, counting one', () => {
    const { clock, advance } = fakeClock();
    const t = new ErrorLogThrottle(REPEAT_LOG_INTERVAL_MS, clock);
    t.error();
    advance(REPEAT_LOG_INTERVAL_MS * 2);
    expect(t.error()).toEqual({ log: 'repeat', errorsSinceLastLine: 1, outageMs: REPEAT_LOG_INTERVAL_MS * 2 });
  });
});

describe('warnThrottled', () => {
  it('logs the first error with its stack, a due repeat with counts and no stack, nothing between', () => {
    let now = 0;
    const throttle = new ErrorLogThrottle(60_000, () => now);
    const lines: { obj: Record<string, unknown>; msg: string }[] = [];
    const log = { warn: (obj: object, msg: string) => void lines.push({ obj: obj as Record<string, unknown>, msg }) };
    const err = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    for (let i = 0; i < 5; i++) {
      warnThrottled(log, throttle, err, { attempt: i + 1 }, 'down', (n) => `still down (${n})`);
      now += 20_000;
    }
    expect(lines.map((l) => l.msg)).toEqual(['down', 'still down (3)']);
    expect(lines[0]!.obj).toMatchObject({ attempt: 1, err });
    expect(lines[1]!.obj).toMatchObject({ attempt: 4, error: 'connect ECONNREFUSED', code: 'ECONNREFUSED', errorsSinceLastLine: 3, outageS: 60 });
    expect(lines[1]!.obj).not.toHaveProperty('err');
  });
});
