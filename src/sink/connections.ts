// The database connections: one pool that batches and migrations share (DB_* settings), the
// reachability probe's own client (both read DATABASE_PASSWORD_FILE at each connect, see
// pg-client.ts), and the one way to drop a connection that may be hung.
import pg from 'pg';
import type { Config } from '../config/config.ts';
import { pgClientClass } from './pg-client.ts';

/**
 * The pool batches and migrations use; its idle connections' errors go to `onIdleError` and
 * never crash the process (node-postgres #1324, #2439). Connects nothing until first used.
 */
export function createPool(config: Config, onIdleError: (err: Error) => void): pg.Pool {
  const pool = new pg.Pool({
    Client: pgClientClass(config.databasePasswordFile),
    connectionString: config.databaseUrl,
    max: config.db.poolMax,
    connectionTimeoutMillis: config.db.connectTimeoutMs,
    statement_timeout: config.db.statementTimeoutMs,
    lock_timeout: config.db.lockTimeoutMs,
    idle_in_transaction_session_timeout: config.db.statementTimeoutMs * 2,
    query_timeout: config.db.statementTimeoutMs + 5_000,
    keepAlive: true,
    application_name: 'esp-ingest',
  });
  pool.on('error', onIdleError);
  return pool;
}

/** A new, unconnected client for the reachability probe (never a pooled one). */
export function probeClient(config: Config): pg.Client {
  const Client = pgClientClass(config.databasePasswordFile);
  return new Client({
    connectionString: config.databaseUrl,
    connectionTimeoutMillis: config.db.connectTimeoutMs,
    keepAlive: true,
    application_name: 'esp-ingest-probe',
  });
}

/**
 * Destroys the client's socket without a goodbye (the server may be hung): every pending query
 * on it fails at once with `why`. Uses node-postgres's private `connection.stream`, which has no
 * public equivalent (`client.end()` waits for the server).
 */
export function destroyConnection(client: pg.Client | pg.PoolClient | undefined, why?: Error): void {
  (client as unknown as { connection?: { stream?: { destroy(e?: Error): void } } } | undefined)?.connection?.stream?.destroy(why);
}
