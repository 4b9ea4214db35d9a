// Readiness changes as log lines, when they happen (`ready`, `not_ready` with the reason codes and
// details), checked every 250 ms: the same reasons /readyz answers with, so the log and the probe
// never disagree.
import type { Logger } from '../log/logger.ts';
import { type ReadinessState, reasonsBody } from './readiness.ts';

const CHECK_INTERVAL_MS = 250;

export class ReadinessLog {
  readonly #readiness: ReadinessState;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | undefined;
  #lastCodes: string | undefined;

  constructor(readiness: ReadinessState, log: Logger) {
    this.#readiness = readiness;
    this.#log = log;
  }

  /** Starts watching; before start-up completes, only a change after the first `ready` is logged. Idempotent. */
  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => this.#check(), CHECK_INTERVAL_MS);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #check(): void {
    const reasons = this.#readiness.reasons();
    const codes = reasons.map((r) => r.code).join(',');
    if (codes === this.#lastCodes || (!this.#readiness.started && this.#lastCodes === undefined && codes !== '')) return;
    this.#lastCodes = codes;
    if (codes === '') this.#log.info({ event: 'ready' }, 'ready');
    else this.#log.warn({ event: 'not_ready', ...reasonsBody(reasons) }, `not ready: ${codes}`);
  }
}
