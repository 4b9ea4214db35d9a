// Retry timing for the database: capped exponential backoff with full jitter, and a sleep that
// shutdown (an AbortSignal) ends at once, so a stop never waits out a backoff.

/** 100 ms · 2^(attempt-1), at most `capMs`, jittered to 50–100 % of that; at least 10 ms. */
export function backoffMs(attempt: number, capMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(capMs, 100 * 2 ** Math.min(attempt - 1, 20));
  return Math.max(10, Math.round(ceiling * (0.5 + random() / 2)));
}

/** Resolves after `ms`, or as soon as `signal` aborts (at once if it already has); never rejects. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
