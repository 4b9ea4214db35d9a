// Readiness and start-up as pure state: what the service observed (database checks, commits,
// migrations, the MQTT subscription, the buffer, shutdown) goes in as events from the components;
// stable reason codes come out for /readyz, /startupz and the esp_ingest_ready gauge. No I/O and
// no timers.

import { scrubAddresses } from '../log/scrub.ts';
import type { StorageReport } from '../schema/report.ts';

/** Why /readyz answers 503. Stable: dashboards and alerts match on them. */
export const NOT_READY_CODES = [
  'migrations_pending',
  'database_unreachable',
  'database_writes_failing',
  'restore_in_progress',
  'mqtt_subscription_inactive',
  'mqtt_subscription_deaf',
  'buffer_above_high_water',
  'shutting_down',
] as const;
export type NotReadyCode = (typeof NOT_READY_CODES)[number];

/** One reason: its code and a sentence for a person (error text, counts). */
export interface NotReady {
  readonly code: NotReadyCode;
  readonly detail: string;
}

/** `reasons` as the probes and the `not_ready` log line show them: the codes, and `details` keyed by code. */
export function reasonsBody(reasons: readonly NotReady[]): { reasons: string[]; details?: Record<string, string> } {
  if (reasons.length === 0) return { reasons: [] };
  return { reasons: reasons.map((r) => r.code), details: Object.fromEntries(reasons.map((r) => [r.code, scrubAddresses(r.detail)])) };
}

/** Reachability checks that must fail in a row before `database_unreachable`. */
const DB_CHECK_FAILURES_TO_TRIP = 2;
/** Batch commit attempts that must fail in a row before `database_writes_failing`… */
const WRITE_FAILURES_TO_TRIP = 3;
/** …over at least this long (retries start 100 ms apart). */
export const WRITE_FAILING_MIN_MS = 2_000;
/** The buffer leaves `buffer_above_high_water` only once it is below this share of the mark. */
const BUFFER_LOW_WATER_SHARE = 0.5;

/**
 * A debounced failure signal: trips after `failuresToTrip` failures in a row spanning at least
 * `minFailingMs`; one success clears it.
 */
export class FailureStreak {
  #failures = 0;
  #firstFailureAtMs = 0;
  #lastDetail = '';

  constructor(
    readonly failuresToTrip: number,
    readonly minFailingMs = 0,
  ) {}

  success(): void {
    this.#failures = 0;
  }

  /** @param atMs clock time of the failure (ms). */
  failure(atMs: number, detail: string): void {
    if (this.#failures === 0) this.#firstFailureAtMs = atMs;
    this.#failures++;
    this.#lastDetail = detail;
  }

  /** Failures in a row since the last success. */
  get failures(): number {
    return this.#failures;
  }

  /** The last failure's text. */
  get detail(): string {
    return this.#lastDetail;
  }

  tripped(nowMs: number): boolean {
    return this.#failures >= this.failuresToTrip && nowMs - this.#firstFailureAtMs >= this.minFailingMs;
  }
}

/**
 * Above/below a high-water mark with hysteresis: goes above at `highMark`, comes back below
 * only under `lowMark`, so a value hovering around the mark does not flap.
 */
export class HighWater {
  #above = false;

  constructor(
    readonly highMark: number,
    readonly lowMark: number,
  ) {}

  /** Feeds the current value; returns whether it is above the mark now. */
  update(value: number): boolean {
    if (this.#above) this.#above = value >= this.lowMark;
    else this.#above = value >= this.highMark;
    return this.#above;
  }

  get above(): boolean {
    return this.#above;
  }
}

export interface ReadinessOptions {
  /** BUFFER_MAX_ROWS. */
  readonly bufferMaxRows: number;
  /** READY_BUFFER_HIGH_WATER_RATIO: share of bufferMaxRows (0–1]. */
  readonly bufferHighWaterRatio: number;
  /** Milliseconds, monotonic or wall; only differences are used. */
  readonly clock: () => number;
}

/**
 * Readiness: 503 reasons, and the start-up latch (migrations done and the subscription active
 * once: from then on /startupz is 200 for the life of the process).
 */
export class ReadinessState {
  readonly #options: ReadinessOptions;
  readonly #db = new FailureStreak(DB_CHECK_FAILURES_TO_TRIP);
  readonly #writes = new FailureStreak(WRITE_FAILURES_TO_TRIP, WRITE_FAILING_MIN_MS);
  readonly #buffer: HighWater;
  #rowsBuffered = 0;
  #mqttInactive: string | undefined = 'mqtt: not started';
  #mqttDeaf: string | undefined;
  #storage: StorageReport | undefined;
  #migrated = false;
  #migrationsHeld: string | undefined;
  #restore: string | undefined;
  #shuttingDown = false;
  #started = false;

  constructor(o: ReadinessOptions) {
    this.#options = o;
    const high = Math.max(1, Math.floor(o.bufferMaxRows * o.bufferHighWaterRatio));
    this.#buffer = new HighWater(high, Math.floor(high * BUFFER_LOW_WATER_SHARE));
  }

  /** Rows at which the buffer goes above the mark, and below which it comes back. */
  get bufferMarks(): { readonly highRows: number; readonly lowRows: number } {
    return { highRows: this.#buffer.highMark, lowRows: this.#buffer.lowMark };
  }

  /** A reachability check (or a start-up connection attempt) answered, or failed / timed out. */
  databaseCheck(ok: boolean, detail = 'database check failed'): void {
    if (ok) this.#db.success();
    else this.#db.failure(this.#options.clock(), detail);
  }

  /** A batch commit attempt: a success also proves the database reachable. */
  commit(ok: boolean, detail = 'batch write failed'): void {
    if (ok) {
      this.#writes.success();
      this.#db.success();
    } else {
      this.#writes.failure(this.#options.clock(), detail);
    }
  }

  /** The schema is up to date; `storage` is what the storage lifecycle applied (for /readyz). */
  migrationsApplied(storage?: StorageReport): void {
    this.#migrated = true;
    this.#migrationsHeld = undefined;
    this.#storage = storage;
  }

  /** The storage report of the last migration, if any. */
  get storage(): StorageReport | undefined {
    return this.#storage;
  }

  /**
   * The MQTT subscription became active (`inactive` undefined) or stopped being so (`inactive`
   * says why: not connected, refused, intake stopped).
   */
  mqtt(inactive: string | undefined): void {
    this.#mqttInactive = inactive;
    this.#latchStarted();
  }

  /**
   * The subscription canary (ingress/canary.ts): `deaf` says why the subscription delivers
   * nothing (no probe came back yet, or one did not), undefined once a probe came back.
   */
  canary(deaf: string | undefined): void {
    this.#mqttDeaf = deaf;
    this.#latchStarted();
  }

  /**
   * Migrations are held back on purpose (a TimescaleDB restore under way, or an extension version
   * the server does not load): `detail` says why and names the command that ends it; undefined
   * when the hold is over. Shown as `migrations_pending` until migrations are applied.
   */
  migrationsHeld(detail: string | undefined): void {
    this.#migrationsHeld = detail;
  }

  /**
   * A restore started while the service runs holds its commits: `detail` says why and names the
   * command that ends it; undefined once it has ended.
   */
  restoreInProgress(detail: string | undefined): void {
    this.#restore = detail;
  }

  /** Rows held in memory now (called on every change; cheap). */
  buffered(rows: number): void {
    this.#rowsBuffered = rows;
    this.#buffer.update(rows);
  }

  shuttingDown(): void {
    this.#shuttingDown = true;
  }

  /** True once migrations were applied and the subscription was active (and not deaf) at an evaluation. */
  get started(): boolean {
    this.#latchStarted();
    return this.#started;
  }

  /** Why not ready, in NOT_READY_CODES order; empty when ready. */
  reasons(): NotReady[] {
    const now = this.#options.clock();
    const mqtt = this.#mqttInactive;
    this.#latchStarted();
    const r: NotReady[] = [];
    if (!this.#migrated) r.push({ code: 'migrations_pending', detail: this.#migrationsHeld ?? 'schema migrations not applied yet' });
    if (this.#db.tripped(now)) r.push({ code: 'database_unreachable', detail: `${this.#db.detail} (${this.#db.failures} checks failed in a row)` });
    if (this.#writes.tripped(now))
      r.push({ code: 'database_writes_failing', detail: `${this.#writes.detail} (${this.#writes.failures} attempts failed in a row; retrying)` });
    if (this.#restore !== undefined)
      r.push({ code: 'restore_in_progress', detail: `commits held (nothing acknowledged; the broker keeps the messages): ${this.#restore}` });
    if (mqtt !== undefined) r.push({ code: 'mqtt_subscription_inactive', detail: mqtt });
    if (this.#mqttDeaf !== undefined) r.push({ code: 'mqtt_subscription_deaf', detail: this.#mqttDeaf });
    if (this.#buffer.above) {
      const { highRows, lowRows } = this.bufferMarks;
      r.push({
        code: 'buffer_above_high_water',
        detail: `${this.#rowsBuffered} rows buffered (high water ${highRows}, ready again below ${lowRows}); the database is too slow or down`,
      });
    }
    if (this.#shuttingDown) r.push({ code: 'shutting_down', detail: 'stopping: intake stopped, last flush in progress' });
    return r;
  }

  /** Why start-up is not complete (every current reason); empty once it is, then forever. */
  startupPending(): NotReady[] {
    if (this.started) return [];
    return this.reasons();
  }

  /** 1 when /readyz would answer 200 (esp_ingest_ready). */
  readyValue(): 0 | 1 {
    return this.reasons().length === 0 ? 1 : 0;
  }

  /**
   * 0 while /readyz reports the database unreachable or its writes failing (esp_ingest_database_up):
   * one notion of "database down", so a passing reachability check never hides failing writes.
   */
  databaseUpValue(): 0 | 1 {
    return this.reasons().some((r) => r.code === 'database_unreachable' || r.code === 'database_writes_failing') ? 0 : 1;
  }

  #latchStarted(): void {
    if (!this.#started && this.#migrated && this.#mqttInactive === undefined && this.#mqttDeaf === undefined) this.#started = true;
  }
}
