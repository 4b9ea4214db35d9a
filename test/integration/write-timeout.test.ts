// A write on a half-open database connection (the server's host gone silent: every server process
// SIGSTOPped, so the TCP connection stays up and nothing answers, not even statement_timeout)
// fails within DB_STATEMENT_TIMEOUT_MS + 5 s, and nothing waits on that connection afterwards: a
// ROLLBACK on it would wait just as long (node-postgres query_timeout does not close the
// connection), so the statement's own bound destroys it.
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, expect, it } from 'vitest';
import { DEFAULT_CATALOG } from '../../src/decode/catalog.ts';
import { packChannels } from '../../src/decode/channels.ts';
import type { Reading } from '../../src/decode/decode.ts';
import { migrate } from '../../src/schema/migrate.ts';
import { TelemetryWriter } from '../../src/sink/writer.ts';
import { Teardown } from '../support/harness.ts';
import { privatePostgres } from '../support/private-postgres.ts';

const t = new Teardown();
afterAll(() => t.run());

const STATEMENT_TIMEOUT_MS = 5_000;
const T0_US = Date.parse('2026-01-01T00:00:00Z') * 1000;
const reading = (i: number): Reading => ({
  wellId: 'W-1',
  site: null,
  tsUs: T0_US + i * 1_000_000,
  seq: i,
  ...packChannels(DEFAULT_CATALOG.map((_, c) => (c === 0 ? 1 : null))),
  extra: null,
});

it(`fails a write on a half-open connection within DB_STATEMENT_TIMEOUT_MS (${STATEMENT_TIMEOUT_MS} ms) + 5 s and discards the connection`, async () => {
  const db = await privatePostgres(t);
  // The pool and writer as src/app.ts builds them, one connection so the write reuses the warm one.
  const pool = new pg.Pool({
    connectionString: db.url,
    max: 1,
    statement_timeout: STATEMENT_TIMEOUT_MS,
    query_timeout: STATEMENT_TIMEOUT_MS + 5_000,
    keepAlive: true,
  });
  pool.on('error', () => undefined);
  t.add(() => pool.end().catch(() => undefined));
  await migrate(pool, DEFAULT_CATALOG, pino({ level: 'silent' }));
  const writer = new TelemetryWriter(pool, DEFAULT_CATALOG, STATEMENT_TIMEOUT_MS * 2, STATEMENT_TIMEOUT_MS);
  expect((await writer.write([reading(0)], [])).inserted).toBe(1);
  expect(pool.totalCount).toBe(1);

  db.freeze();
  t.add(() => db.thaw());
  const started = performance.now();
  const failure = await writer.write([reading(1), reading(2)], []).then(
    () => undefined,
    (err: Error) => err,
  );
  const elapsedMs = performance.now() - started;
  console.log(
    `half-open database: write failed after ${(elapsedMs / 1000).toFixed(2)} s with DB_STATEMENT_TIMEOUT_MS=${STATEMENT_TIMEOUT_MS}: ${failure?.message}`,
  );
  expect(failure?.message).toMatch(/gave no answer to a statement within 8000 ms/);
  expect(elapsedMs).toBeGreaterThan(STATEMENT_TIMEOUT_MS);
  // Within the bound, and before the whole-transaction guard (2x) could have been what ended it.
  expect(elapsedMs).toBeLessThan(STATEMENT_TIMEOUT_MS + 5_000);
  expect(elapsedMs).toBeLessThan(STATEMENT_TIMEOUT_MS * 2 - 1_000);
  // The connection was destroyed, not returned to the pool.
  expect(pool.totalCount).toBe(0);

  db.thaw();
  expect((await writer.write([reading(1), reading(2)], [])).inserted).toBe(2);
}, 60_000);
