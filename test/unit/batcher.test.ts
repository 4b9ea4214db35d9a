// Unit tests for the batcher with fake timers: empty, exact fill, overfill, timer flush, full
// buffer (backpressure), drain with rows pending, and a flush that gives up.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Batcher, type BatcherOptions, type BatchItem } from '../../src/batch/batcher.ts';

interface Deferred {
  readonly promise: Promise<void>;
  resolve(): void;
  reject(err: unknown): void;
}
function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets promise callbacks run (the batcher's then/catch/finally chain) without moving the clock. */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

/**
 * A batcher whose flushes are recorded and, in `manual` mode, settle only when the test says so.
 * `events` records flush starts, acks and flush completions in order.
 */
function harness(opts: Partial<Omit<BatcherOptions<string>, 'flush'>> & { manual?: boolean } = {}) {
  const events: string[] = [];
  const batches: string[][] = [];
  const pending: Deferred[] = [];
  const buffered: number[] = [];
  const flush = vi.fn(async (items: readonly BatchItem<string>[]) => {
    const names = items.map((i) => i.data);
    batches.push(names);
    events.push(`flush:${names.join(',')}`);
    if (opts.manual) {
      const d = deferred();
      pending.push(d);
      await d.promise;
    }
    events.push(`flushed:${names.join(',')}`);
  });
  const batcher = new Batcher<string>({
    maxRows: opts.maxRows ?? 5,
    flushIntervalMs: opts.flushIntervalMs ?? 200,
    bufferMaxRows: opts.bufferMaxRows ?? 100,
    ...(opts.bufferMaxBytes === undefined ? {} : { bufferMaxBytes: opts.bufferMaxBytes }),
    flush,
    onBuffered: (rows) => buffered.push(rows),
  });
  const item = (name: string, rows = 1, receivedAtMs = 0, bytes = 0): BatchItem<string> => ({
    rows,
    bytes,
    receivedAtMs,
    data: name,
    ack: { acknowledge: () => events.push(`ack:${name}`) },
  });
  const acks = () => events.filter((e) => e.startsWith('ack:')).map((e) => e.slice(4));
  return { batcher, flush, batches, events, pending, buffered, item, acks };
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('Batcher: empty', () => {
  it('never flushes when nothing was added, and drain resolves at once', async () => {
    const h = harness();
    await vi.advanceTimersByTimeAsync(10_000);
    await h.batcher.drain();
    expect(h.flush).not.toHaveBeenCalled();
    expect(h.batcher.bufferedRows).toBe(0);
    expect(h.batcher.oldestReceivedAtMs).toBeUndefined();
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe('Batcher: size-triggered flush', () => {
  it('flushes immediately when pending rows reach exactly maxRows, acking only after the flush', async () => {
    const h = harness({ maxRows: 3, manual: true });
    expect(h.batcher.add(h.item('a'))).toBeUndefined();
    expect(h.batcher.add(h.item('b'))).toBeUndefined();
    expect(h.flush).not.toHaveBeenCalled();
    h.batcher.add(h.item('c'));
    expect(h.batches).toEqual([['a', 'b', 'c']]);
    await settle();
    expect(h.acks()).toEqual([]);
    expect(h.batcher.bufferedRows).toBe(3);
    h.pending[0]!.resolve();
    await settle();
    expect(h.acks()).toEqual(['a', 'b', 'c']);
    expect(h.batcher.bufferedRows).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('splits an overfilled buffer into batches of at most maxRows, in arrival order', async () => {
    const h = harness({ maxRows: 5 });
    const rows: Record<string, number> = { a: 2, b: 2, c: 2, d: 2, e: 2, f: 3 };
    for (const [name, n] of Object.entries(rows)) h.batcher.add(h.item(name, n));
    await settle();
    await vi.advanceTimersByTimeAsync(200);
    await h.batcher.drain();
    expect(h.batches.flat()).toEqual(['a', 'b', 'c', 'd', 'e', 'f']);
    for (const b of h.batches) expect(b.reduce((s, n) => s + rows[n]!, 0)).toBeLessThanOrEqual(5);
    expect(h.batches).toEqual([
      ['a', 'b'],
      ['c', 'd'],
      ['e', 'f'],
    ]);
    expect(h.acks()).toEqual(['a', 'b', 'c', 'd', 'e', 'f']);
  });

  it('sends an item bigger than maxRows alone', async () => {
    const h = harness({ maxRows: 5 });
    h.batcher.add(h.item('small', 1));
    h.batcher.add(h.item('big', 7));
    h.batcher.add(h.item('after', 1));
    await settle();
    await h.batcher.drain();
    expect(h.batches).toEqual([['small'], ['big'], ['after']]);
    expect(h.acks()).toEqual(['small', 'big', 'after']);
  });

  it('flushes an oversized first item at once', () => {
    const h = harness({ maxRows: 5 });
    h.batcher.add(h.item('big', 50));
    expect(h.batches).toEqual([['big']]);
  });
});

describe('Batcher: timer-triggered flush', () => {
  it('flushes a partial batch flushIntervalMs after the first pending item, not before', async () => {
    const h = harness({ maxRows: 100, flushIntervalMs: 200 });
    h.batcher.add(h.item('a'));
    await vi.advanceTimersByTimeAsync(150);
    h.batcher.add(h.item('b'));
    await vi.advanceTimersByTimeAsync(49);
    expect(h.flush).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    expect(h.batches).toEqual([['a', 'b']]);
    await settle();
    expect(h.acks()).toEqual(['a', 'b']);
  });

  it('starts a new interval for the next item after a flush', async () => {
    const h = harness({ maxRows: 100, flushIntervalMs: 200 });
    h.batcher.add(h.item('a'));
    await vi.advanceTimersByTimeAsync(200);
    h.batcher.add(h.item('b'));
    await vi.advanceTimersByTimeAsync(199);
    expect(h.batches).toEqual([['a']]);
    await vi.advanceTimersByTimeAsync(1);
    expect(h.batches).toEqual([['a'], ['b']]);
  });

  it('holds one flush at a time: items due during a flush go in the next one', async () => {
    const h = harness({ maxRows: 100, flushIntervalMs: 200, manual: true });
    h.batcher.add(h.item('a'));
    await vi.advanceTimersByTimeAsync(200);
    h.batcher.add(h.item('b'));
    await vi.advanceTimersByTimeAsync(1_000);
    expect(h.batches).toEqual([['a']]);
    h.pending[0]!.resolve();
    await settle();
    expect(h.batches).toEqual([['a'], ['b']]);
    h.pending[1]!.resolve();
    await settle();
    expect(h.acks()).toEqual(['a', 'b']);
  });

  it('reports the receive time of the oldest uncommitted item', async () => {
    const h = harness({ maxRows: 2, manual: true });
    h.batcher.add(h.item('a', 1, 1000));
    expect(h.batcher.oldestReceivedAtMs).toBe(1000);
    h.batcher.add(h.item('b', 1, 2000));
    h.batcher.add(h.item('c', 1, 3000));
    expect(h.batcher.oldestReceivedAtMs).toBe(1000);
    h.pending[0]!.resolve();
    await settle();
    expect(h.batcher.oldestReceivedAtMs).toBe(3000);
  });
});

describe('Batcher: full buffer (backpressure)', () => {
  it('returns a promise from add() at the cap that settles only after a flush frees room', async () => {
    const h = harness({ maxRows: 2, bufferMaxRows: 4, manual: true });
    expect(h.batcher.add(h.item('a', 2))).toBeUndefined();
    const wait = h.batcher.add(h.item('b', 2));
    expect(wait).toBeInstanceOf(Promise);
    let roomy = false;
    void wait?.then(() => (roomy = true));
    await settle();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(roomy).toBe(false);
    expect(h.batcher.bufferedRows).toBe(4);
    h.pending[0]!.resolve();
    await settle();
    expect(roomy).toBe(true);
    expect(h.acks()).toEqual(['a']);
    expect(h.batcher.bufferedRows).toBe(2);
    expect(h.buffered).toEqual([2, 4, 2]);
  });

  it('pauses at the byte cap as at the row cap: fat messages are bounded by their size, not their count', async () => {
    const h = harness({ maxRows: 100, bufferMaxRows: 100, bufferMaxBytes: 1_000, manual: true, flushIntervalMs: 10 });
    expect(h.batcher.add(h.item('a', 1, 0, 600))).toBeUndefined();
    const wait = h.batcher.add(h.item('b', 1, 0, 600));
    expect(wait).toBeInstanceOf(Promise);
    let roomy = false;
    void wait?.then(() => (roomy = true));
    await vi.advanceTimersByTimeAsync(20);
    expect(h.batcher.bufferedRows).toBe(2);
    expect(roomy).toBe(false);
    h.pending[0]!.resolve();
    await settle();
    expect(roomy).toBe(true);
    expect(h.acks()).toEqual(['a', 'b']);
    expect(h.batcher.add(h.item('c', 1, 0, 999))).toBeUndefined();
  });

  it('accepts an item larger than the cap alone and releases its caller after its flush', async () => {
    const h = harness({ maxRows: 5, bufferMaxRows: 10, manual: true });
    const wait = h.batcher.add(h.item('huge', 25));
    expect(wait).toBeInstanceOf(Promise);
    let roomy = false;
    void wait?.then(() => (roomy = true));
    await settle();
    expect(roomy).toBe(false);
    h.pending[0]!.resolve();
    await settle();
    expect(roomy).toBe(true);
    expect(h.batcher.bufferedRows).toBe(0);
  });

  it('keeps waiters waiting while the buffer is still at the cap after a flush', async () => {
    const h = harness({ maxRows: 1, bufferMaxRows: 2, manual: true });
    h.batcher.add(h.item('a'));
    const w1 = h.batcher.add(h.item('b'));
    const w2 = h.batcher.add(h.item('c'));
    const released: string[] = [];
    void w1?.then(() => released.push('w1'));
    void w2?.then(() => released.push('w2'));
    h.pending[0]!.resolve();
    await settle();
    // 'a' committed: 2 rows (b, c) still held, which is the cap.
    expect(h.batcher.bufferedRows).toBe(2);
    expect(released).toEqual([]);
    h.pending[1]!.resolve();
    await settle();
    expect(released).toEqual(['w1', 'w2']);
  });
});

describe('Batcher: drain', () => {
  it('flushes rows pending below maxRows at once, then acks in arrival order after the flush resolves', async () => {
    const h = harness({ maxRows: 100, flushIntervalMs: 60_000, manual: true });
    for (const n of ['a', 'b', 'c']) h.batcher.add(h.item(n));
    let drained = false;
    const d = h.batcher.drain().then(() => (drained = true));
    expect(h.batches).toEqual([['a', 'b', 'c']]);
    await settle();
    expect(h.acks()).toEqual([]);
    expect(drained).toBe(false);
    h.pending[0]!.resolve();
    await d;
    expect(h.events).toEqual(['flush:a,b,c', 'flushed:a,b,c', 'ack:a', 'ack:b', 'ack:c']);
    expect(drained).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('flushes every batch when more than maxRows are pending', async () => {
    const h = harness({ maxRows: 2, flushIntervalMs: 60_000 });
    for (const n of ['a', 'b', 'c', 'd', 'e']) h.batcher.add(h.item(n));
    await h.batcher.drain();
    expect(h.batches).toEqual([['a', 'b'], ['c', 'd'], ['e']]);
    expect(h.acks()).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(h.batcher.bufferedRows).toBe(0);
  });

  it('also flushes an item added while the drain is in progress', async () => {
    const h = harness({ maxRows: 100, flushIntervalMs: 60_000, manual: true });
    h.batcher.add(h.item('a'));
    const d = h.batcher.drain();
    h.batcher.add(h.item('late'));
    h.pending[0]!.resolve();
    await settle();
    expect(h.batches).toEqual([['a'], ['late']]);
    h.pending[1]!.resolve();
    await d;
    expect(h.acks()).toEqual(['a', 'late']);
  });

  it('is idempotent', async () => {
    const h = harness({ maxRows: 100 });
    h.batcher.add(h.item('a'));
    await Promise.all([h.batcher.drain(), h.batcher.drain()]);
    await h.batcher.drain();
    expect(h.batches).toEqual([['a']]);
    expect(h.acks()).toEqual(['a']);
  });

  it('rejects when a flush gives up, and acks nothing of that batch or after it', async () => {
    const h = harness({ maxRows: 2, flushIntervalMs: 60_000, manual: true });
    for (const n of ['a', 'b', 'c']) h.batcher.add(h.item(n));
    const d = h.batcher.drain();
    const failure = new Error('shutdown: batch commit aborted');
    h.pending[0]!.reject(failure);
    await expect(d).rejects.toBe(failure);
    expect(h.acks()).toEqual([]);
    expect(h.batches).toEqual([['a', 'b']]);
    expect(() => h.batcher.add(h.item('d'))).toThrow(failure);
    await expect(h.batcher.drain()).rejects.toBe(failure);
  });

  it('rejects after a flush failed outside a drain, and wakes callers waiting for room', async () => {
    const h = harness({ maxRows: 1, bufferMaxRows: 1, manual: true });
    const wait = h.batcher.add(h.item('a'));
    const failure = new Error('gave up');
    h.pending[0]!.reject(failure);
    await expect(wait).resolves.toBeUndefined();
    await expect(h.batcher.drain()).rejects.toBe(failure);
    expect(h.acks()).toEqual([]);
  });
});
