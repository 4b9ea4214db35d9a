// The sink's SQL and COPY text, pure: every statement one batch transaction runs (writer.ts), built
// once per channel catalog. Exported so the licensed-TimescaleDB tests (PGlite) run exactly the
// statements and bytes the service sends.
import type { Channel } from '../decode/catalog.ts';
import type { Reading } from '../decode/decode.ts';
import type { RejectRow } from '../decode/work.ts';
import {
  COPY_NULL,
  copyBytea,
  copyFloat,
  copyInt,
  copyJson,
  copyText,
  copyTimestampUs,
  TIMESTAMP_MAX_BYTES,
  writeTimestampUs,
  writeUtf8,
} from './copy-encode.ts';

/**
 * TimescaleDB's bound on tuples one DML statement may decompress (default 100000; past it SQLSTATE
 * 53400). `SET LOCAL` lifts it for one transaction only: the committer's fallback for a single
 * reading that still exceeds it after splitting (see committer.ts). A placeholder setting, harmless
 * on a server without TimescaleDB.
 */
export const LIFT_DECOMPRESSION_LIMIT = 'SET LOCAL timescaledb.max_tuples_decompressed_per_dml_transaction = 0';

/**
 * Every statement of a batch transaction. `$1` (text[] of well ids), `$2`, `$3` (timestamptz,
 * inclusive) bound the keys a statement may touch in esp_telemetry: constants TimescaleDB uses to
 * exclude chunks and to decompress only the compressed batches of those wells that overlap that
 * time range (a join condition alone decompresses every batch of the chunk).
 */
export interface WriterSql {
  /** `ts, well_id, site, seq, extra, <channel columns>`: the COPY and stage column order. */
  readonly columns: string;
  /** Session temp table, same columns as esp_telemetry's COPY columns; created once per connection. */
  readonly createStage: string;
  readonly truncateStage: string;
  /** COPY targets (`<table> (<columns>)`), for `COPY <target> FROM STDIN`, every channel. */
  readonly telemetryCopyTarget: string;
  readonly stageCopyTarget: string;
  /**
   * A batch's COPY target: `ts, well_id, site, seq, extra` and only the channels at `channels`
   * (catalog indices, ascending; see usedChannels), the order readingLines writes them.
   */
  copyTarget(table: 'esp_telemetry' | 'esp_stage', channels: readonly number[]): string;
  readonly rejectCopyTarget: string;
  /**
   * Inserts staged keys not yet stored. The anti-join leaves ON CONFLICT only a concurrent writer
   * to absorb, so no row depends on how a server handles the first conflict of a statement
   * (timescaledb #7672: rows after it were skipped on compressed chunks before 2.18.1).
   * Params: batch bounds. Row count = new rows.
   */
  readonly insertFromStage: string;
  /**
   * Read-only comparison of staged rows with the stored rows of the same key. One row:
   * `conflicts` (channel values that disagree), `fillable` (stored rows missing something the
   * staged row has), `fill_wells` (text[] or NULL), `fill_from_us` / `fill_to_us` (their time range,
   * µs since the epoch, as text). Params: batch bounds.
   */
  readonly compareStage: string;
  /**
   * Fills channels, seq, extra keys the stored row lacks; never overwrites a stored value.
   * Params: the bounds of the fillable rows from compareStage. Row count = rows filled.
   */
  readonly fillFromStage: string;
}

/** Builds the statements for `catalog` (column names validated by catalogProblems). */
export function writerSql(catalog: readonly Channel[]): WriterSql {
  const channelCols = catalog.map((c) => c.column);
  const columns = ['ts', 'well_id', 'site', 'seq', 'extra', ...channelCols].join(', ');
  const bounds = (alias: string) => `${alias}.well_id = ANY($1::text[]) AND ${alias}.ts >= $2::timestamptz AND ${alias}.ts <= $3::timestamptz`;
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
  const epochUs = (agg: string) => `(extract(epoch FROM ${agg}(c.ts) FILTER (WHERE c.fillable)) * 1000000)::bigint::text`;
  return {
    columns,
    createStage: `CREATE TEMP TABLE IF NOT EXISTS esp_stage AS SELECT ${columns} FROM esp_telemetry WITH NO DATA`,
    truncateStage: 'TRUNCATE esp_stage',
    telemetryCopyTarget: `esp_telemetry (${columns})`,
    stageCopyTarget: `esp_stage (${columns})`,
    copyTarget: (table, channels) => `${table} (ts, well_id, site, seq, extra${channels.map((i) => `, ${channelCols[i]}`).join('')})`,
    rejectCopyTarget: 'rejected_messages (received_at, topic, well_id, reason, detail, reading_index, payload)',
    insertFromStage: `INSERT INTO esp_telemetry (${columns})
      SELECT ${columns} FROM esp_stage s
      WHERE NOT EXISTS (SELECT 1 FROM esp_telemetry t WHERE t.well_id = s.well_id AND t.ts = s.ts AND ${bounds('t')})
      ORDER BY well_id, ts
      ON CONFLICT (well_id, ts) DO NOTHING`,
    compareStage: `SELECT COALESCE(sum(c.conflicts), 0)::bigint::text AS conflicts,
        count(*) FILTER (WHERE c.fillable)::bigint::text AS fillable,
        array_agg(DISTINCT c.well_id) FILTER (WHERE c.fillable) AS fill_wells,
        ${epochUs('min')} AS fill_from_us, ${epochUs('max')} AS fill_to_us
      FROM (SELECT s.well_id, s.ts, (${conflictExpr}) AS conflicts, (${fillable}) AS fillable
            FROM esp_stage s JOIN esp_telemetry t ON t.well_id = s.well_id AND t.ts = s.ts
            WHERE ${bounds('t')}) c`,
    fillFromStage: `UPDATE esp_telemetry t SET ${sets}
      FROM esp_stage s
      WHERE t.well_id = s.well_id AND t.ts = s.ts AND (${fillable}) AND ${bounds('t')}`,
  };
}

/** Parameters `$1..$3` of the bounded statements: the wells and the inclusive time range. */
type KeyBounds = [wells: string[], fromTs: string, toTs: string];

/** @returns the bounds of `rows` (non-empty), timestamps as ISO-8601 UTC with microseconds. */
export function keyBounds(rows: readonly Pick<Reading, 'wellId' | 'tsUs'>[]): KeyBounds {
  const wells = new Set<string>();
  let from = Infinity;
  let to = -Infinity;
  for (const r of rows) {
    wells.add(r.wellId);
    if (r.tsUs < from) from = r.tsUs;
    if (r.tsUs > to) to = r.tsUs;
  }
  if (wells.size === 0) throw new RangeError('keyBounds of no rows');
  return [[...wells].sort(), copyTimestampUs(from), copyTimestampUs(to)];
}

/**
 * Catalog indices of the channels some reading of `rows` has a value for, ascending: a batch of
 * wells that report 8 of the catalog's 21 channels is copied with 8 channel columns, not 21
 * (the server parses 13 fewer fields per row, and the client encodes 13 fewer).
 */
export function usedChannels(rows: readonly Reading[], channelCount: number): number[] {
  const used = new Uint8Array(channelCount);
  let count = 0;
  // Readings of one channel set share a layout: each layout looked at once per run of it.
  let last: Reading['layout'] | undefined;
  for (const r of rows) {
    if (r.layout === last) continue;
    last = r.layout;
    for (const i of last.indexes) {
      if (i < channelCount && used[i] === 0) {
        used[i] = 1;
        if (++count === channelCount) return Array.from(used.keys());
      }
    }
  }
  const out: number[] = [];
  for (let i = 0; i < channelCount; i++) if (used[i] === 1) out.push(i);
  return out;
}

/**
 * COPY text of readings in `columns` order (or, given `channels`, in copyTarget's order for
 * them), as strings of about 64 KiB (readingChunks decoded; for tests and the benchmark).
 * @throws RangeError from the encoders (U+0000 in text, a non-finite number).
 */
export function* readingLines(rows: readonly Reading[], channels: number | readonly number[]): Generator<string> {
  for (const chunk of readingChunks(rows, channels)) yield chunk.toString('utf8');
}

/** Bytes per COPY chunk the encoder fills before it yields. */
const CHUNK_BYTES = 64 * 1024;
/** Longest text of a float8 String() writes (`-1.2345678901234567e-308`), with its tab. */
const FLOAT_MAX_BYTES = 25;

/**
 * COPY text of readings, encoded straight into Buffers of about 64 KiB, each a whole number of
 * lines and each new (pg-copy-streams keeps a chunk until it is sent). The timestamp's digits
 * are written as bytes and a well's encoded id and site once per run of its rows: a value's
 * text is the only string made per field. Same text as copyText / copyFloat / copyJson give.
 * @param channels the catalog length (every channel, `columns` order), or the catalog indices
 *   to write (copyTarget's order for them).
 * @throws RangeError from the encoders (U+0000 in text, a non-finite number).
 */
export function* readingChunks(rows: readonly Reading[], channels: number | readonly number[]): Generator<Buffer> {
  const columns = typeof channels === 'number' ? Array.from({ length: channels }, (_, i) => i) : channels;
  const n = columns.length;
  let buf = Buffer.allocUnsafe(CHUNK_BYTES);
  let pos = 0;
  let wellId: string | undefined;
  let site: string | null | undefined;
  let prefix = Buffer.alloc(0);
  for (const r of rows) {
    if (r.wellId !== wellId || r.site !== site) {
      wellId = r.wellId;
      site = r.site;
      prefix = Buffer.from(`\t${copyText(wellId)}\t${copyText(site)}\t`, 'utf8');
    }
    const extra = r.extra === null ? undefined : copyJson(r.extra);
    // An upper bound of the line's bytes (UTF-8 takes at most 3 bytes per UTF-16 unit): a line is
    // never split across chunks.
    const bound = TIMESTAMP_MAX_BYTES + prefix.length + 20 + (extra === undefined ? 3 : 1 + 3 * extra.length) + n * FLOAT_MAX_BYTES + 1;
    if (pos + bound > buf.length) {
      if (pos > 0) yield buf.subarray(0, pos);
      buf = Buffer.allocUnsafe(Math.max(CHUNK_BYTES, bound));
      pos = 0;
    }
    pos = writeTimestampUs(buf, pos, r.tsUs);
    pos += prefix.copy(buf, pos);
    pos = writeUtf8(buf, pos, r.seq === null ? COPY_NULL : String(r.seq));
    buf[pos++] = TAB;
    pos = extra === undefined ? writeUtf8(buf, pos, COPY_NULL) : writeUtf8(buf, pos, extra);
    const positions = r.layout.positions;
    const values = r.values;
    for (let c = 0; c < n; c++) {
      const at = positions[columns[c]!];
      buf[pos++] = TAB;
      pos = writeUtf8(buf, pos, at === undefined || at < 0 ? COPY_NULL : copyFloat(values[at]!));
    }
    buf[pos++] = NEWLINE;
  }
  if (pos > 0) yield buf.subarray(0, pos);
}

const TAB = 0x09;
const NEWLINE = 0x0a;

/** COPY text of rejections, one line each, in `rejectCopyTarget` column order. */
export function* rejectLines(rejects: readonly RejectRow[]): Generator<string> {
  for (const r of rejects) {
    const fields = [
      copyTimestampUs(r.receivedAtMs * 1000),
      copyText(r.topic),
      copyText(r.wellId),
      copyText(r.reason),
      copyText(r.detail),
      copyInt(r.index),
      copyBytea(r.payload),
    ];
    yield `${fields.join('\t')}\n`;
  }
}
