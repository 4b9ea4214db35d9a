// Progress of a long command (replay, bench) on stderr: done/total, rate, ETA on one line
// rewritten with `\r`, only when stderr is a terminal; silent when piped or logged to a file.
// The formatting is pure (formatProgress, formatDuration); Progress does the writing.

export interface ProgressState {
  /** What is being counted, e.g. `replay`. */
  readonly label: string;
  /** Unit of `done` and `total`, plural, e.g. `readings`. */
  readonly unit: string;
  readonly done: number;
  /** Undefined when not known: then no percentage and no ETA. */
  readonly total?: number | undefined;
  /** Since the start, ms. */
  readonly elapsedMs: number;
}

const count = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

/** `0.4 s`, `42 s`, `3 min 05 s`, `2 h 07 min`; `?` for a non-finite or negative duration. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  if (seconds < 10) return `${seconds.toFixed(1)} s`;
  if (seconds < 60) return `${Math.round(seconds)} s`;
  const s = Math.round(seconds);
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  const m = Math.round(s / 60);
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

/**
 * One line, e.g. `replay: 12,345/29,718 readings (41.5%), 7,265 readings/s, ETA 2.3 s`. The rate
 * is the average since the start; ETA is the rest at that rate (`?` before anything is done).
 */
export function formatProgress(p: ProgressState): string {
  const seconds = p.elapsedMs / 1000;
  const rate = seconds > 0 ? p.done / seconds : 0;
  const parts = [`${p.label}: ${count.format(p.done)}${p.total !== undefined ? `/${count.format(p.total)}` : ''} ${p.unit}`];
  if (p.total !== undefined && p.total > 0) parts[0] += ` (${((100 * Math.min(p.done, p.total)) / p.total).toFixed(1)}%)`;
  parts.push(`${count.format(rate)} ${p.unit}/s`);
  if (p.total !== undefined) {
    const left = Math.max(0, p.total - p.done);
    parts.push(left === 0 ? `done in ${formatDuration(seconds)}` : `ETA ${rate > 0 ? formatDuration(left / rate) : '?'}`);
  }
  return parts.join(', ');
}

/** The part of a stream Progress needs (process.stderr has it). */
export interface ProgressStream {
  readonly isTTY?: boolean;
  write(s: string): unknown;
}

export interface ProgressOptions {
  readonly label: string;
  readonly unit: string;
  readonly total?: number;
  /** Default process.stderr; nothing is written unless it is a TTY. */
  readonly stream?: ProgressStream;
  /** Fewest ms between two redraws. Default 200. */
  readonly everyMs?: number;
  /** Milliseconds. Default performance.now. */
  readonly clock?: () => number;
}

/** A progress line on a terminal; silent elsewhere. update() is cheap when called often. */
export class Progress {
  readonly #options: ProgressOptions;
  readonly #stream: ProgressStream;
  readonly #clock: () => number;
  readonly #startedMs: number;
  readonly enabled: boolean;
  #drawnMs = -Infinity;
  #done = 0;
  #open = false;

  constructor(o: ProgressOptions) {
    this.#options = o;
    this.#stream = o.stream ?? process.stderr;
    this.#clock = o.clock ?? (() => performance.now());
    this.#startedMs = this.#clock();
    this.enabled = this.#stream.isTTY === true;
  }

  /** Sets the count done so far; redraws at most every `everyMs`. */
  update(done: number): void {
    this.#done = done;
    if (!this.enabled) return;
    const now = this.#clock();
    if (now - this.#drawnMs < (this.#options.everyMs ?? 200)) return;
    this.#drawnMs = now;
    this.#draw(now);
  }

  /**
   * Ends the line: `keep` leaves the final state on screen (newline), otherwise the line is
   * erased so the caller's own result line takes its place.
   */
  end(keep = false): void {
    if (!this.enabled) return;
    if (keep) {
      this.#draw(this.#clock());
      this.#stream.write('\n');
    } else if (this.#open) {
      this.#stream.write('\r\x1b[K');
    }
    this.#open = false;
  }

  #draw(now: number): void {
    this.#stream.write(
      `\r${formatProgress({ label: this.#options.label, unit: this.#options.unit, done: this.#done, total: this.#options.total, elapsedMs: now - this.#startedMs })}\x1b[K`,
    );
    this.#open = true;
  }
}
