// A teardown registry for tests: what a test starts or creates, it registers here to be undone.

/** Runs registered clean-ups in reverse order; one that throws does not stop the others. */
export class Teardown {
  #fns: (() => unknown)[] = [];
  add(fn: () => unknown): void {
    this.#fns.push(fn);
  }
  async run(): Promise<void> {
    const fns = this.#fns.reverse();
    this.#fns = [];
    for (const fn of fns) {
      try {
        await fn();
      } catch {
        // keep tearing down
      }
    }
  }
}
