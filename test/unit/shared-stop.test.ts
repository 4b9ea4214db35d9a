// drainUntilQuiet: after leaving a shared group, the broker still sends what it had dealt this
// member; the stop drains until a quiet period passes with nothing new held. Fake timers.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { drainUntilQuiet } from '../../src/ingress/shared-stop.ts';

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

describe('drainUntilQuiet', () => {
  it('drains once when nothing arrives during the quiet period', async () => {
    const drain = vi.fn(async () => undefined);
    const done = drainUntilQuiet({ drain, held: () => 0, quietMs: 300, signal: new AbortController().signal });
    await vi.advanceTimersByTimeAsync(299);
    expect(drain).toHaveBeenCalledTimes(1);
    let finished = false;
    void done.then(() => (finished = true));
    await vi.advanceTimersByTimeAsync(0);
    expect(finished).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(finished).toBe(true);
  });

  it('drains again while messages keep arriving, then stops', async () => {
    const held = [2, 1, 0];
    const drain = vi.fn(async () => undefined);
    const done = drainUntilQuiet({ drain, held: () => held.shift() ?? 0, quietMs: 300, signal: new AbortController().signal });
    await vi.advanceTimersByTimeAsync(900);
    await done;
    expect(drain).toHaveBeenCalledTimes(3);
  });

  it("ends at once when shutdown's deadline aborts the wait", async () => {
    const deadline = new AbortController();
    const drain = vi.fn(async () => undefined);
    const done = drainUntilQuiet({ drain, held: () => 5, quietMs: 10_000, signal: deadline.signal });
    await vi.advanceTimersByTimeAsync(10);
    deadline.abort();
    await vi.advanceTimersByTimeAsync(0);
    await done;
    expect(drain).toHaveBeenCalledTimes(2);
  });

  it('passes on a drain that gave up', async () => {
    const err = new Error('aborted');
    await expect(drainUntilQuiet({ drain: () => Promise.reject(err), held: () => 0, quietMs: 10, signal: new AbortController().signal })).rejects.toBe(err);
  });
});
