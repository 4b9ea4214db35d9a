// Batches committing at once: acknowledgements still go out in arrival order.
import { describe, expect, it } from 'vitest';
import { Batcher, type BatchItem } from '../../src/batch/batcher.ts';

function controlled() {
  const calls: { items: readonly BatchItem<number>[]; resolve: () => void; reject: (e: Error) => void }[] = [];
  const flush = (items: readonly BatchItem<number>[]) => new Promise<void>((resolve, reject) => calls.push({ items, resolve, reject }));
  return { calls, flush };
}
/** Lets every settled promise chain run (a macrotask turn; not a sleep). */
const tick = () => new Promise<void>((r) => setImmediate(r));

describe('Batcher with maxConcurrentFlushes 2', () => {
  it('commits two full batches at once and acknowledges them in arrival order', async () => {
    const { calls, flush } = controlled();
    const acks: number[] = [];
    const b = new Batcher<number>({ maxRows: 2, flushIntervalMs: 60_000, bufferMaxRows: 100, flush, maxConcurrentFlushes: 2 });
    for (let i = 1; i <= 6; i++) b.add({ rows: 1, receivedAtMs: i, data: i, ack: { acknowledge: () => acks.push(i) } });
    expect(calls.map((c) => c.items.map((it) => it.data))).toEqual([
      [1, 2],
      [3, 4],
    ]);
    calls[1]!.resolve(); // the second commits first
    await tick();
    expect(acks).toEqual([]);
    expect(b.oldestReceivedAtMs).toBe(1);
    calls[0]!.resolve();
    await tick();
    expect(acks).toEqual([1, 2, 3, 4]);
    expect(calls).toHaveLength(3); // the freed slots took [5, 6]
    calls[2]!.resolve();
    await b.drain();
    expect(acks).toEqual([1, 2, 3, 4, 5, 6]);
    expect(b.bufferedRows).toBe(0);
  });

  it('acknowledges nothing after a batch that gave up, even one that committed', async () => {
    const { calls, flush } = controlled();
    const acks: number[] = [];
    const b = new Batcher<number>({ maxRows: 1, flushIntervalMs: 60_000, bufferMaxRows: 100, flush, maxConcurrentFlushes: 2 });
    b.add({ rows: 1, receivedAtMs: 1, data: 1, ack: { acknowledge: () => acks.push(1) } });
    b.add({ rows: 1, receivedAtMs: 2, data: 2, ack: { acknowledge: () => acks.push(2) } });
    calls[1]!.resolve();
    calls[0]!.reject(new Error('aborted by shutdown'));
    await expect(b.drain()).rejects.toThrow('aborted by shutdown');
    expect(acks).toEqual([]);
  });
});
