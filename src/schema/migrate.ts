// Schema at start-up: numbered migrations from sql/ (each once, recorded), then a column per
// catalog channel, then the storage lifecycle (storage/apply.ts) where the server has it. All
// under one advisory lock, so two instances starting together cannot race.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Pool } from 'pg';
import type { Channel } from '../decode/catalog.ts';
import { EspError } from '../errors.ts';
import type { Logger } from '../log/logger.ts';
import { applyStorage, type SqlClient } from './apply.ts';
import type { StorageReport } from './report.ts';
import { DEFAULT_STORAGE_SETTINGS, type StorageSettings } from './settings.ts';

const SQL_DIR = fileURLToPath(new URL('../../sql/', import.meta.url));
/** Advisory lock key: "esp-ingest migrate" hashed once, fixed forever. */
const LOCK_KEY = 727_001_422;

export interface SchemaResult {
  readonly applied: string[];
  readonly storage: StorageReport;
}

/**
 * Brings the schema up to date on one pooled connection. Idempotent; safe to run from several
 * instances at once.
 * @param storage the lifecycle settings (config `storage`); defaults to the documented ones.
 * @throws EspError ESP_DB_MIGRATION_FAILED naming the file that failed (cause attached).
 */
export async function migrate(
  pool: Pool,
  catalog: readonly Channel[],
  log: Logger,
  storage: StorageSettings = DEFAULT_STORAGE_SETTINGS,
): Promise<SchemaResult> {
  const client = await pool.connect();
  try {
    return await migrateWith(client, catalog, log, storage);
  } finally {
    client.release();
  }
}

/**
 * The same on any connection with the narrow query surface (a pg client, or PGlite in the
 * licensed tests). Statements without parameters may hold several commands (the sql/ files).
 */
export async function migrateWith(
  client: SqlClient,
  catalog: readonly Channel[],
  log: Logger,
  storage: StorageSettings = DEFAULT_STORAGE_SETTINGS,
): Promise<SchemaResult> {
  await client.query('SELECT pg_advisory_lock($1)', [LOCK_KEY]);
  try {
    const applied = await applyFiles(client, log);
    await addChannelColumns(client, catalog, log);
    return { applied, storage: await applyStorage(client, storage, catalog, log) };
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [LOCK_KEY]);
  }
}

async function applyFiles(client: SqlClient, log: Logger): Promise<string[]> {
  await client.query(`CREATE TABLE IF NOT EXISTS esp_schema_migrations (
    version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
  const done = new Set(((await client.query('SELECT version FROM esp_schema_migrations')).rows as { version: number }[]).map((r) => r.version));
  const files = (await readdir(SQL_DIR)).filter((f) => /^\d{3}_.+\.sql$/.test(f)).sort();
  const applied: string[] = [];
  for (const file of files) {
    const version = Number(file.slice(0, 3));
    if (done.has(version)) continue;
    const sql = await readFile(path.join(SQL_DIR, file), 'utf8');
    try {
      await client.query('BEGIN');
      await client.query(sql);
      await client.query('INSERT INTO esp_schema_migrations (version, name) VALUES ($1, $2)', [version, file]);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw new EspError('ESP_DB_MIGRATION_FAILED', `migration ${file} failed: ${(err as Error).message}; fix the database or the file and restart`, {
        cause: err,
      });
    }
    applied.push(file);
    log.info({ migration: file }, 'migration applied');
  }
  return applied;
}

/**
 * One nullable column per new channel, no default: TimescaleDB adds it to a hypertable with
 * compressed chunks without decompressing them (old rows read NULL).
 */
async function addChannelColumns(client: SqlClient, catalog: readonly Channel[], log: Logger): Promise<void> {
  const existing = new Set(
    (
      (await client.query(`SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'esp_telemetry'`))
        .rows as { column_name: string }[]
    ).map((r) => r.column_name),
  );
  for (const ch of catalog) {
    if (existing.has(ch.column)) continue;
    // Column names come from the validated catalog (catalogProblems): safe identifiers.
    await client.query(`ALTER TABLE esp_telemetry ADD COLUMN IF NOT EXISTS ${ch.column} double precision`);
    await client.query(`COMMENT ON COLUMN esp_telemetry.${ch.column} IS ${quoteLiteral(`${ch.description} [${ch.unit}]`)}`);
    log.info({ column: ch.column, unit: ch.unit }, 'channel column added');
  }
}

function quoteLiteral(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}
