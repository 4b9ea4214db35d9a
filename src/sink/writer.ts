// Sink: commits one batch in one transaction. Readings: COPY straight into esp_telemetry (fast
// path); when a key is already stored (23505), the batch is redone through a session temp table:
// insert what is new, then fill channels the stored row lacks and count disagreeing values (stored
// values are never overwritten). Model: Promscale copier.go. Rejections: COPY into
// rejected_messages. The statements are in writer-sql.ts. Contract of pg-copy-streams: on error
// destroy the stream, ROLLBACK, release(err) so the connection is discarded (pg-copy-streams #115:
// no CopyFail is sent on error).
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Pool, PoolClient } from 'pg';
import copyStreams from 'pg-copy-streams';
import type { Channel } from '../decode/catalog.ts';
import type { Reading } from '../decode/decode.ts';
import type { RejectRow } from '../decode/work.ts';
import { AbortedError } from '../errors.ts';
import { destroyConnection } from './connections.ts';
import { binaryReadingChunks } from './copy-binary.ts';
import { copyTimestampUs } from './copy-encode.ts';
import { isTransientWriteConflict } from './sqlstate.ts';
import { keyBounds, LIFT_DECOMPRESSION_LIMIT, readingChunks, rejectLines, usedChannels, type WriterSql, writerSql } from './writer-sql.ts';

const { from: copyFrom } = copyStreams;

export interface WriteResult {
  /** New rows in esp_telemetry. */
  readonly inserted: number;
  /** Staged rows whose key was already stored. */
  readonly duplicates: number;
  /** Channel values that disagreed with the stored value. */
  readonly conflicts: number;
  /** Stored rows that got channels filled in. */
  readonly filled: number;
}

export interface WriteOptions {
  /**
   * Lift TimescaleDB's decompression bound for this one transaction (LIFT_DECOMPRESSION_LIMIT):
   * the committer's fallback for a single reading that still raises SQLSTATE 53400.
   */
  readonly liftDecompressionLimit?: boolean;
}

/**
 * What one batch transaction needs from a connection: node-postgres here; the licensed-TimescaleDB
 * tests give PGlite the same shape, so they run this file's transaction as the service does.
 */
export interface SqlSession {
  query<R = Record<string, unknown>>(text: string, params?: unknown[]): Promise<{ rows: R[]; rowCount: number | null }>;
  /**
   * `COPY <target> FROM STDIN` fed with COPY text (strings, or UTF-8 bytes in whole lines), or
   * with `binary` the binary format (copy-binary.ts).
   */
  copyIn(target: string, data: Iterable<string | Uint8Array>, binary?: boolean): Promise<void>;
  /** The readings may be copied in the binary format (the session supports it and the columns' types match). */
  readonly binaryCopy?: boolean;
  /**
   * With binaryCopy: in the open transaction, takes the lock COPY takes on esp_telemetry and
   * says why its column types no longer fit the binary data (binaryCopyProblem), if they do not.
   */
  binaryColumnsProblem?(): Promise<string | undefined>;
}

/** Writes batches; stateless apart from which pooled connections already have the temp table. */
export class TelemetryWriter {
  readonly #pool: Pool;
  readonly #catalog: readonly Channel[];
  readonly #sql: WriterSql;
  readonly #staged = new WeakSet<PoolClient>();
  readonly #deadlineMs: number;
  readonly #statementDeadlineMs: number;
  /** Readings copied in the binary format: esp_telemetry's column types are its own (checked on the first write, then in each transaction). */
  #binary: boolean | undefined;

  /**
   * @param deadlineMs whole-transaction bound; past it the connection is destroyed and the
   *   write fails (retryable), so a stalled server never holds a batch forever.
   * @param statementTimeoutMs the server's statement_timeout (DB_STATEMENT_TIMEOUT_MS). A statement
   *   with no answer STATEMENT_GRACE_MS after it (a half-open connection, a hung server: the
   *   server-side timeout cannot answer either) destroys the connection, so the write fails then
   *   and nothing (no ROLLBACK) waits on that connection afterwards. Default: no per-statement bound.
   */
  constructor(pool: Pool, catalog: readonly Channel[], deadlineMs: number, statementTimeoutMs?: number) {
    this.#pool = pool;
    this.#catalog = catalog;
    this.#deadlineMs = deadlineMs;
    this.#statementDeadlineMs = statementTimeoutMs === undefined ? Infinity : statementTimeoutMs + STATEMENT_GRACE_MS;
    this.#sql = writerSql(catalog);
  }

  /**
   * Commits `rows` (unique on (well_id, ts); see mergeByKey) and `rejects` in one transaction.
   * @param signal shutdown's deadline: on abort the write is given up at once (connection
   *   destroyed, whatever the server is doing), so a blocked or hung server cannot hold the stop.
   * @throws the pg / network error, or AbortedError; the transaction is rolled back (or dies with
   *   its connection) and the connection is discarded.
   */
  async write(rows: readonly Reading[], rejects: readonly RejectRow[], signal?: AbortSignal, options: WriteOptions = {}): Promise<WriteResult> {
    const client = await connect(this.#pool, signal);
    let failure: Error | undefined;
    // A checked-out client whose backend dies emits 'error'; unhandled, that would crash the
    // process (node-postgres #1324, #2439). The pending query fails too, which is what we act on.
    const onClientError = (err: Error) => {
      failure ??= err;
    };
    client.on('error', onClientError);
    const discard = (why: Error) => {
      failure ??= why;
      // Destroying the socket fails every pending query on this client at once.
      destroyConnection(client, why);
    };
    const timer = setTimeout(() => discard(new Error(`batch write exceeded ${this.#deadlineMs} ms; connection discarded`)), this.#deadlineMs);
    const onAbort = () => discard(new AbortedError('batch write'));
    signal?.addEventListener('abort', onAbort, { once: true });
    const statementMs = this.#statementDeadlineMs;
    const bounded = <R>(work: Promise<R>): Promise<R> => {
      if (!Number.isFinite(statementMs)) return work;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const silent = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const err = new Error(
            `database gave no answer to a statement within ${statementMs} ms (statement_timeout + ${STATEMENT_GRACE_MS / 1000} s): half-open connection or hung server; connection discarded`,
          );
          discard(err);
          reject(err);
        }, statementMs);
      });
      return Promise.race([work, silent]).finally(() => clearTimeout(timer));
    };
    let binary = false;
    try {
      binary = this.#binary ??= binaryCopyProblem(await columnTypes((text) => client.query(text)), this.#catalog) === undefined;
      const session = pgSession(client, bounded, binary ? this.#catalog : undefined);
      if (!this.#staged.has(client)) {
        await session.query(this.#sql.createStage);
        this.#staged.add(client);
      }
      return await commitBatch(session, this.#sql, this.#catalog.length, rows, rejects, options);
    } catch (err) {
      // A column whose type changed (found in the transaction, or 22P03 from the server: class 22,
      // which the committer would take for refused data and move a lone message to
      // rejected_messages) is the format's fault, not the data's. The batch is retried, in the
      // text format from then on. Any other failure keeps the format: each transaction checks the
      // types again anyway.
      const binaryRefused = binary && (err instanceof BinaryColumnsChanged || (err as { code?: unknown }).code === '22P03');
      if (binaryRefused) this.#binary = false;
      failure ??= err as Error;
      if (failure === err) throw binaryRefused ? new RetryableWriteError(err) : err;
      throw Object.assign(failure, { cause: err });
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      // A destroyed client may still emit socket errors (EPIPE): keep listening on it.
      if (!failure) client.off('error', onClientError);
      // A failed connection is destroyed, never returned to the pool.
      client.release(failure);
    }
  }
}

/**
 * Why esp_telemetry cannot take the binary COPY of copy-binary.ts, or undefined when it can: each
 * column it writes must have the type whose binary form it sends.
 * @param types column name → information_schema.columns.data_type.
 */
export function binaryCopyProblem(types: ReadonlyMap<string, string>, catalog: readonly Channel[]): string | undefined {
  const expected: [string, string][] = [
    ['ts', 'timestamp with time zone'],
    ['well_id', 'text'],
    ['site', 'text'],
    ['seq', 'bigint'],
    ['extra', 'jsonb'],
    ...catalog.map((c): [string, string] => [c.column, 'double precision']),
  ];
  const wrong = expected.filter(([column, type]) => types.get(column) !== type);
  return wrong.length === 0 ? undefined : wrong.map(([column, type]) => `${column} is ${types.get(column) ?? 'missing'}, not ${type}`).join('; ');
}

/** esp_telemetry's column types (the table COPY resolves), named as information_schema names them. */
async function columnTypes(query: (text: string) => Promise<{ rows: unknown[] }>): Promise<Map<string, string>> {
  const { rows } = await query(
    `SELECT attname AS column_name, format_type(atttypid, NULL) AS data_type FROM pg_attribute WHERE attrelid = 'esp_telemetry'::regclass AND attnum > 0 AND NOT attisdropped`,
  );
  return new Map((rows as { column_name: string; data_type: string }[]).map((r) => [r.column_name, r.data_type]));
}

/**
 * esp_telemetry's column types changed since the binary format was chosen (an ALTER TABLE while
 * running): a float's bytes would be read as another 8-byte type and stored wrong, not refused.
 * SQLSTATE 42804 (datatype_mismatch) as its label; the writer retries it in the text format.
 */
export class BinaryColumnsChanged extends Error {
  readonly code = '42804';
  constructor(problem: string) {
    super(`esp_telemetry's column types changed: ${problem}; written in the text format from now on`);
    this.name = 'BinaryColumnsChanged';
  }
}

/**
 * Past statement_timeout, the server answers with 57014 within milliseconds on a live connection;
 * this much more without any answer means the connection (or server) is gone.
 */
export const STATEMENT_GRACE_MS = 3_000;

/** node-postgres as a SqlSession; COPY through pg-copy-streams; each statement `bounded`. */
function pgSession(client: PoolClient, bounded: <R>(work: Promise<R>) => Promise<R>, binaryCatalog: readonly Channel[] | undefined): SqlSession {
  return {
    binaryCopy: binaryCatalog !== undefined,
    binaryColumnsProblem: async () => {
      if (!binaryCatalog) return undefined;
      await bounded(client.query('LOCK TABLE esp_telemetry IN ROW EXCLUSIVE MODE'));
      return binaryCopyProblem(await columnTypes((text) => bounded(client.query(text))), binaryCatalog);
    },
    query: async <R>(text: string, params?: unknown[]) => {
      const res = await bounded(client.query(text, params));
      return { rows: res.rows as R[], rowCount: res.rowCount };
    },
    copyIn: (target, data, binary) =>
      bounded(pipeline(Readable.from(data), client.query(copyFrom(`COPY ${target} FROM STDIN${binary ? ' (FORMAT binary)' : ''}`)))),
  };
}

/** The readings' COPY data and whether it is the binary format, as the session takes them. */
function readingData(session: SqlSession, rows: readonly Reading[], channels: readonly number[]): [Iterable<Uint8Array>, boolean] {
  return session.binaryCopy ? [binaryReadingChunks(rows, channels), true] : [readingChunks(rows, channels), false];
}

/**
 * One batch, one transaction, on a session that already has the stage table (`sql.createStage`).
 * Fast path: COPY into esp_telemetry. On 23505 (a key already stored: a redelivery, a second
 * device of the well, late data landing on a compressed row) the fast path is rolled back and the
 * staged path runs. Rolls back on any error.
 * @param channelCount catalog length (values per reading).
 * @throws the server's error (SQLSTATE in `code`) or a RangeError from the COPY encoders.
 */
export async function commitBatch(
  session: SqlSession,
  sql: WriterSql,
  channelCount: number,
  rows: readonly Reading[],
  rejects: readonly RejectRow[],
  options: WriteOptions = {},
): Promise<WriteResult> {
  try {
    return (
      (rows.length > 0 && (await fastPath(session, sql, channelCount, rows, rejects, options))) ||
      (await stagedPath(session, sql, channelCount, rows, rejects, options))
    );
  } catch (err) {
    await session.query('ROLLBACK').catch(() => undefined);
    throw isTransientWriteConflict(err) ? new RetryableWriteError(err) : err;
  }
}

/**
 * A write failure to retry whatever its SQLSTATE's class (see isTransientWriteConflict); `code`
 * keeps the server's SQLSTATE for metrics and logs, `cause` the server's error.
 */
export class RetryableWriteError extends Error {
  readonly code: string;
  constructor(cause: unknown) {
    super((cause as Error).message, { cause });
    this.name = 'RetryableWriteError';
    this.code = String((cause as { code?: unknown }).code ?? '');
  }
}

async function begin(session: SqlSession, options: WriteOptions): Promise<void> {
  await session.query('BEGIN');
  if (options.liftDecompressionLimit) await session.query(LIFT_DECOMPRESSION_LIMIT);
  // Binary data is right only for the column types it was written for: checked in the
  // transaction, under the lock COPY takes anyway, so no ALTER TABLE comes in between.
  const problem = session.binaryCopy ? await session.binaryColumnsProblem?.() : undefined;
  if (problem) throw new BinaryColumnsChanged(problem);
}

/** COPY straight into esp_telemetry; undefined (rolled back) when a key is already stored. */
async function fastPath(
  session: SqlSession,
  sql: WriterSql,
  channelCount: number,
  rows: readonly Reading[],
  rejects: readonly RejectRow[],
  options: WriteOptions,
): Promise<WriteResult | undefined> {
  await begin(session, options);
  try {
    const channels = usedChannels(rows, channelCount);
    await session.copyIn(sql.copyTarget('esp_telemetry', channels), ...readingData(session, rows, channels));
  } catch (err) {
    if ((err as { code?: string }).code !== '23505') throw err;
    await session.query('ROLLBACK');
    return undefined;
  }
  if (rejects.length > 0) await session.copyIn(sql.rejectCopyTarget, rejectLines(rejects));
  await session.query('COMMIT');
  return { inserted: rows.length, duplicates: 0, conflicts: 0, filled: 0 };
}

/**
 * COPY into the stage table, insert the keys not yet stored, then compare the rest with what is
 * stored and fill what the stored rows lack. The fill (an UPDATE, which on a compressed chunk
 * decompresses what it touches) runs only when something is missing, bounded to those rows.
 * A 23505 here comes from a concurrent writer of the same key (timescaledb #5448): the committer
 * retries the batch, which then finds the key stored.
 */
async function stagedPath(
  session: SqlSession,
  sql: WriterSql,
  channelCount: number,
  rows: readonly Reading[],
  rejects: readonly RejectRow[],
  options: WriteOptions,
): Promise<WriteResult> {
  await begin(session, options);
  let result: WriteResult = { inserted: 0, duplicates: 0, conflicts: 0, filled: 0 };
  if (rows.length > 0) {
    const bounds = keyBounds(rows);
    await session.query(sql.truncateStage);
    const channels = usedChannels(rows, channelCount);
    await session.copyIn(sql.copyTarget('esp_stage', channels), ...readingData(session, rows, channels));
    const inserted = (await session.query(sql.insertFromStage, bounds)).rowCount ?? 0;
    result = { inserted, duplicates: rows.length - inserted, conflicts: 0, filled: 0 };
    if (inserted < rows.length) {
      const cmp = (await session.query<CompareRow>(sql.compareStage, bounds)).rows[0];
      let filled = 0;
      if (cmp && Number(cmp.fillable) > 0 && cmp.fill_wells && cmp.fill_from_us !== null && cmp.fill_to_us !== null) {
        const fillBounds = [cmp.fill_wells, copyTimestampUs(Number(cmp.fill_from_us)), copyTimestampUs(Number(cmp.fill_to_us))];
        filled = (await session.query(sql.fillFromStage, fillBounds)).rowCount ?? 0;
      }
      result = { ...result, conflicts: Number(cmp?.conflicts ?? 0), filled };
    }
  }
  if (rejects.length > 0) await session.copyIn(sql.rejectCopyTarget, rejectLines(rejects));
  await session.query('COMMIT');
  return result;
}

interface CompareRow {
  conflicts: string;
  fillable: string;
  fill_wells: string[] | null;
  fill_from_us: string | null;
  fill_to_us: string | null;
}

/**
 * `pool.connect()` that gives up when `signal` aborts (a dead server makes it wait up to
 * DB_CONNECT_TIMEOUT_MS). A connection that arrives after giving up goes back to the pool.
 * @throws AbortedError, or the connect error.
 */
async function connect(pool: Pool, signal: AbortSignal | undefined): Promise<PoolClient> {
  if (!signal) return pool.connect();
  if (signal.aborted) throw new AbortedError('database connect');
  const pending = pool.connect();
  let onAbort: () => void = () => undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(new AbortedError('database connect'));
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([pending, aborted]);
  } catch (err) {
    if (signal.aborted)
      pending.then(
        (c) => c.release(),
        () => undefined,
      );
    throw err;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}
