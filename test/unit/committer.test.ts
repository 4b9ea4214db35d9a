// Unit tests for the committer's handling of database errors, against a test double of our own
// writer interface (a keyed store that deduplicates like the staged path; no PostgreSQL mock):
// transient errors (23505 from a concurrent writer, "chunk not found", 40P01, 55P03) are retried
// and never reach rejected_messages; 53400 splits the batch into transactions that together
// store every reading once; the batch resolves only after every part committed.
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CATALOG } from '../../src/decode/catalog.ts';
import type { Reading } from '../../src/decode/decode.ts';
import type { RejectRow } from '../../src/decode/work.ts';
import { AbortedError } from '../../src/errors.ts';
import { createMetrics } from '../../src/metrics/metrics.ts';
import { Committer, splitMessages } from '../../src/sink/committer.ts';
import { RetryableWriteError, type WriteOptions, type WriteResult } from '../../src/sink/writer.ts';
import { message, pgError, reading } from '../support/fixtures.ts';

const decoderReject: RejectRow = {
  receivedAtMs: 0,
  topic: 'wells/ESP-001/telemetry',
  wellId: 'ESP-001',
  reason: 'out_of_range',
  detail: 'x',
  index: 1,
  payload: Buffer.from('{}'),
};

interface Call {
  readonly rows: readonly Reading[];
  readonly rejects: number;
  readonly lifted: boolean;
  readonly error: string | null;
}

/** Our writer's contract, kept in memory: one Map per committed store, deduplicating by key. */
class KeyedStore {
  readonly stored = new Map<string, Reading>();
  readonly rejects: RejectRow[] = [];
  readonly calls: Call[] = [];
  /** Decides the outcome of each transaction before it "commits". */
  constructor(readonly failure: (rows: readonly Reading[], call: number, options: WriteOptions) => Error | undefined = () => undefined) {}

  async write(rows: readonly Reading[], rejects: readonly RejectRow[], _signal?: AbortSignal, options: WriteOptions = {}): Promise<WriteResult> {
    await Promise.resolve();
    const err = this.failure(rows, this.calls.length, options);
    this.calls.push({
      rows,
      rejects: rejects.length,
      lifted: options.liftDecompressionLimit === true,
      error: err ? ((err as { code?: string }).code ?? 'error') : null,
    });
    if (err) throw err;
    let inserted = 0;
    for (const r of rows) {
      const key = `${r.wellId}|${r.tsUs}`;
      if (!this.stored.has(key)) {
        this.stored.set(key, r);
        inserted++;
      }
    }
    this.rejects.push(...rejects);
    return { inserted, duplicates: rows.length - inserted, conflicts: 0, filled: 0 };
  }
}

function committer(store: KeyedStore, signal = new AbortController().signal) {
  const metrics = createMetrics();
  const states: boolean[] = [];
  const c = new Committer({
    writer: store,
    catalog: DEFAULT_CATALOG,
    metrics,
    log: pino({ level: 'silent' }),
    retryMaxDelayMs: 20,
    signal,
    clock: () => 0,
    onDbState: (ok) => states.push(ok),
  });
  return { c, metrics, states };
}

async function counter(metrics: ReturnType<typeof createMetrics>, name: string, labels: Record<string, string>): Promise<number> {
  const m = (await metrics.registry.getMetricsAsJSON()).find((x) => x.name === name);
  const v = (m?.values ?? []).find((x) => Object.entries(labels).every(([k, l]) => (x.labels as Record<string, unknown>)[k] === l));
  return Number(v?.value ?? 0);
}

/** `n` readings of `well` one second apart, from 2023-11-14T22:13:20Z. */
const day = (n: number, well = 'ESP-006') =>
  Array.from({ length: n }, (_, i) => reading(well, 1_700_000_000_000_000 + i * 1_000_000, { motor_current_a: 40 + (i % 10) }));

describe('Committer: transient errors are retried, never moved to rejected_messages', () => {
  it.each([
    [
      '23505 from a concurrent writer on the staged path (timescaledb #5448), as the writer throws it',
      new RetryableWriteError(pgError('23505', 'duplicate key value violates unique constraint "1_1_esp_telemetry_well_ts_key"')),
    ],
    [
      '42704 "chunk not found" during recompression (timescaledb #5471, #3400), as the writer throws it',
      new RetryableWriteError(pgError('42704', 'chunk not found')),
    ],
    ['40P01 deadlock at a chunk boundary (timescaledb #4800, #7429)', pgError('40P01', 'deadlock detected')],
    ['55P03 lock_timeout while the compression job holds the chunk (timescaledb #5986)', pgError('55P03', 'canceling statement due to lock timeout')],
    ['57014 statement_timeout', pgError('57014', 'canceling statement due to statement timeout')],
  ])('%s', async (_what, err) => {
    const store = new KeyedStore((_rows, call) => (call < 3 ? err : undefined));
    const { c, metrics, states } = committer(store);
    const readings = day(10);
    await c.commit([message(readings.slice(0, 5), [decoderReject]), message(readings.slice(5))]);
    expect(store.calls.map((x) => x.error)).toEqual([err.code, err.code, err.code, null]);
    expect(store.stored.size).toBe(10);
    expect(store.rejects.map((r) => r.reason)).toEqual(['out_of_range']);
    expect(await counter(metrics, 'esp_ingest_flush_retries_total', { code: err.code })).toBe(3);
    expect(states).toEqual([false, false, false, true]);
  });

  it('a "42704" that is not "chunk not found" is a schema problem: retried at the longest backoff, readiness down', async () => {
    const store = new KeyedStore((_rows, call) => (call < 1 ? pgError('42704', 'type "foo" does not exist') : undefined));
    const { c, states } = committer(store);
    await c.commit([message(day(2))]);
    expect(states).toEqual([false, true]);
    expect(store.rejects).toEqual([]);
  });
});

describe('Committer: 53400 (decompression limit) splits the batch into whole messages', () => {
  /** The limit as the double sees it: a transaction of more than `limit` readings is refused. */
  const limitOf = (limit: number) => (rows: readonly Reading[], _call: number, options: WriteOptions) =>
    rows.length > limit && !options.liftDecompressionLimit ? pgError('53400', 'tuple decompression limit exceeded by operation') : undefined;
  /** A gateway's backfill: `n` messages of `per` readings each, consecutive in time. */
  const messages = (n: number, per: number, well = 'ESP-006') => {
    const readings = day(n * per, well);
    return Array.from({ length: n }, (_, i) => message(readings.slice(i * per, (i + 1) * per)));
  };

  it('writes a large backfill in parts of at most the limit, every reading once, each rejection once with its message', async () => {
    const store = new KeyedStore(limitOf(1000));
    const { c, metrics } = committer(store);
    const batch = [...messages(30, 100, 'ESP-006'), ...messages(6, 100, 'ESP-007')];
    batch[3] = message(batch[3]!.data.readings, [decoderReject]);
    await c.commit(batch);
    expect(store.stored.size).toBe(3600);
    const committed = store.calls.filter((x) => x.error === null);
    expect(committed.every((x) => x.rows.length <= 1000)).toBe(true);
    expect(committed.reduce((n, x) => n + x.rows.length, 0)).toBe(3600);
    expect(committed.reduce((n, x) => n + x.rejects, 0)).toBe(1);
    expect(store.rejects).toHaveLength(1);
    expect(store.calls.some((x) => x.lifted)).toBe(false);
    expect(await counter(metrics, 'esp_ingest_decompression_limit_total', { action: 'split' })).toBe(store.calls.filter((x) => x.error === '53400').length);
    expect(await counter(metrics, 'esp_ingest_flush_retries_total', { code: '53400' })).toBe(0);
    expect(await counter(metrics, 'esp_ingest_readings_committed_total', {})).toBe(3600);
    expect(await counter(metrics, 'esp_ingest_readings_rejected_total', { reason: 'out_of_range' })).toBe(1);
  });

  it('parts follow (well_id, device time): a part never mixes wells once the halves can separate them', async () => {
    const store = new KeyedStore(limitOf(500));
    const { c } = committer(store);
    await c.commit([...messages(4, 100, 'ESP-002'), ...messages(4, 100, 'ESP-001')]);
    const committed = store.calls.filter((x) => x.error === null);
    expect(committed.map((x) => new Set(x.rows.map((r) => r.wellId)).size)).toEqual([1, 1]);
    expect(committed.map((x) => x.rows[0]?.wellId)).toEqual(['ESP-001', 'ESP-002']);
  });

  it('one message that still exceeds the limit is written whole with the limit lifted for its transaction', async () => {
    // A limit below one message's size: every transaction is refused unless the limit is lifted.
    const store = new KeyedStore(limitOf(2));
    const { c, metrics } = committer(store);
    await c.commit([message(day(4, 'ESP-001')), message(day(4, 'ESP-002'))]);
    expect(store.stored.size).toBe(8);
    expect(store.calls.filter((x) => x.error === null).map((x) => [x.rows.length, x.lifted])).toEqual([
      [4, true],
      [4, true],
    ]);
    expect(await counter(metrics, 'esp_ingest_decompression_limit_total', { action: 'lifted' })).toBe(2);
  });

  it('53400 again with the limit lifted is retried, and /readyz is told what is stuck and why', async () => {
    // Twice refused even with the limit lifted (another server bound), then it passes.
    let liftedRefusals = 0;
    const store = new KeyedStore((_rows, _call, options) =>
      options.liftDecompressionLimit && liftedRefusals++ < 2
        ? pgError('53400', 'out of memory for decompression')
        : options.liftDecompressionLimit
          ? undefined
          : pgError('53400'),
    );
    const reasons: (string | undefined)[] = [];
    const c = new Committer({
      writer: store,
      catalog: DEFAULT_CATALOG,
      metrics: createMetrics(),
      log: pino({ level: 'silent' }),
      retryMaxDelayMs: 20,
      signal: new AbortController().signal,
      clock: () => 0,
      onDbState: (ok, reason) => reasons.push(ok ? 'ok' : reason),
    });
    await c.commit([message(day(3))]);
    expect(store.stored.size).toBe(3);
    expect(reasons).toEqual([
      'one message (3 readings) is refused with 53400 even with the decompression limit lifted for its transaction (another server bound, e.g. memory): out of memory for decompression',
      'one message (3 readings) is refused with 53400 even with the decompression limit lifted for its transaction (another server bound, e.g. memory): out of memory for decompression',
      'ok',
    ]);
  });

  it('a poison message inside a split batch goes to rejected_messages once; the rest is stored once', async () => {
    const poison = reading('ESP-006', 1_700_000_000_000_000 + 5 * 1_000_000 + 1);
    const store = new KeyedStore(
      (rows, call, options) => limitOf(3)(rows, call, options) ?? (rows.includes(poison) ? pgError('22003', 'value out of range') : undefined),
    );
    const { c } = committer(store);
    const readings = day(8);
    await c.commit([
      message(readings.slice(0, 2)),
      message(readings.slice(2, 4)),
      message([poison], [decoderReject]),
      message(readings.slice(4, 6)),
      message(readings.slice(6)),
    ]);
    expect(store.stored.size).toBe(8);
    expect([...store.stored.values()]).not.toContain(poison);
    expect(store.rejects.map((r) => r.reason).sort()).toEqual(['db_rejected', 'out_of_range']);
  });

  it('a refused reading is kept as decoded: ts to the microsecond, seq, channels and extra fields', async () => {
    const poison = reading('ESP-006', Date.parse('2024-05-01T00:00:01Z') * 1000 + 250, { motor_current_a: 13.13 }, { seq: 7, extra: { firmware: 'v2' } });
    const store = new KeyedStore((rows) => (rows.includes(poison) ? pgError('23514', 'new row violates check constraint') : undefined));
    const { c } = committer(store);
    await c.commit([message([poison])]);
    expect(store.rejects.map((r) => r.reason)).toEqual(['db_rejected']);
    expect(JSON.parse(Buffer.from(store.rejects[0]!.payload).toString())).toEqual({
      ts: '2024-05-01T00:00:01.000250Z',
      seq: 7,
      motor_current_a: 13.13,
      firmware: 'v2',
    });
  });

  it('a message the server refuses is never also partly stored: none of its readings reach esp_telemetry', async () => {
    // One message of 4 readings, one of them refused (22003), in a batch over the limit: it is
    // written whole (lifted), refused whole, and moved to rejected_messages whole.
    const bad = day(4, 'ESP-009');
    const store = new KeyedStore(
      (rows, call, options) => limitOf(3)(rows, call, options) ?? (rows.includes(bad[3]!) ? pgError('22003', 'value out of range') : undefined),
    );
    const { c } = committer(store);
    await c.commit([message(day(3, 'ESP-001')), message(bad)]);
    expect([...store.stored.keys()].filter((k) => k.startsWith('ESP-009'))).toEqual([]);
    expect(store.stored.size).toBe(3);
    expect(store.rejects.filter((r) => r.reason === 'db_rejected')).toHaveLength(4);
  });

  it('resolves only after every part committed: a part that never commits leaves the batch unresolved (not acknowledged)', async () => {
    const abort = new AbortController();
    let refusals = 0;
    const store = new KeyedStore((rows, call, options) => {
      const limit = limitOf(5)(rows, call, options);
      if (limit) return limit;
      // The second part hits a server that keeps failing; shutdown ends the wait.
      if (rows.some((r) => r.wellId === 'ESP-009')) {
        if (++refusals === 3) abort.abort();
        return pgError('08006', 'connection failure');
      }
      return undefined;
    });
    const { c } = committer(store, abort.signal);
    let resolved = false;
    const commit = c.commit([message(day(5, 'ESP-001')), message(day(5, 'ESP-009'))]).then(() => {
      resolved = true;
    });
    await expect(commit).rejects.toBeInstanceOf(AbortedError);
    expect(resolved).toBe(false);
    // The first part is stored; writing the whole batch again stores nothing twice.
    expect(store.stored.size).toBe(5);
    const again = new KeyedStore(limitOf(5));
    for (const [k, v] of store.stored) again.stored.set(k, v);
    await committer(again).c.commit([message(day(5, 'ESP-001')), message(day(5, 'ESP-009'))]);
    expect(again.stored.size).toBe(10);
  });
});

describe('splitMessages', () => {
  it('sorts by (well id, first device time) and halves; every message once, whole, both halves non-empty', () => {
    const works = [
      message([reading('B', 3)]),
      message([reading('A', 2), reading('A', 1)]),
      message([reading('B', 1)]),
      message([reading('A', 9)]),
      message([reading('C', 0)]),
    ].map((m) => m.data);
    const [a, b] = splitMessages(works);
    expect(a.map((w) => w.readings.map((r) => `${r.wellId}${r.tsUs}`).join('+'))).toEqual(['A2+A1', 'A9', 'B1']);
    expect(b.map((w) => w.readings.map((r) => `${r.wellId}${r.tsUs}`).join('+'))).toEqual(['B3', 'C0']);
  });

  it.each([2, 3, 1000, 1001])('%i messages: halves of ceil/floor size', (n) => {
    const works = day(n).map((r) => message([r]).data);
    const [a, b] = splitMessages(works);
    expect([a.length, b.length]).toEqual([Math.ceil(n / 2), Math.floor(n / 2)]);
    expect(new Set([...a, ...b]).size).toBe(n);
  });
});
