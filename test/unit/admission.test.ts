import { describe, expect, it } from 'vitest';
import { Admission } from '../../src/batch/admission.ts';

/** A fake buffer: `full` decides whether admit returns a promise; `free()` settles it. */
function harness(maxWaiting: number) {
  const admitted: number[] = [];
  let full = false;
  let free: () => void = () => undefined;
  const a = new Admission<number>((m) => {
    admitted.push(m);
    if (!full) return undefined;
    return new Promise<void>((r) => (free = r));
  }, maxWaiting);
  return {
    a,
    admitted,
    setFull: (v: boolean) => (full = v),
    free: async () => {
      free();
      await Promise.resolve();
      await Promise.resolve();
    },
  };
}

describe('Admission', () => {
  it('admits at once while the buffer has room', () => {
    const h = harness(3);
    expect(h.a.offer(1)).toBeUndefined();
    expect(h.a.offer(2)).toBeUndefined();
    expect(h.admitted).toEqual([1, 2]);
    expect(h.a.waiting).toBe(0);
  });

  it('holds messages undecoded while the buffer is full, then admits them in arrival order', async () => {
    const h = harness(10);
    h.setFull(true);
    h.a.offer(1); // admitted; the buffer is now full
    expect(h.a.offer(2)).toBeUndefined();
    expect(h.a.offer(3)).toBeUndefined();
    expect(h.admitted).toEqual([1]);
    expect(h.a.waiting).toBe(2);
    h.setFull(false);
    await h.free();
    expect(h.admitted).toEqual([1, 2, 3]);
    expect(h.a.waiting).toBe(0);
  });

  it('pauses intake only when maxWaiting messages wait, and resumes when they drain', async () => {
    const h = harness(2);
    h.setFull(true);
    h.a.offer(1);
    expect(h.a.offer(2)).toBeUndefined();
    const pause = h.a.offer(3);
    expect(pause).toBeInstanceOf(Promise);
    let resumed = false;
    void pause!.then(() => (resumed = true));
    await Promise.resolve();
    expect(resumed).toBe(false);
    h.setFull(false);
    await h.free();
    await Promise.resolve();
    expect(resumed).toBe(true);
    expect(h.admitted).toEqual([1, 2, 3]);
  });

  it('drops a message whose admission throws (buffer gave up at shutdown) and goes on', () => {
    const seen: number[] = [];
    const a = new Admission<number>((m) => {
      if (m === 2) throw new Error('batcher failed');
      seen.push(m);
      return undefined;
    }, 5);
    a.offer(1);
    a.offer(2);
    a.offer(3);
    expect(seen).toEqual([1, 3]);
  });
});
