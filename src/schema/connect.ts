// Start-up's database step: connect, wait while a restore is under way, then bring the schema up
// to date, retrying with backoff while the server is unreachable (or a migration fails for a
// transient reason). A refused migration ends the start; shutdown (the signal) ends the wait at
// once.
import type pg from 'pg';
import type { Channel } from '../decode/catalog.ts';
import { AbortedError, EspError } from '../errors.ts';
import { type Logger, redactUrl } from '../log/logger.ts';
import { ErrorLogThrottle, warnThrottled } from '../log/throttle.ts';
import { backoffMs, sleep } from '../sink/backoff.ts';
import { classifyDbError } from '../sink/sqlstate.ts';
import { migrate, type SchemaResult } from './migrate.ts';
import { waitWhileRestoring } from './restore-state.ts';
import type { StorageSettings } from './settings.ts';

export interface UntilMigratedDeps {
  readonly pool: pg.Pool;
  /** For the `database_connected` line only (shown without its password). */
  readonly databaseUrl: string;
  readonly catalog: readonly Channel[];
  readonly storage: StorageSettings;
  readonly log: Logger;
  /** RETRY_MAX_DELAY_MS: the backoff's cap. */
  readonly retryMaxDelayMs: number;
  readonly clock: () => number;
  /** Told after each attempt: reached (true) or not, and why (readiness). */
  readonly onDbCheck: (ok: boolean, detail?: string) => void;
  /** Shutdown during start-up: stops waiting at once. */
  readonly signal: AbortSignal;
  /**
   * Told why migrations wait while a restore is under way (restore-state.ts), with the command
   * that ends it, and undefined when it has ended (readiness).
   */
  readonly onRestoreHeld?: (detail: string | undefined) => void;
}

/**
 * Connects and migrates, retrying until it succeeds.
 * @throws EspError ESP_DB_MIGRATION_FAILED when the server refuses a migration (not retried);
 *   AbortedError (ESP_ABORTED) when `signal` aborts first.
 */
export async function untilMigrated(deps: UntilMigratedDeps): Promise<SchemaResult> {
  const { pool, log, signal } = deps;
  let connected = false;
  const unavailable = new ErrorLogThrottle(undefined, deps.clock);
  for (let attempt = 1; ; attempt++) {
    if (signal.aborted) throw new AbortedError('waiting for the database at start-up');
    try {
      if (!connected) {
        const { rows } = await pool.query<{ v: string }>(`SELECT current_setting('server_version') AS v`);
        connected = true;
        log.info({ event: 'database_connected', database: redactUrl(deps.databaseUrl), serverVersion: rows[0]?.v }, 'database connected');
      }
      // No DDL on a database being restored: wait for the restore to finish.
      await waitWhileRestoring(pool, { held: deps.onRestoreHeld ?? (() => undefined), log, signal });
      const schema = await migrate(pool, deps.catalog, log, deps.storage);
      log.info({ event: 'migrations_applied', applied: schema.applied }, `schema up to date (${schema.applied.length} migrations applied now)`);
      deps.onDbCheck(true);
      return schema;
    } catch (err) {
      const cls = classifyDbError((err as { cause?: unknown }).cause ?? err);
      if (err instanceof EspError && err.code === 'ESP_DB_MIGRATION_FAILED' && cls !== 'retry') throw err;
      deps.onDbCheck(false, `database: ${(err as Error).message}`);
      const delay = backoffMs(attempt, deps.retryMaxDelayMs);
      warnThrottled(
        log,
        unavailable,
        err,
        { event: 'database_unavailable', attempt, delayMs: delay },
        'database not reachable at start-up; retrying',
        () => 'database still not reachable at start-up; retrying',
      );
      await sleep(delay, signal);
    }
  }
}
