// Log throttle for an error that repeats while something stays down (broker, database): the
// first error of an outage is logged in full, repeats at most once per interval with a count,
// and the recovery once. Pure: the caller logs, this only decides (clock injected).

/** Default spacing of repeat lines, ms. */
export const REPEAT_LOG_INTERVAL_MS = 60_000;

/** What to log for one error. */
export type ErrorVerdict =
  /** First error of an outage: log it with its stack. */
  | { readonly log: 'first' }
  /** A repeat due for a line: log it without the stack, with the errors since the last line (this one included). */
  | { readonly log: 'repeat'; readonly errorsSinceLastLine: number; readonly outageMs: number }
  /** Counted, not logged. */
  | { readonly log: 'none' };

/** An outage that just ended. */
export interface Recovery {
  /** Errors from the first to the last of the outage. */
  readonly errors: number;
  /** Time from the first error to the recovery, ms. */
  readonly outageMs: number;
}

export class ErrorLogThrottle {
  readonly #intervalMs: number;
  readonly #clock: () => number;
  #outageStartMs: number | undefined;
  #lastLineMs = 0;
  #errors = 0;
  #sinceLine = 0;

  /**
   * @param intervalMs least time between two lines of one outage, ms.
   * @param clock ms, e.g. Date.now.
   */
  constructor(intervalMs: number = REPEAT_LOG_INTERVAL_MS, clock: () => number = Date.now) {
    this.#intervalMs = intervalMs;
    this.#clock = clock;
  }

  /** True between the first error of an outage and its recovery. */
  get down(): boolean {
    return this.#outageStartMs !== undefined;
  }

  /** Records an error; says whether and how to log it. */
  error(): ErrorVerdict {
    const now = this.#clock();
    this.#errors++;
    this.#sinceLine++;
    if (this.#outageStartMs === undefined) {
      this.#outageStartMs = now;
      this.#lastLineMs = now;
      this.#sinceLine = 0;
      return { log: 'first' };
    }
    if (now - this.#lastLineMs < this.#intervalMs) return { log: 'none' };
    const errorsSinceLastLine = this.#sinceLine;
    this.#lastLineMs = now;
    this.#sinceLine = 0;
    return { log: 'repeat', errorsSinceLastLine, outageMs: now - this.#outageStartMs };
  }

  /** Records a success; returns the outage it ends (once), or undefined when there was none. */
  ok(): Recovery | undefined {
    if (this.#outageStartMs === undefined) return undefined;
    const recovery = { errors: this.#errors, outageMs: this.#clock() - this.#outageStartMs };
    this.#outageStartMs = undefined;
    this.#errors = 0;
    this.#sinceLine = 0;
    return recovery;
  }
}

/**
 * Logs one error of an outage as `throttle` decides: the first at warn with the error under
 * `err` (stack included), a due repeat at warn with its message, code and counts instead, the
 * rest not at all.
 * @param fields context for both lines (attempt, delay, rows…).
 * @param repeat message of a repeat line, given the errors since the last line.
 */
export function warnThrottled(
  log: { warn(obj: object, msg: string): void },
  throttle: ErrorLogThrottle,
  err: unknown,
  fields: Record<string, unknown>,
  first: string,
  repeat: (errorsSinceLastLine: number) => string,
): void {
  const verdict = throttle.error();
  if (verdict.log === 'first') log.warn({ ...fields, err }, first);
  else if (verdict.log === 'repeat') {
    const e = err as { message?: unknown; code?: unknown };
    log.warn(
      {
        ...fields,
        error: String(e?.message ?? err),
        code: e?.code,
        errorsSinceLastLine: verdict.errorsSinceLastLine,
        outageS: Math.round(verdict.outageMs / 1000),
      },
      repeat(verdict.errorsSinceLastLine),
    );
  }
}
