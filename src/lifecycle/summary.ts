// The periodic summary log line (`event: "summary"`, every LOG_SUMMARY_INTERVAL_S): what the
// interval did (counter deltas) and where the service stands (gauges). The hot path only counts;
// this is the one place that turns the counts into a line a person reads.
import type { Logger } from '../log/logger.ts';
import type { Metrics } from '../metrics/metrics.ts';

/** Running totals read from the metrics at each summary. */
export interface SummaryTotals {
  readonly messagesReceived: number;
  readonly readingsCommitted: number;
  readonly readingsRejected: number;
  readonly duplicates: number;
  readonly flushRetries: number;
  /** Readings committed through the backfill lane (esp_ingest_backfill_readings_committed_total). */
  readonly backfillReadings: number;
  /** esp_ingest_device_to_commit_lag_seconds: sum (s) and count (batches). */
  readonly lagSecondsSum: number;
  readonly lagBatches: number;
}

/** Gauges read at each summary. */
export interface SummaryGauges {
  readonly rowsBuffered: number;
  /** Backfill-lane readings held in memory. */
  readonly backfillRowsBuffered: number;
  readonly unacknowledged: number;
  /** Age of the oldest message received and not yet committed, s. */
  readonly oldestUnacknowledgedAgeS: number;
  /** Codes of /readyz's reasons; empty when ready. */
  readonly notReady: readonly string[];
}

/** The line's fields (besides `event` and `msg`); the keys are stable. */
export interface SummaryFields extends Omit<SummaryTotals, 'lagSecondsSum' | 'lagBatches'>, SummaryGauges {
  readonly intervalS: number;
  readonly readingsPerS: number;
  /** Backfill readings committed per second over the interval (its progress is backfillReadings). */
  readonly backfillReadingsPerS: number;
  /** Mean over the interval's batches of device time (newest reading) to commit, s; null without batches. */
  readonly deviceToCommitLagS: number | null;
  readonly ready: boolean;
}

/**
 * The summary of one interval: counter deltas since `prev` (a counter that went backwards, i.e.
 * was reset, counts from zero), rates per second, gauges as read.
 * @param intervalS seconds since `prev` was read.
 */
export function summarize(prev: SummaryTotals, cur: SummaryTotals, gauges: SummaryGauges, intervalS: number): SummaryFields {
  const d = (k: keyof SummaryTotals) => (cur[k] >= prev[k] ? cur[k] - prev[k] : cur[k]);
  const committed = d('readingsCommitted');
  const batches = d('lagBatches');
  const backfill = d('backfillReadings');
  return {
    intervalS: round(intervalS, 1),
    messagesReceived: d('messagesReceived'),
    readingsCommitted: committed,
    readingsRejected: d('readingsRejected'),
    duplicates: d('duplicates'),
    flushRetries: d('flushRetries'),
    readingsPerS: intervalS > 0 ? round(committed / intervalS, 1) : 0,
    backfillReadings: backfill,
    backfillReadingsPerS: intervalS > 0 ? round(backfill / intervalS, 1) : 0,
    deviceToCommitLagS: batches > 0 ? round(d('lagSecondsSum') / batches, 3) : null,
    rowsBuffered: gauges.rowsBuffered,
    backfillRowsBuffered: gauges.backfillRowsBuffered,
    unacknowledged: gauges.unacknowledged,
    oldestUnacknowledgedAgeS: round(gauges.oldestUnacknowledgedAgeS, 3),
    ready: gauges.notReady.length === 0,
    notReady: gauges.notReady,
  };
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

export interface SummaryLogDeps {
  readonly log: Logger;
  /** LOG_SUMMARY_INTERVAL_S; 0 = no summary. */
  readonly intervalS: number;
  readonly totals: () => Promise<SummaryTotals>;
  readonly gauges: () => SummaryGauges;
  /** Monotonic milliseconds. */
  readonly clock?: () => number;
}

/** Logs one summary line per interval (info). `stop()` logs nothing more; idempotent. */
export class SummaryLog {
  readonly #deps: SummaryLogDeps;
  #timer: NodeJS.Timeout | undefined;
  #prev: { totals: SummaryTotals; atMs: number } | undefined;

  constructor(deps: SummaryLogDeps) {
    this.#deps = deps;
  }

  async start(): Promise<void> {
    if (this.#deps.intervalS <= 0 || this.#timer) return;
    const clock = this.#deps.clock ?? (() => performance.now());
    this.#prev = { totals: await this.#deps.totals(), atMs: clock() };
    this.#timer = setInterval(() => {
      void this.#deps.totals().then(
        (totals) => {
          const prev = this.#prev;
          const atMs = clock();
          this.#prev = { totals, atMs };
          if (!prev || !this.#timer) return;
          this.#deps.log.info({ event: 'summary', ...summarize(prev.totals, totals, this.#deps.gauges(), (atMs - prev.atMs) / 1000) }, 'summary');
        },
        (err: unknown) => this.#deps.log.warn({ err }, 'summary: metrics could not be read'),
      );
    }, this.#deps.intervalS * 1000);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

/** The running totals, read from the service's metrics. */
export async function metricTotals(metrics: Metrics): Promise<SummaryTotals> {
  const sum = async (m: { get(): Promise<{ values: { value: number; metricName?: string }[] }> }, name?: string) =>
    (await m.get()).values.filter((v) => name === undefined || v.metricName === name).reduce((n, v) => n + v.value, 0);
  return {
    messagesReceived: await sum(metrics.messagesReceived),
    readingsCommitted: await sum(metrics.readingsCommitted),
    readingsRejected: await sum(metrics.readingsRejected),
    duplicates: await sum(metrics.duplicates),
    flushRetries: await sum(metrics.flushRetries),
    backfillReadings: await sum(metrics.backfillReadingsCommitted),
    lagSecondsSum: await sum(metrics.commitLagSeconds, 'esp_ingest_device_to_commit_lag_seconds_sum'),
    lagBatches: await sum(metrics.commitLagSeconds, 'esp_ingest_device_to_commit_lag_seconds_count'),
  };
}
