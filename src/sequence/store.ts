// Sequence tracking, the database part: after a batch commits and before its PUBACKs, each well's
// sequence state is read (locked), advanced by the pure tracker over the batch's readings, and
// written back with the gaps found, in one transaction. Counted once: a redelivered or replayed
// reading is not newer than the stored state and is passed over, so neither a restart nor a
// second instance counts a gap twice.
import type { Pool } from 'pg';
import type { MessageWork } from '../decode/work.ts';
import { AbortedError } from '../errors.ts';
import type { Logger } from '../log/logger.ts';
import { ErrorLogThrottle, warnThrottled } from '../log/throttle.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { backoffMs, sleep } from '../sink/backoff.ts';
import { copyTimestampUs } from '../sink/copy-encode.ts';
import { type SeqGap, type SeqState, type SeqWidth, trackSequence } from './tracker.ts';

export interface SequenceStoreDeps {
  readonly pool: Pick<Pool, 'connect'>;
  /** SEQ_WRAP_BITS. */
  readonly width: SeqWidth;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly retryMaxDelayMs: number;
  /** Shutdown: gives up the retries (the batch stays unacknowledged; its redelivery is tracked). */
  readonly signal: AbortSignal;
  readonly clock: () => number;
}

/** What one call found, over all wells of the batch. */
export interface SequenceResult {
  readonly gaps: number;
  readonly missing: number;
  readonly wraps: number;
  readonly reboots: number;
}

const SELECT_STATE = `SELECT well_id, last_seq::text AS last_seq, (extract(epoch FROM last_ts) * 1000000)::bigint::text AS last_ts_us, max_seq::text AS max_seq
  FROM well_sequence WHERE well_id = ANY($1::text[]) ORDER BY well_id FOR UPDATE`;
const INSERT_GAPS = `INSERT INTO sequence_gaps (well_id, after_seq, before_seq, after_ts, before_ts, missing)
  SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::timestamptz[], $5::timestamptz[], $6::bigint[])`;
const UPSERT_STATE = `INSERT INTO well_sequence AS s (well_id, last_seq, last_ts, max_seq)
  SELECT * FROM unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::bigint[])
  ON CONFLICT (well_id) DO UPDATE SET last_seq = excluded.last_seq, last_ts = excluded.last_ts, max_seq = excluded.max_seq, updated_at = now()
  WHERE excluded.last_ts > s.last_ts`;

export class SequenceStore {
  readonly #d: SequenceStoreDeps;
  readonly #outage: ErrorLogThrottle;

  constructor(deps: SequenceStoreDeps) {
    this.#d = deps;
    this.#outage = new ErrorLogThrottle(undefined, deps.clock);
  }

  /**
   * Tracks the committed messages' readings that carry a `seq` (retained replays excluded: they
   * are old readings again). Retries until it succeeds; call it in arrival order, one batch at a
   * time (the batcher's `afterCommit`).
   * @throws AbortedError when shutdown aborted the retries.
   */
  async record(works: readonly MessageWork[]): Promise<SequenceResult> {
    const byWell = new Map<string, { seq: number | null; tsUs: number }[]>();
    for (const w of works) {
      if (w.retain) continue;
      for (const r of w.readings) {
        if (r.seq === null) continue;
        const list = byWell.get(r.wellId);
        if (list) list.push(r);
        else byWell.set(r.wellId, [r]);
      }
    }
    const none = { gaps: 0, missing: 0, wraps: 0, reboots: 0 };
    if (byWell.size === 0) return none;
    for (let attempt = 1; ; attempt++) {
      if (this.#d.signal.aborted) throw new AbortedError('sequence tracking');
      try {
        const result = await this.#transaction(byWell);
        const recovery = this.#outage.ok();
        if (recovery) this.#d.log.info({ errors: recovery.errors }, 'sequence tracking succeeds again');
        return result;
      } catch (err) {
        if (this.#d.signal.aborted) throw new AbortedError('sequence tracking');
        const delay = backoffMs(attempt, this.#d.retryMaxDelayMs);
        warnThrottled(
          this.#d.log,
          this.#outage,
          err,
          { attempt, delayMs: delay },
          'sequence tracking failed; retrying',
          (n) => `sequence tracking still failing (${n} attempts); retrying`,
        );
        await sleep(delay, this.#d.signal);
      }
    }
  }

  async #transaction(byWell: Map<string, { seq: number | null; tsUs: number }[]>): Promise<SequenceResult> {
    const { metrics, width } = this.#d;
    const wells = [...byWell.keys()].sort();
    const client = await this.#d.pool.connect();
    let failed: Error | undefined;
    try {
      await client.query('BEGIN');
      const { rows } = await client.query<{ well_id: string; last_seq: string; last_ts_us: string; max_seq: string }>(SELECT_STATE, [wells]);
      const stored = new Map<string, SeqState>(
        rows.map((r) => [r.well_id, { lastSeq: Number(r.last_seq), lastTsUs: Number(r.last_ts_us), maxSeq: Number(r.max_seq) }]),
      );
      const gaps: (SeqGap & { wellId: string })[] = [];
      const states: [string, SeqState][] = [];
      let wraps = 0;
      let reboots = 0;
      for (const well of wells) {
        const before = stored.get(well);
        const o = trackSequence(before, byWell.get(well)!, width);
        for (const g of o.gaps) gaps.push({ ...g, wellId: well });
        wraps += o.wraps;
        reboots += o.reboots;
        if (o.state && o.state !== before) states.push([well, o.state]);
      }
      if (gaps.length > 0) {
        await client.query(INSERT_GAPS, [
          gaps.map((g) => g.wellId),
          gaps.map((g) => g.afterSeq),
          gaps.map((g) => g.beforeSeq),
          gaps.map((g) => copyTimestampUs(g.afterTsUs)),
          gaps.map((g) => copyTimestampUs(g.beforeTsUs)),
          gaps.map((g) => g.missing),
        ]);
      }
      if (states.length > 0) {
        await client.query(UPSERT_STATE, [
          states.map(([w]) => w),
          states.map(([, s]) => s.lastSeq),
          states.map(([, s]) => copyTimestampUs(s.lastTsUs)),
          states.map(([, s]) => s.maxSeq),
        ]);
      }
      await client.query('COMMIT');
      let missing = 0;
      for (const g of gaps) {
        metrics.sequenceMissing(g.wellId, g.missing);
        missing += g.missing;
      }
      metrics.sequenceGaps.inc(gaps.length);
      metrics.sequenceResets.inc({ kind: 'wrap' }, wraps);
      metrics.sequenceResets.inc({ kind: 'reboot' }, reboots);
      if (gaps.length > 0) {
        this.#d.log.warn(
          { event: 'sequence_gaps', wells: [...new Set(gaps.map((g) => g.wellId))].slice(0, 20), gaps: gaps.length, missing },
          `${missing} readings missing (gaps in seq); see sequence_gaps`,
        );
      }
      return { gaps: gaps.length, missing, wraps, reboots };
    } catch (err) {
      // No ROLLBACK: on a dead or half-open connection it would wait too. Releasing with the
      // error destroys the connection, and the server rolls the transaction back.
      failed = err as Error;
      throw err;
    } finally {
      client.release(failed);
    }
  }
}
