// Schema at start-up: numbered migrations from sql/ (each once, recorded), then a column per
// catalog channel, then TimescaleDB features where the server has them. All under one
// advisory lock, so two instances starting together cannot race.
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import type { Pool, PoolClient } from 'pg';
import type { Channel } from '../decode/catalog.ts';
import { EspError } from '../errors.ts';
import type { Logger } from '../log/logger.ts';
import { applyTimescale, type StorageMode } from './timescale.ts';

const SQL_DIR = fileURLToPath(new URL('../../sql/', import.meta.url));
/** Advisory lock key: "esp-ingest migrate" hashed once, fixed forever. */
const LOCK_KEY = 727_001_422;

export interface SchemaResult {
  readonly applied: string[];
  readonly storage: StorageMode;
}

/**
 * Brings the schema up to date. Idempotent; safe to run from several instances at once.
 * @throws EspError ESP_DB_MIGRATION_FAILED naming the file that failed (cause attached).
 */
export async function migrate(pool: Pool, catalog: readonly Channel[], log: Logger): Promise<SchemaResult> {
  const client = await pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [LOCK_KEY]);
    try {
      const applied = await applyFiles(client, log);
      await addChannelColumns(client, catalog, log);
      const storage = await applyTimescale(client, log);
      return { applied, storage };
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [LOCK_KEY]);
    }
  } finally {
    client.release();
  }
}

async function applyFiles(client: PoolClient, log: Logger): Promise<string[]> {
  await client.query(`CREATE TABLE IF NOT EXISTS esp_schema_migrations (
    version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
  const done = new Set((await client.query<{ version: number }>('SELECT version FROM esp_schema_migrations')).rows.map((r) => r.version));
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
      throw new EspError('ESP_DB_MIGRATION_FAILED', `migration ${file} failed: ${(err as Error).message}; fix the database or the file and restart`, { cause: err });
    }
    applied.push(file);
    log.info({ migration: file }, 'migration applied');
  }
  return applied;
}

async function addChannelColumns(client: PoolClient, catalog: readonly Channel[], log: Logger): Promise<void> {
  const existing = new Set(
    (await client.query<{ column_name: string }>(
      `SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'esp_telemetry'`,
    )).rows.map((r) => r.column_name),
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
