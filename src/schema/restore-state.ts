// Is a restore of this database under way? Read before any migration or storage change: while
// TimescaleDB is in restore mode (`timescaledb_pre_restore()` sets `timescaledb.restoring`), or
// while the installed extension is not the version the server would load, DDL from the service
// would land on a half-restored catalog (timescale/timescaledb #1797, #7383, #3198).
import { AbortedError } from '../errors.ts';
import type { Logger } from '../log/logger.ts';
import { sleep } from '../sink/backoff.ts';
import type { SqlClient } from './apply.ts';

/** What the database says about a restore; `null` versions when TimescaleDB is absent. */
export interface RestoreFacts {
  /** `timescaledb.restoring` is on for new sessions of this database (set by `timescaledb_pre_restore()`). */
  readonly restoring: boolean;
  /** `pg_extension.extversion`: the version whose catalog this database holds. */
  readonly installedVersion: string | null;
  /** `pg_available_extensions.default_version`: the version the server's files would load. */
  readonly serverVersion: string | null;
}

/** Why migrations wait, with the command that ends the wait; undefined when they may run. */
export interface RestoreBlock {
  readonly kind: 'restoring' | 'version_mismatch';
  readonly detail: string;
}

/**
 * The facts, in one query on any connection, pooled or new (works without TimescaleDB: versions
 * come back null). Restore mode is read from where `timescaledb_pre_restore()` puts it (this
 * database's own settings, `ALTER DATABASE … SET`) and from the server's configuration, not from
 * the session: a connection opened during a restore keeps the old value after it ends.
 */
export async function readRestoreFacts(client: SqlClient): Promise<RestoreFacts> {
  const { rows } = await client.query(`SELECT
      EXISTS (SELECT 1 FROM pg_db_role_setting s CROSS JOIN LATERAL unnest(s.setconfig) AS c(cfg)
              WHERE s.setrole = 0 AND s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
                AND lower(c.cfg) IN ('timescaledb.restoring=on', 'timescaledb.restoring=true', 'timescaledb.restoring=1'))
      OR EXISTS (SELECT 1 FROM pg_settings WHERE name = 'timescaledb.restoring' AND setting = 'on'
                 AND source IN ('configuration file', 'command line', 'environment variable')) AS restoring,
      (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb') AS installed,
      (SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb') AS server`);
  const row = rows[0] as { restoring: boolean; installed: string | null; server: string | null } | undefined;
  return { restoring: row?.restoring === true, installedVersion: row?.installed ?? null, serverVersion: row?.server ?? null };
}

/**
 * Whether the service must hold back its schema work, and what a person runs to end it.
 * A database without the extension installed is not blocked (the applier creates it).
 */
export function restoreBlock(f: RestoreFacts): RestoreBlock | undefined {
  if (f.restoring) {
    return {
      kind: 'restoring',
      detail:
        'TimescaleDB restore mode is on (timescaledb.restoring); no schema change until it ends: ' +
        'when pg_restore has finished, run `SELECT timescaledb_post_restore();` in this database',
    };
  }
  if (f.installedVersion !== null && f.serverVersion !== null && f.installedVersion !== f.serverVersion) {
    return {
      kind: 'version_mismatch',
      detail:
        `TimescaleDB ${f.installedVersion} is installed in this database but the server loads ${f.serverVersion}; ` +
        'no schema change until they agree: run `ALTER EXTENSION timescaledb UPDATE;` as the first command of a new session ' +
        '(psql -X), or run the server version the data was restored from',
    };
  }
  return undefined;
}

/** Reads the facts and decides; undefined when schema work may go ahead. */
export async function checkRestore(client: SqlClient): Promise<(RestoreBlock & { readonly facts: RestoreFacts }) | undefined> {
  const facts = await readRestoreFacts(client);
  const block = restoreBlock(facts);
  return block && { ...block, facts };
}

/** Time between checks while a restore holds schema work or commits back, ms. */
const RESTORE_POLL_MS = 2_000;

export interface RestoreGateDeps {
  /** Told the block's detail (readiness) when it starts or changes, and undefined when it ends. */
  readonly held: (detail: string | undefined) => void;
  readonly log: Logger;
  /** Shutdown during start-up: stops waiting at once. */
  readonly signal: AbortSignal;
  readonly pollMs?: number;
}

/**
 * The start-up gate in front of `migrate`: resolves once no restore blocks schema work, checking
 * every poll period, telling `held` why it waits and logging each change with both versions.
 * @throws what the query throws (an unreachable database: the caller retries); AbortedError when
 *   `signal` aborts while it waits.
 */
export async function waitWhileRestoring(client: SqlClient, o: RestoreGateDeps): Promise<void> {
  let last: string | undefined;
  for (;;) {
    const block = await checkRestore(client);
    if (block?.detail !== last) {
      o.held(block?.detail);
      if (block)
        o.log.warn(
          { event: 'restore_in_progress', kind: block.kind, installedVersion: block.facts.installedVersion, serverVersion: block.facts.serverVersion },
          `schema changes held: ${block.detail}`,
        );
      else o.log.info({ event: 'restore_finished' }, 'restore finished; applying the schema');
    }
    last = block?.detail;
    if (!block) return;
    await sleep(o.pollMs ?? RESTORE_POLL_MS, o.signal);
    if (o.signal.aborted) throw new AbortedError('waiting for a restore to finish at start-up');
  }
}

export interface RestoreWatchDeps {
  /** Where the facts are read (the service's pool). */
  readonly db: SqlClient;
  /** Told the block's detail when a restore starts (or changes), and undefined when it ends. */
  readonly onChange: (detail: string | undefined) => void;
  readonly log: Logger;
  readonly pollMs?: number;
}

/**
 * The same check while the service runs: a restore started under a running service (someone
 * runs `timescaledb_pre_restore()` on its database) holds every commit until it ends, so nothing
 * is written into a half-restored catalog and nothing more is acknowledged; the broker keeps the
 * rest. (TimescaleDB 2.19 refuses the writes of a new session anyway, 0A000 "cannot INSERT into
 * hypertable during restore": without the hold they would fail and retry as
 * `database_writes_failing`, with the cause hidden in the logs.) A restore is noticed within one
 * poll period; a commit in that window from a session opened before the restore goes through.
 */
export class RestoreWatch {
  readonly #d: RestoreWatchDeps;
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  #detail: string | undefined;
  #waiters: (() => void)[] = [];

  constructor(deps: RestoreWatchDeps) {
    this.#d = deps;
  }

  /** Checks every poll period. Idempotent. */
  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.check(), this.#d.pollMs ?? RESTORE_POLL_MS);
    this.#timer.unref();
  }

  /** One check now (none overlap); a failed query changes nothing (the database probe reports it). */
  async check(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    try {
      const block = await checkRestore(this.#d.db);
      if (block?.detail === this.#detail) return;
      this.#detail = block?.detail;
      this.#d.onChange(this.#detail);
      if (block) {
        this.#d.log.warn(
          { event: 'restore_in_progress', kind: block.kind, installedVersion: block.facts.installedVersion, serverVersion: block.facts.serverVersion },
          `commits held: ${block.detail}`,
        );
      } else {
        this.#d.log.info({ event: 'restore_finished' }, 'restore finished; commits resume');
        const w = this.#waiters;
        this.#waiters = [];
        for (const f of w) f();
      }
    } catch {
      // Unreachable database: the reachability probe and the writer report it.
    } finally {
      this.#running = false;
    }
  }

  /**
   * Resolves true at once when no restore is known, else true when it ends, or false when
   * `signal` aborts first (the restore still on: the caller must not write).
   */
  whenClear(signal?: AbortSignal): Promise<boolean> {
    if (this.#detail === undefined) return Promise.resolve(true);
    if (signal?.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      this.#waiters.push(() => resolve(true));
      signal?.addEventListener('abort', () => resolve(false), { once: true });
    });
  }

  /**
   * `sink` with every commit held while a restore is known (`whenClear`).
   * @throws AbortedError from `commit` when `signal` aborts while held (nothing written).
   */
  holding<T>(sink: { commit(items: T): Promise<void> }, signal: AbortSignal): { commit(items: T): Promise<void> } {
    return {
      commit: async (items) => {
        if (!(await this.whenClear(signal))) throw new AbortedError('a commit held by a restore');
        await sink.commit(items);
      },
    };
  }

  /** Stops checking. Waiters stay held (a restore may still be on): their `signal` releases them. Idempotent. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
