// Polling until a condition holds: how tests and dev tools synchronise with servers and child
// processes (never a fixed sleep).

/**
 * Polls `fn` every `everyMs` until it returns a truthy value, which it resolves with. A throw
 * counts as not yet; after `timeoutMs` it throws an Error naming `what` and the last throw.
 */
export async function waitFor<T>(what: string, fn: () => T | Promise<T>, timeoutMs = 30_000, everyMs = 50): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
