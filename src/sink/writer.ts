// Sink: commits one batch in one transaction. Readings: COPY straight into esp_telemetry (fast
// path); when a key is already stored (23505), the batch is redone through a session temp table:
// INSERT … ON CONFLICT DO NOTHING, then one statement fills channels the stored row lacks and
// counts disagreeing values (stored values are never overwritten). Model: Promscale copier.go. Rejections: COPY into rejected_messages. Contract of pg-copy-streams:
// on error destroy the stream, ROLLBACK, release(err) so the connection is discarded
// (pg-copy-streams #115: no CopyFail is sent on error).
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Pool, PoolClient } from 'pg';
import copyStreams from 'pg-copy-streams';
import type { Channel } from '../decode/catalog.ts';
import type { Reading, RejectReason } from '../decode/decode.ts';
import { AbortedError } from '../errors.ts';
import { copyBytea, copyFloat, copyInt, copyJson, copyText, copyTimestampUs } from './copy-encode.ts';

const { from: copyFrom } = copyStreams;

/** A rejection ready to store: where it came from and the raw bytes. */
export interface RejectRow {
  readonly receivedAtMs: number;
  readonly topic: string;
  readonly wellId: string | null;
  readonly reason: RejectReason;
  readonly detail: string;
  readonly index: number | null;
  readonly payload: Uint8Array;
}

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

/** Writes batches; stateless apart from which pooled connections already have the temp table. */
export class TelemetryWriter {
  readonly #pool: Pool;
  readonly #catalog: readonly Channel[];
  readonly #staged = new WeakSet<PoolClient>();
  readonly #stageColumns: string;
  readonly #insertSql: string;
  readonly #fillSql: string;
  readonly #deadlineMs: number;

  /**
   * @param deadlineMs whole-transaction bound; past it the connection is destroyed and the
   *   write fails (retryable), so a stalled server never holds a batch forever.
   */
  constructor(pool: Pool, catalog: readonly Channel[], deadlineMs: number) {
    this.#pool = pool;
    this.#catalog = catalog;
    this.#deadlineMs = deadlineMs;
    const channelCols = catalog.map((c) => c.column);
    const cols = ['ts', 'well_id', 'site', 'seq', 'extra', ...channelCols];
    this.#stageColumns = cols.join(', ');
    this.#insertSql = `INSERT INTO esp_telemetry (${this.#stageColumns})
      SELECT ${this.#stageColumns} FROM esp_stage ORDER BY well_id, ts
      ON CONFLICT (well_id, ts) DO NOTHING`;
    const conflictExpr = channelCols.map((c) => `COALESCE((s.${c} <> t.${c})::int, 0)`).join(' + ') || '0';
    const fillable = [
      ...channelCols.map((c) => `(t.${c} IS NULL AND s.${c} IS NOT NULL)`),
      `(t.seq IS NULL AND s.seq IS NOT NULL)`,
      `(s.extra IS NOT NULL AND (t.extra IS NULL OR NOT t.extra ?& ARRAY(SELECT jsonb_object_keys(s.extra))))`,
    ].join(' OR ');
    const sets = [
      ...channelCols.map((c) => `${c} = COALESCE(t.${c}, s.${c})`),
      'seq = COALESCE(t.seq, s.seq)',
      'site = COALESCE(t.site, s.site)',
      `extra = CASE WHEN s.extra IS NULL THEN t.extra ELSE s.extra || COALESCE(t.extra, '{}'::jsonb) END`,
    ].join(', ');
    this.#fillSql = `WITH cmp AS (
        SELECT COALESCE(sum(${conflictExpr}), 0)::bigint AS conflicts
        FROM esp_stage s JOIN esp_telemetry t ON t.well_id = s.well_id AND t.ts = s.ts
      ), upd AS (
        UPDATE esp_telemetry t SET ${sets}
        FROM esp_stage s WHERE t.well_id = s.well_id AND t.ts = s.ts AND (${fillable})
        RETURNING 1
      )
      SELECT (SELECT conflicts FROM cmp) AS conflicts, (SELECT count(*) FROM upd)::bigint AS filled`;
  }

  /**
   * Commits `rows` (unique on (well_id, ts); see mergeByKey) and `rejects` in one transaction.
   * @param signal shutdown's deadline: on abort the write is given up at once (connection
   *   destroyed, whatever the server is doing), so a blocked or hung server cannot hold the stop.
   * @throws the pg / network error, or AbortedError; the transaction is rolled back (or dies with
   *   its connection) and the connection is discarded.
   */
  async write(rows: readonly Reading[], rejects: readonly RejectRow[], signal?: AbortSignal): Promise<WriteResult> {
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
      (client as unknown as { connection?: { stream?: { destroy(e?: Error): void } } }).connection?.stream?.destroy(why);
    };
    const timer = setTimeout(() => discard(new Error(`batch write exceeded ${this.#deadlineMs} ms; connection discarded`)), this.#deadlineMs);
    const onAbort = () => discard(new AbortedError('batch write'));
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      if (!this.#staged.has(client)) {
        await client.query(
          `CREATE TEMP TABLE IF NOT EXISTS esp_stage AS SELECT ${this.#stageColumns} FROM esp_telemetry WITH NO DATA`,
        );
        this.#staged.add(client);
      }
      return (rows.length > 0 && (await this.#fastPath(client, rows, rejects))) || (await this.#stagedPath(client, rows, rejects));
    } catch (err) {
      failure ??= err as Error;
      await client.query('ROLLBACK').catch(() => undefined);
      throw failure === err ? err : Object.assign(failure, { cause: err });
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      // A destroyed client may still emit socket errors (EPIPE): keep listening on it.
      if (!failure) client.off('error', onClientError);
      // A failed connection is destroyed, never returned to the pool.
      client.release(failure);
    }
  }

  /**
   * Fast path: COPY straight into esp_telemetry, as fast as the server can take it. When a key
   * is already stored (23505: a redelivery or a second device of the same well), the
   * transaction is rolled back and undefined returned: the staged path takes over.
   */
  async #fastPath(client: PoolClient, rows: readonly Reading[], rejects: readonly RejectRow[]): Promise<WriteResult | undefined> {
    await client.query('BEGIN');
    try {
      await pipeline(Readable.from(this.#readingLines(rows)), client.query(copyFrom(`COPY esp_telemetry (${this.#stageColumns}) FROM STDIN`)));
    } catch (err) {
      if ((err as { code?: string }).code !== '23505') throw err;
      await client.query('ROLLBACK');
      return undefined;
    }
    await this.#copyRejects(client, rejects);
    await client.query('COMMIT');
    return { inserted: rows.length, duplicates: 0, conflicts: 0, filled: 0 };
  }

  /** Staged path: COPY into the temp table, insert what is new, fill in and count the rest. */
  async #stagedPath(client: PoolClient, rows: readonly Reading[], rejects: readonly RejectRow[]): Promise<WriteResult> {
    await client.query('BEGIN');
    let result: WriteResult = { inserted: 0, duplicates: 0, conflicts: 0, filled: 0 };
    if (rows.length > 0) {
      await client.query('TRUNCATE esp_stage');
      await pipeline(Readable.from(this.#readingLines(rows)), client.query(copyFrom(`COPY esp_stage (${this.#stageColumns}) FROM STDIN`)));
      const ins = await client.query(this.#insertSql);
      const inserted = ins.rowCount ?? 0;
      result = { inserted, duplicates: rows.length - inserted, conflicts: 0, filled: 0 };
      if (inserted < rows.length) {
        const fill = await client.query<{ conflicts: string; filled: string }>(this.#fillSql);
        result = { ...result, conflicts: Number(fill.rows[0]?.conflicts ?? 0), filled: Number(fill.rows[0]?.filled ?? 0) };
      }
    }
    await this.#copyRejects(client, rejects);
    await client.query('COMMIT');
    return result;
  }

  async #copyRejects(client: PoolClient, rejects: readonly RejectRow[]): Promise<void> {
    if (rejects.length === 0) return;
    await pipeline(
      Readable.from(rejectLines(rejects)),
      client.query(copyFrom('COPY rejected_messages (received_at, topic, well_id, reason, detail, reading_index, payload) FROM STDIN')),
    );
  }

  *#readingLines(rows: readonly Reading[]): Generator<string> {
    const n = this.#catalog.length;
    let chunk = '';
    for (const r of rows) {
      let line = `${copyTimestampUs(r.tsUs)}\t${copyText(r.wellId)}\t${copyText(r.site)}\t${copyInt(r.seq)}\t${copyJson(r.extra)}`;
      for (let i = 0; i < n; i++) line += `\t${copyFloat(r.values[i] ?? null)}`;
      chunk += `${line}\n`;
      if (chunk.length > 64 * 1024) {
        yield chunk;
        chunk = '';
      }
    }
    if (chunk) yield chunk;
  }
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
    if (signal.aborted) pending.then((c) => c.release(), () => undefined);
    throw err;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

function* rejectLines(rejects: readonly RejectRow[]): Generator<string> {
  for (const r of rejects) {
    yield [
      copyTimestampUs(r.receivedAtMs * 1000),
      copyText(r.topic),
      copyText(r.wellId),
      copyText(r.reason),
      copyText(r.detail),
      copyInt(r.index),
      copyBytea(r.payload),
    ].join('\t') + '\n';
  }
}
