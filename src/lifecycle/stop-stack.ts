// Start-up's undo list: each component that started pushes how to stop it; a failure later in
// the start unwinds the list, newest first, so a failed start leaves nothing open (a listening
// sidecar, a pool, a probe timer, an embedded broker).

export class StopStack {
  readonly #stops: (() => unknown)[] = [];

  /** Records how to stop what just started. */
  push(stop: () => unknown): void {
    this.#stops.push(stop);
  }

  /** Stops everything pushed, newest first; a stop that fails does not keep the others from running. */
  async unwind(): Promise<void> {
    for (const stop of this.#stops.splice(0).reverse()) {
      try {
        await stop();
      } catch {
        // Best effort: the start already failed with the error that matters.
      }
    }
  }
}
