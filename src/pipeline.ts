// The message path, in one place: a PUBLISH from the ingress is admitted (held undecoded while
// the buffer is full), decoded into readings and rejections, batched, committed by the sink, and
// only then acknowledged (its PUBACK released by the ingress's `ack`). The per-message counters
// live here too. It opens no connection: app.ts gives it the sink and hands `receive` to the
// ingress.
//
//   ingress ──receive──▶ Admission ──decode──▶ Batcher ──commit──▶ sink ──▶ sequence ──▶ ack (PUBACK)
//
// Old readings (BACKFILL_AFTER) take the batcher's backfill lane (batch/lanes.ts), so live wells
// commit first; each well's seq is tracked after commit, in arrival order (sequence/store.ts).
import { Admission } from './batch/admission.ts';
import { Batcher, type BatchItem } from './batch/batcher.ts';
import { backfillLanes } from './batch/lanes.ts';
import type { Config } from './config/config.ts';
import type { DecodeOptions } from './decode/decode.ts';
import { toWork, undecodable } from './decode/to-work.ts';
import type { TopicTemplate } from './decode/topic.ts';
import type { MessageWork } from './decode/work.ts';
import type { InboundMessage } from './ingress/mqtt-ingress.ts';
import type { Logger } from './log/logger.ts';
import type { Metrics } from './metrics/metrics.ts';

/** Where committed work goes: resolves once every item is committed (see sink/committer.ts). */
export interface Sink {
  commit(items: readonly BatchItem<MessageWork>[]): Promise<void>;
}

/** Tracks each well's seq over committed work, in arrival order (see sequence/store.ts). */
export interface SequenceTracking {
  record(works: readonly MessageWork[]): Promise<unknown>;
}

export interface PipelineDeps {
  /** BATCH_*, BUFFER_MAX_ROWS and BUFFER_MAX_BYTES. */
  readonly batch: Config['batch'];
  /** Messages held undecoded before intake pauses (MQTT_RECEIVE_MAXIMUM; see batch/admission.ts). */
  readonly maxWaiting: number;
  readonly topic: TopicTemplate;
  readonly decode: DecodeOptions;
  readonly sink: Sink;
  /** Runs after each batch commits, before its PUBACKs; rejects only at shutdown. */
  readonly sequence?: SequenceTracking;
  /** ms since the Unix epoch (which messages are backfill); default Date.now. */
  readonly clock?: () => number;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** Told the rows held in memory after every change (readiness's buffer high-water mark). */
  readonly onBuffered: (rows: number) => void;
}

export class Pipeline {
  readonly #deps: PipelineDeps;
  readonly #admission: Admission<InboundMessage>;
  readonly #batcher: Batcher<MessageWork>;

  constructor(deps: PipelineDeps) {
    this.#deps = deps;
    const { batch, metrics } = deps;
    this.#batcher = new Batcher<MessageWork>({
      maxRows: batch.maxRows,
      flushIntervalMs: batch.flushIntervalMs,
      bufferMaxRows: batch.bufferMaxRows,
      bufferMaxBytes: batch.bufferMaxBytes,
      maxConcurrentFlushes: batch.flushConcurrency,
      flush: (items) => this.#commit(items),
      afterCommit: async (items) => void (await deps.sequence?.record(items.map((i) => i.data))),
      lanes: backfillLanes(batch.backfillAfterS, batch.bufferMaxRows, deps.clock ?? Date.now, (rows) => metrics.backfillReadingsCommitted.inc(rows)),
      onBuffered: (rows) => {
        metrics.rowsBuffered.set(rows);
        metrics.backfillRowsBuffered.set(this.#batcher.backfillRows);
        metrics.oldestUnacknowledged(this.#batcher.oldestReceivedAtMs);
        deps.onBuffered(rows);
      },
    });
    this.#admission = new Admission<InboundMessage>(
      (msg) => this.#decode(msg),
      deps.maxWaiting,
      (waiting) => metrics.messagesWaiting.set(waiting),
    );
  }

  /**
   * The ingress's message sink: takes one PUBLISH. Returns a promise only when intake must pause
   * (the buffer and the waiting line are both full).
   */
  readonly receive = (msg: InboundMessage): Promise<void> | undefined => this.#admission.offer(msg);

  /** Readings held in memory (pending and being committed). */
  get bufferedRows(): number {
    return this.#batcher.bufferedRows;
  }

  /** Backfill-lane readings held in memory. */
  get backfillRows(): number {
    return this.#batcher.backfillRows;
  }

  /**
   * Commits and acknowledges everything received so far (call after the ingress stopped intake).
   * @throws AbortedError when shutdown's deadline aborted the sink first (not acknowledged).
   */
  drain(): Promise<void> {
    return this.#batcher.drain();
  }

  /** Decodes one message and buffers it; a promise while the buffer is full. */
  #decode(msg: InboundMessage): Promise<void> | undefined {
    const { metrics } = this.#deps;
    let work: MessageWork;
    try {
      const decoded = toWork(msg, this.#deps.topic, this.#deps.decode);
      work = decoded.work;
      if (decoded.droppedFields > 0) metrics.unknownFieldsDropped.inc(decoded.droppedFields);
      if (decoded.coercedValues > 0) metrics.valuesCoerced.inc(decoded.coercedValues);
    } catch (err) {
      // Decoding is pure and should not throw; if it does, the message is recorded as rejected.
      this.#deps.log.error({ err, topic: msg.topic, bytes: msg.payload.byteLength }, 'payload could not be decoded; rejected');
      work = undecodable(msg, err);
    }
    // A message weighs its payload's bytes against BUFFER_MAX_BYTES (its decoded readings take a
    // small multiple of that on the heap).
    return this.#batcher.add({
      rows: work.readings.length + work.rejects.length,
      bytes: msg.payload.byteLength,
      receivedAtMs: msg.receivedAtMs,
      data: work,
      ack: msg.ack,
    });
  }

  /** Commits a batch, then records each well's freshness (the batcher acknowledges after this). */
  async #commit(items: readonly BatchItem<MessageWork>[]): Promise<void> {
    await this.#deps.sink.commit(items);
    // Every reading of a message is of its topic's well.
    for (const { data, receivedAtMs } of items) {
      const first = data.readings[0];
      // A retained replay is an old reading again: it never moves freshness.
      if (first && !data.retain) this.#deps.metrics.wellCommitted(first.wellId, receivedAtMs, data.readings.length);
    }
  }
}
