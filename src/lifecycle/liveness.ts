// Liveness: is the event loop wedged? A heartbeat timer notes when it last ran; a beat late by
// more than LIVEZ_MAX_EVENT_LOOP_BLOCK_MS means the loop was blocked that long. Nothing else
// (database down, broker down) is a liveness failure: a restart would not fix those.

/** What /livez reports when the loop is or was blocked past the bound. */
export interface LoopBlocked {
  /** How long the loop was (or has so far been) blocked, ms. */
  readonly blockedMs: number;
  /** True when the heartbeat is overdue right now; false for a block that ended recently. */
  readonly ongoing: boolean;
}

/** Heartbeat period for a bound: a quarter of it, between 10 ms and 1 s. */
export function heartbeatMsFor(maxBlockMs: number): number {
  return Math.min(1_000, Math.max(10, Math.floor(maxBlockMs / 4)));
}

/**
 * Pure heartbeat bookkeeping on an injected clock. A block longer than `maxBlockMs` is reported
 * while it lasts and for `maxBlockMs` after it ended, so a probe answered in a short gap between
 * two long blocks still sees it (a probe sent during a block is only answered after it).
 */
export class LoopBlockTracker {
  #lastBeatMs: number;
  #last: { endedAtMs: number; blockedMs: number } | undefined;

  /**
   * @param heartbeatMs expected time between beats, ms.
   * @param maxBlockMs longest tolerated delay of a beat past its due time, ms.
   * @param clock monotonic milliseconds (performance.now).
   */
  constructor(
    readonly heartbeatMs: number,
    readonly maxBlockMs: number,
    private readonly clock: () => number,
  ) {
    this.#lastBeatMs = clock();
  }

  /** Starts counting from now (when the heartbeat starts), forgetting any earlier gap. */
  restart(): void {
    this.#lastBeatMs = this.clock();
    this.#last = undefined;
  }

  /** The heartbeat ran now. */
  beat(): void {
    const now = this.clock();
    const lateMs = now - this.#lastBeatMs - this.heartbeatMs;
    if (lateMs > this.maxBlockMs) this.#last = { endedAtMs: now, blockedMs: lateMs };
    this.#lastBeatMs = now;
  }

  /** The block to report now, if any. */
  blocked(): LoopBlocked | undefined {
    const now = this.clock();
    const overdueMs = now - this.#lastBeatMs - this.heartbeatMs;
    if (overdueMs > this.maxBlockMs) return { blockedMs: overdueMs, ongoing: true };
    if (this.#last && now - this.#last.endedAtMs <= this.maxBlockMs) return { blockedMs: this.#last.blockedMs, ongoing: false };
    return undefined;
  }
}

/** The tracker driven by a real (unref'd) interval timer. */
export class EventLoopWatchdog {
  readonly tracker: LoopBlockTracker;
  #timer: NodeJS.Timeout | undefined;

  /** @param maxBlockMs LIVEZ_MAX_EVENT_LOOP_BLOCK_MS. */
  constructor(maxBlockMs: number, clock: () => number = () => performance.now()) {
    this.tracker = new LoopBlockTracker(heartbeatMsFor(maxBlockMs), maxBlockMs, clock);
  }

  /** Starts the heartbeat. Idempotent. */
  start(): void {
    if (this.#timer) return;
    this.tracker.restart();
    this.#timer = setInterval(() => this.tracker.beat(), this.tracker.heartbeatMs);
    this.#timer.unref();
  }

  /** Stops the heartbeat. Idempotent. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
