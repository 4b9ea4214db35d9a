// Committer: turns one batch into committed transactions, whatever it takes. Transient
// failures are retried with capped exponential backoff (abortable by shutdown); a batch too large
// for a server bound (SQLSTATE 53400) is written in parts, each its own transaction; data a server
// refuses (SQLSTATE class 22/23) is isolated message by message and moved to rejected_messages
// with the server's error, so one poison message never blocks the ones behind it. The batch
// counts as committed (and is acknowledged) only when every part is.

import type { BatchItem } from '../batch/batcher.ts';
import type { Channel } from '../decode/catalog.ts';
import type { Reading } from '../decode/decode.ts';
import { type MessageWork, pgText, type RejectRow } from '../decode/work.ts';
import { AbortedError } from '../errors.ts';
import type { Logger } from '../log/logger.ts';
import { ErrorLogThrottle, warnThrottled } from '../log/throttle.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { backoffMs, sleep } from './backoff.ts';
import { mergeByKey } from './merge.ts';
import { classifyDbError, type ErrorClass, errorLabel } from './sqlstate.ts';
import { RetryableWriteError, type TelemetryWriter } from './writer.ts';

export interface CommitterDeps {
  readonly writer: Pick<TelemetryWriter, 'write'>;
  /** To write a refused reading back as JSON in rejected_messages. */
  readonly catalog: readonly Channel[];
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly retryMaxDelayMs: number;
  readonly signal: AbortSignal;
  readonly clock: () => number;
  /** Told after every attempt: database reachable or not, and why. */
  readonly onDbState: (ok: boolean, reason?: string) => void;
}

export class Committer {
  readonly #deps: CommitterDeps;
  /** Retry warnings of one database outage: the first in full, then one a minute, then the recovery. */
  readonly #outage: ErrorLogThrottle;

  constructor(deps: CommitterDeps) {
    this.#deps = deps;
    this.#outage = new ErrorLogThrottle(undefined, deps.clock);
  }

  /**
   * Commits every item's readings and rejections. Resolves once committed.
   * @throws AbortedError when shutdown aborted the retries; nothing of the batch is committed.
   */
  async commit(items: readonly BatchItem<MessageWork>[]): Promise<void> {
    const rejectedByDb = await this.#commitOrIsolate(items.map((i) => i.data));
    if (rejectedByDb > 0) this.#deps.log.warn({ messages: rejectedByDb }, 'messages refused by the database moved to rejected_messages');
  }

  /** @returns how many messages the database refused (now in rejected_messages). */
  async #commitOrIsolate(works: readonly MessageWork[]): Promise<number> {
    const outcome = await this.#writeWithRetry(works);
    if (outcome === 'ok') return 0;
    // The server refused some data: find the message at fault by bisection (halves in arrival
    // order), so one poison message in a batch of n costs about 2·log2(n) transactions, not n.
    if (works.length === 1) {
      await this.#writeWithRetry([asDbRejection(works[0]!, outcome.err, this.#deps.catalog)], true);
      return 1;
    }
    const mid = Math.ceil(works.length / 2);
    return (await this.#commitOrIsolate(works.slice(0, mid))) + (await this.#commitOrIsolate(works.slice(mid)));
  }

  async #writeWithRetry(works: readonly MessageWork[], rejectsOnly = false): Promise<'ok' | { err: unknown }> {
    const tally = { splits: 0, lifted: 0 };
    const outcome = await this.#writeInParts(works, rejectsOnly, tally);
    // One line per batch, however many parts it took.
    if (tally.splits > 0 || tally.lifted > 0) {
      this.#deps.log.info({ messages: works.length, ...tally }, 'batch exceeded the decompression limit (53400): written in parts');
    }
    return outcome;
  }

  /**
   * Writes the messages' readings and rejections in one transaction; when the server's
   * decompression bound refuses it (53400), writes the messages in two parts (splitMessages),
   * each its own transaction, recursively. Parts are whole messages, never a message's readings
   * apart: a message is either committed or not, so one the server later refuses (and the
   * caller moves to rejected_messages) never also has readings in esp_telemetry. A part that
   * committed and is written again (a later part refused its data, and the caller isolates
   * messages) only finds its keys stored: the staged path deduplicates. One message that still
   * exceeds the bound is written with the bound lifted for that one transaction
   * (LIFT_DECOMPRESSION_LIMIT); MESSAGE_MAX_READINGS bounds what it decompresses.
   */
  async #writeInParts(works: readonly MessageWork[], rejectsOnly: boolean, tally: { splits: number; lifted: number }): Promise<'ok' | { err: unknown }> {
    const { metrics } = this.#deps;
    // Loops, not flatMap: a batch is up to BATCH_MAX_ROWS messages of one reading each.
    const readings: Reading[] = [];
    const rejects: RejectRow[] = [];
    for (const w of works) {
      for (const r of w.readings) readings.push(r);
      for (const r of w.rejects) rejects.push(r);
    }
    const merged = mergeByKey(readings);
    let outcome = await this.#attempt(merged.rows, rejects, rejectsOnly, false);
    if (outcome === 'split') {
      if (works.length > 1) {
        metrics.decompressionLimit.inc({ action: 'split' });
        tally.splits++;
        const [first, second] = splitMessages(works);
        const a = await this.#writeInParts(first, rejectsOnly, tally);
        return a === 'ok' ? this.#writeInParts(second, rejectsOnly, tally) : a;
      }
      metrics.decompressionLimit.inc({ action: 'lifted' });
      tally.lifted++;
      outcome = await this.#attempt(merged.rows, rejects, rejectsOnly, true);
    }
    if (outcome === 'ok') {
      metrics.duplicates.inc(merged.duplicates);
      metrics.conflicts.inc(merged.conflicts);
      for (const rj of rejects) metrics.readingsRejected.inc({ reason: rj.reason });
    }
    return outcome;
  }

  /**
   * One transaction, retried until it commits. Returns `'split'` on 53400 (unless the limit is
   * already lifted, where it is retried like any transient error) and `{ err }` when the data is
   * refused (reject_rows).
   */
  async #attempt(rows: readonly Reading[], rejects: readonly RejectRow[], rejectsOnly: boolean, liftDecompressionLimit: true): Promise<'ok' | { err: unknown }>;
  async #attempt(
    rows: readonly Reading[],
    rejects: readonly RejectRow[],
    rejectsOnly: boolean,
    liftDecompressionLimit: false,
  ): Promise<'ok' | 'split' | { err: unknown }>;
  async #attempt(
    rows: readonly Reading[],
    rejects: readonly RejectRow[],
    rejectsOnly: boolean,
    liftDecompressionLimit: boolean,
  ): Promise<'ok' | 'split' | { err: unknown }> {
    const { metrics, log, signal } = this.#deps;
    let attempt = 0;
    for (;;) {
      if (signal.aborted) throw new AbortedError('batch commit');
      const started = performance.now();
      try {
        const r = await this.#deps.writer.write(rows, rejects, signal, liftDecompressionLimit ? { liftDecompressionLimit } : {});
        metrics.flushSeconds.observe((performance.now() - started) / 1000);
        metrics.batchRows.observe(rows.length + rejects.length);
        metrics.readingsCommitted.inc(r.inserted);
        metrics.duplicates.inc(r.duplicates);
        metrics.conflicts.inc(r.conflicts);
        const newest = rows.reduce((m, x) => Math.max(m, x.tsUs), -Infinity);
        if (Number.isFinite(newest)) metrics.commitLagSeconds.observe(Math.max(0, (this.#deps.clock() - newest / 1000) / 1000));
        this.#deps.onDbState(true);
        const recovery = this.#outage.ok();
        if (recovery)
          log.info(
            { errors: recovery.errors, outageS: Math.round(recovery.outageMs / 1000) },
            `batch writes succeed again after ${recovery.errors} failed attempts`,
          );
        return 'ok';
      } catch (err) {
        // Shutdown's deadline gave up the write: not a database failure, and nothing to retry.
        // The batch stays unacknowledged; the broker redelivers it to the next session.
        if (signal.aborted) throw new AbortedError('batch commit');
        const cls: ErrorClass = err instanceof RangeError ? 'reject_rows' : err instanceof RetryableWriteError ? 'retry' : classifyDbError(err);
        if (cls === 'reject_rows' && !rejectsOnly) return { err };
        if (cls === 'split' && !liftDecompressionLimit) return 'split';
        attempt++;
        metrics.flushRetries.inc({ code: errorLabel(err) });
        const delay = cls === 'operator' ? this.#deps.retryMaxDelayMs : backoffMs(attempt, this.#deps.retryMaxDelayMs);
        // 53400 again with the limit lifted: not the bound we lift, so say what is stuck and why.
        const stuck =
          cls === 'split'
            ? `one message (${rows.length} readings) is refused with 53400 even with the decompression limit lifted for its transaction (another server bound, e.g. memory): `
            : '';
        this.#deps.onDbState(false, `${stuck}${(err as Error).message}`);
        warnThrottled(
          log,
          this.#outage,
          err,
          { attempt, delayMs: delay, class: cls, rows: rows.length },
          stuck ? `${stuck.slice(0, -2)}; retrying` : 'batch write failed; retrying',
          (n) => `batch write still failing (${n} failed attempts since the last line); retrying`,
        );
        await sleep(delay, signal);
      }
    }
  }
}

/**
 * Halves a batch's messages for separate transactions: sorted by (well id, first device time)
 * and cut in the middle, so each half covers fewer wells and a shorter time span (fewer
 * compressed batches to decompress). Messages stay whole.
 * @param works at least 2 messages.
 * @returns two non-empty parts holding every message once.
 */
export function splitMessages(works: readonly MessageWork[]): [MessageWork[], MessageWork[]] {
  const firstTs = (w: MessageWork) => w.readings.reduce((m, r) => Math.min(m, r.tsUs), Infinity);
  const well = (w: MessageWork) => w.wellId ?? '';
  const key = (w: MessageWork): [string, number] => [well(w), firstTs(w)];
  const sorted = [...works].sort((a, b) => {
    const [wa, ta] = key(a);
    const [wb, tb] = key(b);
    return wa < wb ? -1 : wa > wb ? 1 : ta < tb ? -1 : ta > tb ? 1 : 0;
  });
  const mid = Math.ceil(sorted.length / 2);
  return [sorted.slice(0, mid), sorted.slice(mid)];
}

function asDbRejection(w: MessageWork, err: unknown, catalog: readonly Channel[]): MessageWork {
  const e = err as { code?: string; message?: string };
  const detail = pgText(`database refused the message: ${e.code ?? 'encoding'} ${e.message ?? String(err)}`);
  const receivedAtMs = w.rejects[0]?.receivedAtMs ?? Date.now();
  const topic = pgText(w.topic);
  const wellId = w.wellId === null ? null : pgText(w.wellId);
  const row = (payload: Uint8Array): RejectRow => ({ receivedAtMs, topic, wellId, reason: 'db_rejected', detail, index: null, payload });
  // One row per refused reading, holding the reading as decoded (what the server refused), in
  // payload form: a message held until commit no longer has its raw bytes (see MessageWork). A
  // message with no reading, whose rejections the server refused, keeps the first one's bytes.
  const first = w.rejects[0];
  const asDecoded = (r: Reading) => row(Buffer.from(JSON.stringify(readingJson(r, catalog))));
  const rows = w.readings.length > 0 ? w.readings.map(asDecoded) : first ? [row(first.payload)] : [];
  // Readings the decoder had already rejected keep their own rows and reasons.
  return { ...w, readings: [], rejects: [...w.rejects.map((r) => ({ ...r, topic, wellId, detail: pgText(r.detail) })), ...rows] };
}

/** A decoded reading back in payload form: `ts` (ISO-8601 Z, to the microsecond), `seq`, channels, extra fields. */
function readingJson(r: Reading, catalog: readonly Channel[]): Record<string, unknown> {
  const out: Record<string, unknown> = { ts: isoUs(r.tsUs) };
  if (r.seq !== null) out.seq = r.seq;
  for (const [k, ci] of r.layout.indexes.entries()) {
    const channel = catalog[ci];
    if (channel) out[channel.column] = r.values[k];
  }
  return { ...out, ...r.extra };
}

/** µs since the epoch as ISO-8601 in UTC: milliseconds as Date prints them, then any further microseconds. */
function isoUs(tsUs: number): string {
  const ms = Math.floor(tsUs / 1000);
  const iso = new Date(ms).toISOString();
  const us = tsUs - ms * 1000;
  return us === 0 ? iso : `${iso.slice(0, -1)}${String(us).padStart(3, '0')}Z`;
}
