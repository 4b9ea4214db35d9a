// Backup health for the metrics: WAL archiving as the server reports it (pg_stat_archiver: last
// archived, last failure) and the newest pgBackRest backup per stanza, read from the
// `pgbackrest info --output=json` file the backup job writes after each backup (BACKUP_INFO_FILE).
// The service never runs pgBackRest or needs the repository: the file is its only contract.
import { readFile } from 'node:fs/promises';
import type { Logger } from '../log/logger.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { SqlClient } from '../schema/apply.ts';

/** Time between readings, ms. */
const BACKUP_HEALTH_INTERVAL_MS = 30_000;

/** The newest backup of each stanza in a `pgbackrest info --output=json` document (stop time, Unix s; 0 = none). */
export function newestBackups(json: unknown): { stanza: string; stopS: number }[] {
  if (!Array.isArray(json)) throw new Error('not a pgbackrest info --output=json document (expected an array of stanzas)');
  return json.map((s: unknown) => {
    const stanza = s as { name?: unknown; backup?: unknown };
    if (typeof stanza.name !== 'string') throw new Error('a stanza without a name');
    const backups = Array.isArray(stanza.backup) ? (stanza.backup as { timestamp?: { stop?: unknown } }[]) : [];
    const stops = backups.map((b) => b.timestamp?.stop).filter((t): t is number => typeof t === 'number');
    return { stanza: stanza.name, stopS: stops.length > 0 ? Math.max(...stops) : 0 };
  });
}

export interface BackupHealthDeps {
  /** Where pg_stat_archiver is read (the service's pool). */
  readonly db: SqlClient;
  readonly metrics: Pick<Metrics, 'walArchivedLast' | 'walArchiveFailedLast' | 'backupNewest'>;
  readonly log: Logger;
  /** BACKUP_INFO_FILE; undefined: backups are not exported. */
  readonly infoFile: string | undefined;
  readonly intervalMs?: number;
}

/** Reads archiver statistics and the backup info file every interval into the gauges. */
export class BackupHealth {
  readonly #d: BackupHealthDeps;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #known = false;
  #fileFailing = false;

  constructor(deps: BackupHealthDeps) {
    this.#d = deps;
  }

  /** Reads once now, then every interval (never two at once). Idempotent. */
  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.tick(), this.#d.intervalMs ?? BACKUP_HEALTH_INTERVAL_MS);
    this.#timer.unref();
    void this.tick();
  }

  /** One reading of both sources; failures are logged, never thrown (the last values stay). */
  tick(): Promise<void> {
    this.#running ??= this.#read().finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #read(): Promise<void> {
    const { metrics, log } = this.#d;
    try {
      const { rows } = await this.#d.db.query(`SELECT coalesce(extract(epoch FROM last_archived_time), 0)::float8 AS archived,
        coalesce(extract(epoch FROM last_failed_time), 0)::float8 AS failed FROM pg_stat_archiver`);
      const r = rows[0] as { archived: number; failed: number } | undefined;
      metrics.walArchivedLast.set(r?.archived ?? 0);
      metrics.walArchiveFailedLast.set(r?.failed ?? 0);
    } catch (err) {
      log.debug({ err }, 'pg_stat_archiver not read; the gauges keep their last values');
    }
    const file = this.#d.infoFile;
    if (file === undefined) return;
    try {
      for (const { stanza, stopS } of newestBackups(JSON.parse(await readFile(file, 'utf8')))) metrics.backupNewest.set({ stanza }, stopS);
      this.#known = true;
      if (this.#fileFailing) log.info({ event: 'backup_info_read', file }, 'backup info file readable again');
      this.#fileFailing = false;
    } catch (err) {
      // Unreadable before anything was known: a series at 0, so "no backup in 26 h" fires.
      if (!this.#known) metrics.backupNewest.set({ stanza: '' }, 0);
      if (!this.#fileFailing)
        log.warn({ event: 'backup_info_unreadable', file, err }, 'BACKUP_INFO_FILE cannot be read; the newest backup time is not updated');
      this.#fileFailing = true;
    }
  }

  /** Stops reading and waits for a reading in progress. Idempotent. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }
}
