// COPY text-format encoding of field values (PostgreSQL docs, "COPY", File Formats → Text
// Format). Pure; the sink joins fields with tabs and rows with newlines.

/** NULL marker of the text format. */
export const COPY_NULL = '\\N';

/**
 * Escapes a text value: backslash, tab, newline and carriage return become `\\`, `\t`, `\n`,
 * `\r`, so a literal `\N` survives as text rather than NULL.
 * @throws RangeError on U+0000, which no PostgreSQL text value can hold.
 */
export function copyText(value: string | null): string {
  if (value === null) return COPY_NULL;
  if (!/[\\\t\n\r\u0000]/.test(value)) return value;
  if (value.includes('\u0000')) throw new RangeError('text contains U+0000, which PostgreSQL cannot store');
  return value.replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'));
}

/** A finite float8 in shortest round-trip form; null → NULL. */
export function copyFloat(value: number | null): string {
  if (value === null) return COPY_NULL;
  if (!Number.isFinite(value)) throw new RangeError(`non-finite number ${value} cannot be stored`);
  return String(value);
}

/** An integer (bigint column); null → NULL. */
export function copyInt(value: number | null): string {
  return value === null ? COPY_NULL : String(value);
}

/**
 * A timestamptz from microseconds since the epoch, as ISO-8601 UTC with six fraction digits.
 * Runs once per stored reading: the calendar date is computed (civilFields) rather than through
 * a Date and its toISOString, which cost an object and a longer string per reading. Years
 * outside 0–9999 go through toISOString (its expanded-year form).
 */
export function copyTimestampUs(us: number): string {
  const f = civilFields(us);
  if (f === undefined) return expandedYear(us);
  return `${pad4(f[0]!)}-${TWO_DIGITS[f[1]!]}-${TWO_DIGITS[f[2]!]}T${TWO_DIGITS[f[3]!]}:${TWO_DIGITS[f[4]!]}:${TWO_DIGITS[f[5]!]}.${pad6(f[6]!)}Z`;
}

/**
 * copyTimestampUs's text written as bytes into `buf` at `pos` (27 bytes for years 0–9999, at
 * most 30 otherwise), with no string made. @returns the position after it.
 */
export function writeTimestampUs(buf: Buffer, pos: number, us: number): number {
  const f = civilFields(us);
  if (f === undefined) return pos + buf.write(expandedYear(us), pos, 'latin1');
  pos = writeDigits(buf, pos, f[0]!, 4);
  buf[pos++] = 0x2d;
  pos = writeDigits(buf, pos, f[1]!, 2);
  buf[pos++] = 0x2d;
  pos = writeDigits(buf, pos, f[2]!, 2);
  buf[pos++] = 0x54;
  pos = writeDigits(buf, pos, f[3]!, 2);
  buf[pos++] = 0x3a;
  pos = writeDigits(buf, pos, f[4]!, 2);
  buf[pos++] = 0x3a;
  pos = writeDigits(buf, pos, f[5]!, 2);
  buf[pos++] = 0x2e;
  pos = writeDigits(buf, pos, f[6]!, 6);
  buf[pos++] = 0x5a;
  return pos;
}

/** Longest text writeTimestampUs writes, in bytes. */
export const TIMESTAMP_MAX_BYTES = 30;

/** civilFields' output: year, month, day, hour, minute, second, microsecond (reused, never kept). */
const FIELDS = new Int32Array(7);

/**
 * The UTC calendar fields of an instant, by Hinnant's civil_from_days
 * (http://howardhinnant.github.io/date_algorithms.html), into a shared array read at once.
 * @returns undefined for years outside 0–9999.
 */
function civilFields(us: number): Int32Array | undefined {
  const s = Math.floor(us / 1_000_000);
  const days = Math.floor(s / 86_400);
  const secondOfDay = s - days * 86_400;
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const month = mp < 10 ? mp + 3 : mp - 9;
  const year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  if (year < 0 || year > 9999) return undefined;
  const hour = Math.floor(secondOfDay / 3600);
  const minute = Math.floor((secondOfDay - hour * 3600) / 60);
  FIELDS[0] = year;
  FIELDS[1] = month;
  FIELDS[2] = doy - Math.floor((153 * mp + 2) / 5) + 1;
  FIELDS[3] = hour;
  FIELDS[4] = minute;
  FIELDS[5] = secondOfDay - hour * 3600 - minute * 60;
  FIELDS[6] = us - s * 1_000_000;
  return FIELDS;
}

/** The toISOString form with six fraction digits, for years outside 0–9999 (`+010000-…`, `-000001-…`). */
function expandedYear(us: number): string {
  const ms = Math.floor(us / 1000);
  const micro = us - Math.floor(us / 1_000_000) * 1_000_000;
  return `${new Date(ms).toISOString().slice(0, -5)}.${String(micro).padStart(6, '0')}Z`;
}

/** Writes `value` as exactly `width` decimal digits. @returns the position after them. */
function writeDigits(buf: Buffer, pos: number, value: number, width: number): number {
  for (let i = pos + width - 1; i >= pos; i--) {
    buf[i] = 0x30 + (value % 10);
    value = Math.floor(value / 10);
  }
  return pos + width;
}

/** "00" … "99". */
const TWO_DIGITS = Array.from({ length: 100 }, (_, i) => String(i).padStart(2, '0'));

function pad4(n: number): string {
  return n >= 1000 ? String(n) : String(n).padStart(4, '0');
}

function pad6(n: number): string {
  return n >= 100_000 ? String(n) : String(n).padStart(6, '0');
}

/** A jsonb value; null → NULL. */
export function copyJson(value: unknown): string {
  if (value === null || value === undefined) return COPY_NULL;
  // JSON.stringify escapes every control character with a backslash: a backslash is all the text
  // format needs escaped, and mostly there is none.
  const json = JSON.stringify(value);
  return json.includes('\\') ? copyText(json) : json;
}

/** A bytea value in hex form (`\x…`), its backslash escaped for the text format. */
export function copyBytea(bytes: Uint8Array): string {
  return `\\\\x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')}`;
}

/** Writes a string as UTF-8: byte by byte while it is ASCII, the rest through Buffer#write. @returns the position after it. */
export function writeUtf8(buf: Buffer, pos: number, text: string): number {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x80) return pos + buf.write(text.slice(i), pos, 'utf8');
    buf[pos++] = c;
  }
  return pos;
}
