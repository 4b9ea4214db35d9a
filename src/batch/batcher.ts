// Batcher: bounded buffering between decode and sink. Flushes at `maxRows` readings or
// `flushIntervalMs` after the first pending one, whichever comes first; up to
// `maxConcurrentFlushes` batches commit at once, and acknowledgements go out in arrival order
// [MQTT-4.6.0-2]. Holds at most `bufferMaxRows` (pending plus batches being flushed): past that,
// `add` returns a promise that settles when there is room (see admission.ts).

/** One message's worth of work; `rows` counts readings plus rejections. */
export interface BatchItem<T = unknown> {
  readonly rows: number;
  readonly receivedAtMs: number;
  readonly data: T;
  /** Called once, after `flush` committed the batch holding this item. */
  readonly ack: () => void;
}

export interface BatcherOptions<T> {
  readonly maxRows: number;
  readonly flushIntervalMs: number;
  readonly bufferMaxRows: number;
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
}

export class Batcher<T> {
  readonly #o: BatcherOptions<T>;
  readonly #maxConcurrent: number;
  #pending: BatchItem<T>[] = [];
  #pendingRows = 0;
  #bufferedRows = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #due = false;
  /** Batches taken and not yet acknowledged (committing, or committed and waiting their turn). */
  #inFlight = 0;
  /** Receive time of the first item of each in-flight batch, oldest batch first. */
  #inFlightOldest: number[] = [];
  /** Acknowledgements run along this chain, one batch after the other, in arrival order. */
  #ackChain: Promise<void> = Promise.resolve();
  #spaceWaiters: (() => void)[] = [];
  #failure: unknown;

  constructor(options: BatcherOptions<T>) {
    this.#o = options;
    this.#maxConcurrent = Math.max(1, options.maxConcurrentFlushes ?? 1);
  }

  /** Readings held in memory (pending and being flushed). */
  get bufferedRows(): number {
    return this.#bufferedRows;
  }

  /** Receive time of the oldest item not yet committed, or undefined. */
  get oldestReceivedAtMs(): number | undefined {
    return this.#inFlightOldest[0] ?? this.#pending[0]?.receivedAtMs;
  }

  /**
   * Queues an item. Returns a promise when the buffer is at its cap: the caller should stop
   * taking input until it settles. An item larger than the cap is accepted alone.
   */
  add(item: BatchItem<T>): Promise<void> | undefined {
    if (this.#failure) throw this.#failure;
    this.#pending.push(item);
    this.#pendingRows += item.rows;
    this.#setBuffered(this.#bufferedRows + item.rows);
    if (this.#pending.length === 1 && this.#timer === undefined) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#due = true;
        this.#kick();
      }, this.#o.flushIntervalMs);
    }
    this.#kick();
    if (this.#bufferedRows < this.#o.bufferMaxRows) return undefined;
    return new Promise<void>((resolve) => this.#spaceWaiters.push(resolve));
  }

  /**
   * Flushes everything pending, then resolves. Idempotent. Rejects when a flush gave up; the
   * items of that batch and all after it were not acknowledged.
   */
  async drain(): Promise<void> {
    this.#due = true;
    this.#kick();
    while (this.#inFlight > 0 || this.#pending.length > 0) {
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

  #kick(): void {
    while (this.#inFlight < this.#maxConcurrent && !this.#failure && this.#pending.length > 0) {
      if (!this.#due && this.#pendingRows < this.#o.maxRows) return;
      this.#start(this.#take());
    }
  }

  /**
   * Commits one batch. Several may commit at once (maxConcurrentFlushes), but each batch is
   * acknowledged only after every batch before it: PUBACKs keep arrival order [MQTT-4.6.0-2].
   */
  #start(batch: BatchItem<T>[]): void {
    this.#inFlight++;
    this.#inFlightOldest.push(batch[0]!.receivedAtMs);
    const committed = this.#o.flush(batch);
    committed.catch(() => undefined); // observed by the chain below, in its turn
    this.#ackChain = this.#ackChain
      .then(async () => {
        await committed;
        // A batch before this one gave up: acknowledging this one would break the order.
        if (this.#failure) return;
        if (this.#o.afterCommit) await this.#o.afterCommit(batch);
        let rows = 0;
        for (const it of batch) {
          rows += it.rows;
          it.ack();
        }
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

  #take(): BatchItem<T>[] {
    let rows = 0;
    let count = 0;
    for (const next of this.#pending) {
      if (count > 0 && rows + next.rows > this.#o.maxRows) break;
      rows += next.rows;
      count++;
    }
    // One splice per batch: shift() per item is O(n) each, quadratic on a full buffer.
    const batch = this.#pending.splice(0, count);
    this.#pendingRows -= rows;
    if (this.#pending.length === 0) {
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

  #setBuffered(rows: number): void {
    this.#bufferedRows = rows;
    this.#o.onBuffered?.(rows);
  }

  #wakeWaiters(): void {
    if (this.#bufferedRows >= this.#o.bufferMaxRows && !this.#failure) return;
    const waiters = this.#spaceWaiters;
    this.#spaceWaiters = [];
    for (const w of waiters) w();
  }
}
