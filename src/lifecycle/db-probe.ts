// Database reachability for /readyz: `SELECT 1` once a second on a connection of its own (never
// a pooled one, so a hung check cannot take a connection from the batches), each check bounded
// by a deadline; a check past it counts as failed and its connection is dropped.
import type pg from 'pg';
import { destroyConnection } from '../sink/connections.ts';

/** Time between checks, ms. */
const DB_CHECK_INTERVAL_MS = 1_000;
/** A check (connect if needed, then SELECT 1) not answered within this counts as failed, ms. */
const DB_CHECK_TIMEOUT_MS = 1_000;

export interface DbProbeDeps {
  /** A new, unconnected client (the probe connects it, and drops it after a failure). */
  readonly newClient: () => pg.Client;
  /** Told after each check: answered in time, or the error / timeout text. */
  readonly onResult: (ok: boolean, detail?: string) => void;
  readonly intervalMs?: number;
  readonly timeoutMs?: number;
}

export class DbProbe {
  readonly #deps: DbProbeDeps;
  #client: pg.Client | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running = false;

  constructor(deps: DbProbeDeps) {
    this.#deps = deps;
  }

  /** Checks every interval (none overlap: a tick while one runs is skipped). Idempotent. */
  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.#tick(), this.#deps.intervalMs ?? DB_CHECK_INTERVAL_MS);
    this.#timer.unref();
  }

  async #tick(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    const timeoutMs = this.#deps.timeoutMs ?? DB_CHECK_TIMEOUT_MS;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`database check not answered within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      const check = this.#check();
      check.catch(() => undefined);
      await Promise.race([check, deadline]);
      if (this.#timer) this.#deps.onResult(true);
    } catch (err) {
      this.#drop();
      if (this.#timer) this.#deps.onResult(false, (err as Error).message);
    } finally {
      clearTimeout(timer);
      this.#running = false;
    }
  }

  async #check(): Promise<void> {
    let client = this.#client;
    if (!client) {
      client = this.#deps.newClient();
      // A dropped or dying connection may still emit errors: never crash on them.
      client.on('error', () => undefined);
      this.#client = client;
      await client.connect();
    }
    await client.query('SELECT 1');
  }

  /** Destroys the probe's connection (no goodbye: the server may be hung). */
  #drop(): void {
    const client = this.#client;
    this.#client = undefined;
    destroyConnection(client);
  }

  /**
   * Stops checking and closes the connection (a polite Terminate when idle, so the server logs no
   * broken connection; dropped after the check timeout otherwise). Results of a check in flight
   * are ignored. Idempotent.
   */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    const client = this.#client;
    if (client && !this.#running) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([client.end().catch(() => undefined), new Promise((r) => (timer = setTimeout(r, this.#deps.timeoutMs ?? DB_CHECK_TIMEOUT_MS)))]);
      clearTimeout(timer);
    }
    if (this.#client === client) this.#drop();
  }
}
