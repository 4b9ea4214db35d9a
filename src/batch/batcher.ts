// Batcher: bounded buffering between decode and sink. Flushes at `maxRows` readings or
// `flushIntervalMs` after the first pending one, whichever comes first; up to
// `maxConcurrentFlushes` batches commit at once, and acknowledgements go out in arrival order
// [MQTT-4.6.0-2]. Holds at most `bufferMaxRows` and `bufferMaxBytes` (pending plus batches being
// flushed): past either, `add` returns a promise that settles when there is room (see admission.ts).
// Two lanes keep live data ahead of backfill: items `lanes.isBackfill` says are old (a well
// sending its buffer after an outage) go in their own batches, with at most
// `maxConcurrentFlushes - 1` of them committing at once and at most `lanes.backfillMaxRows`
// buffered; live batches go first. A well with backfill buffered stays in that lane until it is
// committed, so each well's readings commit in arrival order.

/** One message's worth of work; `rows` counts readings plus rejections. */
export interface BatchItem<T = unknown> {
  readonly rows: number;
  /** What the item weighs in memory for bufferMaxBytes (the message's payload bytes); default 0. */
  readonly bytes?: number;
  readonly receivedAtMs: number;
  readonly data: T;
  /** Acknowledged once, after `flush` committed the batch holding this item (e.g. its PUBACK sent). */
  readonly ack: { acknowledge(): void };
}

export interface BatcherOptions<T> {
  readonly maxRows: number;
  readonly flushIntervalMs: number;
  readonly bufferMaxRows: number;
  /** Most bytes (items' `bytes`) held at once; default no bound. */
  readonly bufferMaxBytes?: number;
  /** Commits the items (retrying as it sees fit); rejects only when giving up (shutdown). */
  readonly flush: (items: readonly BatchItem<T>[]) => Promise<void>;
  /**
   * Runs after a batch committed and before its acknowledgements, one batch at a time in arrival
   * order (on the acknowledgement chain), e.g. sequence tracking; rejects only when giving up.
   */
  readonly afterCommit?: (items: readonly BatchItem<T>[]) => Promise<void>;
  readonly onBuffered?: (rows: number) => void;
  /** Batches committing at once (default 1); acknowledgements still go out in arrival order. */
  readonly maxConcurrentFlushes?: number;
  /** The backfill lane; without it every item is live. */
  readonly lanes?: LaneOptions<T> | undefined;
}

export type Lane = 'live' | 'backfill';

/** Live data counts as flowing this long after its last item (a 1 Hz well is never idle). */
const LIVE_IDLE_MS = 5_000;

export interface LaneOptions<T> {
  /** True for an item of old readings (e.g. its oldest device time before a horizon). */
  readonly isBackfill: (item: BatchItem<T>) => boolean;
  /** The item's well: a well with backfill buffered keeps its later items in that lane. */
  readonly keyOf: (item: BatchItem<T>) => string | null;
  /** Most backfill rows buffered; a backfill item past it is refused (see `add`). */
  readonly backfillMaxRows: number;
  /** Told each committed backfill batch's rows (progress and rate). */
  readonly onBackfillCommitted?: (rows: number) => void;
}

/**
 * What `add` returns when the item's lane is full: the item was NOT taken; offer it again once the
 * promise settles. Other items (of the other lane) may be added meanwhile.
 */
export type LaneFull = Promise<void> & { readonly laneFull: Lane };

class LaneQueue<T> {
  items: BatchItem<T>[] = [];
  rows = 0;
  buffered = 0;
  inFlight = 0;
}

export class Batcher<T> {
  readonly #options: BatcherOptions<T>;
  readonly #maxConcurrent: number;
  readonly #lanes: Record<Lane, LaneQueue<T>> = { live: new LaneQueue<T>(), backfill: new LaneQueue<T>() };
  /** Backfill items buffered per well, and wells whose backfill item was refused (lane full). */
  readonly #backfillByKey = new Map<string, number>();
  readonly #refusedKeys = new Set<string>();
  #laneWaiters: (() => void)[] = [];
  /** When the last live item was added (performance.now()); -Infinity before any. */
  #liveSeenAt = -Infinity;
  #bufferedRows = 0;
  #bufferedBytes = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #due = false;
  /** Batches taken and not yet acknowledged (committing, or committed and waiting their turn). */
  #inFlight = 0;
  /**
   * Batches committing now: each holds a flush slot until its commit settles, not until its turn
   * to be acknowledged, so a slow backfill batch ahead in the acknowledgement order does not hold
   * the slot of a live batch that has committed.
   */
  #committing = 0;
  /** Receive time of the first item of each in-flight batch, oldest batch first. */
  #inFlightOldest: number[] = [];
  /** Acknowledgements run along this chain, one batch after the other, in arrival order. */
  #ackChain: Promise<void> = Promise.resolve();
  #spaceWaiters: (() => void)[] = [];
  #failure: unknown;

  constructor(options: BatcherOptions<T>) {
    this.#options = options;
    this.#maxConcurrent = Math.max(1, options.maxConcurrentFlushes ?? 1);
  }

  /** Readings held in memory (pending and being flushed). */
  get bufferedRows(): number {
    return this.#bufferedRows;
  }

  /** Receive time of the oldest item not yet committed, or undefined. */
  get oldestReceivedAtMs(): number | undefined {
    // Read on every change of the buffer: no allocation here.
    const live = this.#lanes.live.items[0]?.receivedAtMs;
    const backfill = this.#lanes.backfill.items[0]?.receivedAtMs;
    return this.#inFlightOldest[0] ?? (live === undefined ? backfill : backfill === undefined ? live : Math.min(live, backfill));
  }

  /** Backfill readings held in memory (pending and being flushed). */
  get backfillRows(): number {
    return this.#lanes.backfill.buffered;
  }

  /**
   * Queues an item. Returns a promise when the buffer is at its cap: the caller should stop
   * taking input until it settles. An item larger than the cap is accepted alone.
   */
  add(item: BatchItem<T>): Promise<void> | LaneFull | undefined {
    if (this.#failure) throw this.#failure;
    const lane = this.#laneOf(item);
    const q = this.#lanes[lane];
    if (lane === 'backfill') {
      const key = this.#options.lanes!.keyOf(item);
      // With no live data the share does not apply (nothing to make room for): a replay of old
      // data meets the whole buffer's backpressure, not a lane's, and is never parked.
      if (q.buffered > 0 && q.buffered + item.rows > this.#options.lanes!.backfillMaxRows && !this.#liveIdle()) {
        if (key !== null) this.#refusedKeys.add(key);
        const full = new Promise<void>((resolve) => this.#laneWaiters.push(resolve)) as LaneFull;
        return Object.assign(full, { laneFull: 'backfill' as const });
      }
      if (key !== null) {
        this.#refusedKeys.delete(key);
        this.#backfillByKey.set(key, (this.#backfillByKey.get(key) ?? 0) + 1);
      }
      q.buffered += item.rows;
    }
    if (lane === 'live') this.#liveSeenAt = performance.now();
    q.items.push(item);
    q.rows += item.rows;
    this.#bufferedBytes += item.bytes ?? 0;
    this.#setBuffered(this.#bufferedRows + item.rows);
    if (this.#pendingCount() === 1 && this.#timer === undefined) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#due = true;
        this.#kick();
      }, this.#options.flushIntervalMs);
    }
    this.#kick();
    if (!this.#full()) return undefined;
    return new Promise<void>((resolve) => this.#spaceWaiters.push(resolve));
  }

  /**
   * Flushes everything pending, then resolves. Idempotent. Rejects when a flush gave up; the
   * items of that batch and all after it were not acknowledged.
   */
  async drain(): Promise<void> {
    this.#due = true;
    this.#kick();
    while (this.#inFlight > 0 || this.#pendingCount() > 0) {
      if (this.#failure) throw this.#failure;
      if (this.#inFlight > 0) await this.#ackChain;
      else {
        // Items added while draining are due too; without this, `#kick` would not start a flush
        // and this loop would spin synchronously forever.
        this.#due = true;
        this.#kick();
      }
    }
    if (this.#failure) throw this.#failure;
    this.#clearTimer();
  }

  #laneOf(item: BatchItem<T>): Lane {
    const lanes = this.#options.lanes;
    if (!lanes) return 'live';
    if (lanes.isBackfill(item)) return 'backfill';
    const key = lanes.keyOf(item);
    return key !== null && (this.#backfillByKey.has(key) || this.#refusedKeys.has(key)) ? 'backfill' : 'live';
  }

  #liveIdle(): boolean {
    return this.#lanes.live.items.length === 0 && this.#lanes.live.inFlight === 0 && performance.now() - this.#liveSeenAt > LIVE_IDLE_MS;
  }

  #pendingCount(): number {
    return this.#lanes.live.items.length + this.#lanes.backfill.items.length;
  }

  /**
   * Live first; backfill leaves one flush slot to live (when there are two or more) while live
   * data flows (an item within LIVE_IDLE_MS, or one buffered). With no live data at all (a replay
   * of old data, a bulk load) backfill uses every slot.
   */
  #kick(): void {
    const backfillSlots = this.#liveIdle() ? this.#maxConcurrent : Math.max(1, this.#maxConcurrent - 1);
    while (this.#committing < this.#maxConcurrent && !this.#failure) {
      const ready = (q: LaneQueue<T>) => q.items.length > 0 && (this.#due || q.rows >= this.#options.maxRows);
      if (ready(this.#lanes.live)) this.#start(this.#take('live'), 'live');
      else if (ready(this.#lanes.backfill) && this.#lanes.backfill.inFlight < backfillSlots) this.#start(this.#take('backfill'), 'backfill');
      else return;
    }
  }

  /**
   * Commits one batch. Several may commit at once (maxConcurrentFlushes), but each batch is
   * acknowledged only after every batch before it: PUBACKs keep arrival order [MQTT-4.6.0-2].
   */
  #start(batch: BatchItem<T>[], lane: Lane): void {
    this.#inFlight++;
    this.#committing++;
    this.#lanes[lane].inFlight++;
    this.#inFlightOldest.push(batch[0]!.receivedAtMs);
    const committed = this.#options.flush(batch);
    const slotFree = () => {
      this.#committing--;
      this.#lanes[lane].inFlight--;
    };
    // A failure is observed by the chain below, in its turn (which then starts nothing more).
    committed.then(() => {
      slotFree();
      this.#kick();
    }, slotFree);
    this.#ackChain = this.#ackChain
      .then(async () => {
        await committed;
        // A batch before this one gave up: acknowledging this one would break the order.
        if (this.#failure) return;
        if (this.#options.afterCommit) await this.#options.afterCommit(batch);
        let rows = 0;
        for (const it of batch) {
          rows += it.rows;
          this.#bufferedBytes -= it.bytes ?? 0;
          it.ack.acknowledge();
        }
        if (lane === 'backfill') this.#backfillDone(batch, rows);
        this.#setBuffered(this.#bufferedRows - rows);
      })
      .catch((err: unknown) => {
        this.#failure ??= err;
      })
      .finally(() => {
        this.#inFlight--;
        this.#inFlightOldest.shift();
        this.#wakeWaiters();
        this.#kick();
      });
  }

  #backfillDone(batch: readonly BatchItem<T>[], rows: number): void {
    const lanes = this.#options.lanes!;
    for (const it of batch) {
      const key = lanes.keyOf(it);
      if (key === null) continue;
      const n = (this.#backfillByKey.get(key) ?? 1) - 1;
      if (n > 0) this.#backfillByKey.set(key, n);
      else this.#backfillByKey.delete(key);
    }
    this.#lanes.backfill.buffered -= rows;
    lanes.onBackfillCommitted?.(rows);
    const waiters = this.#laneWaiters;
    this.#laneWaiters = [];
    for (const w of waiters) w();
  }

  #take(lane: Lane): BatchItem<T>[] {
    const q = this.#lanes[lane];
    let rows = 0;
    let count = 0;
    for (const next of q.items) {
      if (count > 0 && rows + next.rows > this.#options.maxRows) break;
      rows += next.rows;
      count++;
    }
    // One splice per batch: shift() per item is O(n) each, quadratic on a full buffer.
    const batch = q.items.splice(0, count);
    q.rows -= rows;
    if (this.#pendingCount() === 0) {
      this.#due = false;
      this.#clearTimer();
    } else if (this.#timer === undefined) {
      // What is left has waited since before this flush: flush it as soon as this one is done.
      this.#due = true;
    }
    return batch;
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** At the cap of rows or of bytes. */
  #full(): boolean {
    return this.#bufferedRows >= this.#options.bufferMaxRows || this.#bufferedBytes >= (this.#options.bufferMaxBytes ?? Infinity);
  }

  #setBuffered(rows: number): void {
    this.#bufferedRows = rows;
    this.#options.onBuffered?.(rows);
  }

  #wakeWaiters(): void {
    if (this.#failure) {
      const lane = this.#laneWaiters;
      this.#laneWaiters = [];
      for (const w of lane) w();
    }
    if (this.#full() && !this.#failure) return;
    const waiters = this.#spaceWaiters;
    this.#spaceWaiters = [];
    for (const w of waiters) w();
  }
}
