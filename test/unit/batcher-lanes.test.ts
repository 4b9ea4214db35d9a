// The batcher's backfill lane and admission's parking: live items commit ahead of backfill,
// backfill never takes the last flush slot or more than its share of the buffer, a well with
// backfill buffered stays in that lane (its readings commit in order), and a message refused for
// a full lane is parked while the ones behind it are admitted.
import { describe, expect, it } from 'vitest';
import { Admission } from '../../src/batch/admission.ts';
import { Batcher, type BatchItem } from '../../src/batch/batcher.ts';

interface Data {
  readonly name: string;
  readonly well: string;
  readonly old: boolean;
}

async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

function harness(backfillMaxRows = 100) {
  const started: string[][] = [];
  const finish: (() => void)[] = [];
  const acked: string[] = [];
  const batcher = new Batcher<Data>({
    maxRows: 2,
    flushIntervalMs: 1_000_000,
    bufferMaxRows: 1_000,
    maxConcurrentFlushes: 2,
    flush: (items) => {
      started.push(items.map((i) => i.data.name));
      return new Promise<void>((r) => finish.push(r));
    },
    lanes: { isBackfill: (i) => i.data.old, keyOf: (i) => i.data.well, backfillMaxRows },
  });
  const item = (name: string, well: string, old: boolean, rows = 1): BatchItem<Data> => ({
    rows,
    receivedAtMs: 0,
    data: { name, well, old },
    ack: { acknowledge: () => acked.push(name) },
  });
  return { batcher, started, finish, acked, item };
}

describe('Batcher lanes', () => {
  it('while live data flows, backfill batches never mix with live ones and leave one flush slot to live', async () => {
    const h = harness();
    h.batcher.add(h.item('l0', 'W-1', false));
    h.batcher.add(h.item('l00', 'W-2', false));
    await settle();
    h.finish[0]!();
    await settle();
    for (const n of ['b1', 'b2', 'b3', 'b4']) h.batcher.add(h.item(n, 'OLD', true));
    await settle();
    expect(h.started).toEqual([
      ['l0', 'l00'],
      ['b1', 'b2'],
    ]);
    h.batcher.add(h.item('l1', 'W-1', false));
    h.batcher.add(h.item('l2', 'W-2', false));
    await settle();
    expect(h.started).toEqual([
      ['l0', 'l00'],
      ['b1', 'b2'],
      ['l1', 'l2'],
    ]);
  });

  it('with no live data at all (a replay of old data), backfill uses every flush slot and the whole buffer', async () => {
    const h = harness(2);
    for (const n of ['b1', 'b2', 'b3', 'b4']) expect(h.batcher.add(h.item(n, 'OLD', true))).toBeUndefined();
    await settle();
    expect(h.started).toEqual([
      ['b1', 'b2'],
      ['b3', 'b4'],
    ]);
  });

  it('a committed live batch frees its slot at once, though its PUBACKs wait behind the older backfill batch', async () => {
    const h = harness();
    h.batcher.add(h.item('b1', 'OLD', true));
    h.batcher.add(h.item('b2', 'OLD', true));
    h.batcher.add(h.item('l1', 'W-1', false));
    h.batcher.add(h.item('l2', 'W-1', false));
    await settle();
    expect(h.started).toEqual([
      ['b1', 'b2'],
      ['l1', 'l2'],
    ]);
    h.finish[1]!(); // the live batch commits; the backfill batch is still committing
    h.batcher.add(h.item('l3', 'W-2', false));
    h.batcher.add(h.item('l4', 'W-2', false));
    await settle();
    expect(h.started).toEqual([
      ['b1', 'b2'],
      ['l1', 'l2'],
      ['l3', 'l4'],
    ]);
    expect(h.acked).toEqual([]);
    h.finish[0]!();
    h.finish[2]!();
    await settle();
    expect(h.acked).toEqual(['b1', 'b2', 'l1', 'l2', 'l3', 'l4']);
  });

  it('a well with backfill buffered keeps its later (new) readings in the backfill lane', async () => {
    const h = harness();
    h.batcher.add(h.item('b1', 'RET', true));
    h.batcher.add(h.item('new', 'RET', false));
    h.batcher.add(h.item('l1', 'W-1', false));
    h.batcher.add(h.item('l2', 'W-1', false));
    await settle();
    expect(h.started).toEqual([
      ['b1', 'new'],
      ['l1', 'l2'],
    ]);
  });

  it('refuses a backfill item past the lane share (not taken), and says when there is room', async () => {
    const h = harness(3);
    h.batcher.add(h.item('l0', 'W-0', false)); // live data flows (pending until due)
    expect(h.batcher.add(h.item('b1', 'OLD', true, 2))).toBeUndefined();
    const full = h.batcher.add(h.item('b2', 'OLD', true, 2));
    expect(full && 'laneFull' in full && full.laneFull).toBe('backfill');
    expect(h.batcher.backfillRows).toBe(2);
    // Live items are still taken.
    expect(h.batcher.add(h.item('l1', 'W-1', false, 2))).toBeUndefined();
    let room = false;
    void full!.then(() => (room = true));
    await settle();
    for (const f of h.finish) f();
    await settle();
    expect(room).toBe(true);
    expect(h.batcher.backfillRows).toBe(0);
  });
});

describe('Admission parks a message whose lane is full', () => {
  it('admits the ones behind it, then the parked one, in order, once its lane has room', async () => {
    const admitted: string[] = [];
    let release: () => void = () => undefined;
    let full = true;
    const admission = new Admission<string>((m) => {
      if (m.startsWith('b') && full) return Object.assign(new Promise<void>((r) => (release = r)), { laneFull: 'backfill' as const });
      admitted.push(m);
      return undefined;
    }, 100);
    for (const m of ['b1', 'l1', 'b2', 'l2']) expect(admission.offer(m)).toBeUndefined();
    expect(admitted).toEqual(['l1', 'l2']);
    expect(admission.waiting).toBe(2);
    full = false;
    release();
    await settle();
    expect(admitted).toEqual(['l1', 'l2', 'b1', 'b2']);
    expect(admission.waiting).toBe(0);
  });
});
