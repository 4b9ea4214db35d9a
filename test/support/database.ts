// Databases for tests and dev tools: the TimescaleDB server (the one scripts/timescaledb.sh
// provisions, or TEST_DATABASE_URL), a new database on it per test or per run (empty or migrated), one-off
// queries, and a lock that makes every write wait.
import { execFileSync } from 'node:child_process';
import pg from 'pg';
import { pino } from 'pino';
import { DEFAULT_CATALOG } from '../../src/decode/catalog.ts';
import { migrate } from '../../src/schema/migrate.ts';
import { ROOT } from './root.ts';
import type { Teardown } from './teardown.ts';

/** TimescaleDB server for tests; scripts/test.sh provisions it and sets TEST_DATABASE_URL. */
export function serverUrl(): string {
  const url = process.env.TEST_DATABASE_URL;
  if (!url) throw new Error('TEST_DATABASE_URL is not set: run the tests with `npm test` (scripts/test.sh provisions TimescaleDB)');
  return url;
}

/** Plain PostgreSQL (no TimescaleDB) for the fallback path: the machine's own server. */
export const PLAIN_PG_URL = process.env.TEST_PLAIN_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/**
 * The local TimescaleDB server's URL, started (and on first use built, ~35 s) by
 * `scripts/timescaledb.sh start`, whose progress goes to this process's stderr.
 */
export function localTimescaleUrl(): string {
  const out = execFileSync('bash', ['scripts/timescaledb.sh', 'start'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  return out.trim().split('\n').pop()!;
}

/**
 * Drops database `name` on the server of `serverUrl` if it exists (closing its connections) and
 * creates it empty; resolves with its URL. `name` must be a plain SQL identifier.
 */
export async function createDatabase(serverUrl: string, name: string): Promise<string> {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`createDatabase: ${JSON.stringify(name)} is not a plain lower-case identifier`);
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const u = new URL(serverUrl);
  u.pathname = `/${name}`;
  return u.toString();
}

/** An empty database with a name of its own on the server of `baseUrl`; dropped at teardown. */
export async function freshDatabase(t: Teardown, baseUrl = serverUrl()): Promise<string> {
  const name = `esp_t_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const url = await createDatabase(baseUrl, name);
  t.add(() => query(baseUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
  return url;
}

/** A fresh database (see freshDatabase) with the service's migrations applied for DEFAULT_CATALOG. */
export async function migratedDatabase(t: Teardown, baseUrl = serverUrl()): Promise<string> {
  const url = await freshDatabase(t, baseUrl);
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  try {
    await migrate(pool, DEFAULT_CATALOG, pino({ level: 'silent' }));
  } finally {
    await pool.end();
  }
  return url;
}

/** One query on a short-lived connection. */
export async function query<T extends pg.QueryResultRow = Record<string, unknown>>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<T>(sql, params)).rows;
  } finally {
    await c.end();
  }
}

/**
 * Holds an ACCESS EXCLUSIVE lock on esp_telemetry from another session, so every write waits
 * (and times out at lock_timeout). `release()` commits, letting writes through; the session is
 * closed at teardown.
 */
export async function lockTelemetryTable(t: Teardown, databaseUrl: string): Promise<{ release(): Promise<void> }> {
  const locker = new pg.Client({ connectionString: databaseUrl });
  await locker.connect();
  t.add(() => locker.end());
  await locker.query('BEGIN');
  await locker.query('LOCK TABLE esp_telemetry IN ACCESS EXCLUSIVE MODE');
  return { release: async () => void (await locker.query('COMMIT')) };
}
