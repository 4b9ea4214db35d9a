// COPY binary format of readings (PostgreSQL docs, "COPY", File Formats → Binary Format): a
// header, then per row a field count and each field as a length and its bytes in the type's
// binary (send/recv) form, then a trailer. A float8 is its 8 IEEE 754 bytes and a timestamptz
// 8 bytes of microseconds since 2000-01-01: nothing is formatted as text on our side, nor parsed
// from text on the server's. Pure; the column types it writes are checked at start
// (writer.ts: binaryCopyProblem), else the sink writes the text format.
import type { Reading } from '../decode/decode.ts';
import { writeUtf8 } from './copy-encode.ts';

/** Signature, flags (no OIDs), header extension length. */
const HEADER = Buffer.from([0x50, 0x47, 0x43, 0x4f, 0x50, 0x59, 0x0a, 0xff, 0x0d, 0x0a, 0x00, 0, 0, 0, 0, 0, 0, 0, 0]);
/** A field count of -1 ends the data. */
const TRAILER = Buffer.from([0xff, 0xff]);
/** The PostgreSQL epoch, 2000-01-01T00:00:00Z, in µs since the Unix epoch. */
const PG_EPOCH_US = 946_684_800_000_000;
const CHUNK_BYTES = 64 * 1024;
const TWO_32 = 2 ** 32;

/**
 * COPY binary data of readings for `copyTarget`'s columns: ts, well_id, site, seq, extra and the
 * catalog channels at `channels`, in Buffers of about 64 KiB (each new; pg-copy-streams keeps a
 * chunk until it is sent). The first holds the header, the last the trailer.
 * @throws RangeError on a non-finite channel value (as the text encoder does).
 */
export function* binaryReadingChunks(rows: readonly Reading[], channels: readonly number[]): Generator<Buffer> {
  const fieldCount = 5 + channels.length;
  let buf = Buffer.allocUnsafe(CHUNK_BYTES);
  let pos = HEADER.copy(buf, 0);
  let wellId: string | undefined;
  let site: string | null | undefined;
  /** well_id and site as length-prefixed fields, made once per run of a well's rows. */
  let ids = Buffer.alloc(0);
  for (const r of rows) {
    if (r.wellId !== wellId || r.site !== site) {
      wellId = r.wellId;
      site = r.site;
      ids = Buffer.concat([textField(wellId), textField(site)]);
    }
    const extra = r.extra === null ? undefined : JSON.stringify(r.extra);
    // An upper bound of the row's bytes (UTF-8 takes at most 3 bytes per UTF-16 unit).
    const bound = 2 + 12 + ids.length + 12 + (extra === undefined ? 4 : 5 + 3 * extra.length) + 12 * channels.length;
    if (pos + bound > buf.length) {
      yield buf.subarray(0, pos);
      buf = Buffer.allocUnsafe(Math.max(CHUNK_BYTES, bound + TRAILER.length));
      pos = 0;
    }
    pos = buf.writeInt16BE(fieldCount, pos);
    pos = buf.writeInt32BE(8, pos);
    pos = writeInt64(buf, pos, r.tsUs - PG_EPOCH_US);
    pos += ids.copy(buf, pos);
    if (r.seq === null) pos = buf.writeInt32BE(-1, pos);
    else {
      pos = buf.writeInt32BE(8, pos);
      pos = writeInt64(buf, pos, r.seq);
    }
    if (extra === undefined) pos = buf.writeInt32BE(-1, pos);
    else {
      // jsonb's binary form: a version byte (1), then the JSON text.
      const lengthAt = pos;
      buf[pos + 4] = 1;
      const end = writeUtf8(buf, pos + 5, extra);
      buf.writeInt32BE(end - lengthAt - 4, lengthAt);
      pos = end;
    }
    const positions = r.layout.positions;
    const values = r.values;
    for (let c = 0; c < channels.length; c++) {
      const at = positions[channels[c]!];
      if (at === undefined || at < 0) pos = buf.writeInt32BE(-1, pos);
      else {
        const v = values[at]!;
        if (!Number.isFinite(v)) throw new RangeError(`non-finite number ${v} cannot be stored`);
        pos = buf.writeInt32BE(8, pos);
        // -0 as 0, as the text format writes it (String(-0) is "0").
        pos = buf.writeDoubleBE(v === 0 ? 0 : v, pos);
      }
    }
  }
  if (pos + TRAILER.length > buf.length) {
    yield buf.subarray(0, pos);
    buf = Buffer.allocUnsafe(TRAILER.length);
    pos = 0;
  }
  pos += TRAILER.copy(buf, pos);
  yield buf.subarray(0, pos);
}

/** A text field: length and UTF-8 bytes, or -1 for NULL. */
function textField(text: string | null): Buffer {
  if (text === null) return Buffer.from([0xff, 0xff, 0xff, 0xff]);
  const bytes = Buffer.from(text, 'utf8');
  const field = Buffer.allocUnsafe(4 + bytes.length);
  field.writeInt32BE(bytes.length, 0);
  bytes.copy(field, 4);
  return field;
}

/** A signed 64-bit big-endian integer from a safe integer. @returns the position after it. */
function writeInt64(buf: Buffer, pos: number, value: number): number {
  const high = Math.floor(value / TWO_32);
  buf.writeInt32BE(high, pos);
  buf.writeUInt32BE(value - high * TWO_32, pos + 4);
  return pos + 8;
}
