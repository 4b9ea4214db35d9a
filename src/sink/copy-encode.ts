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
 * Runs once per stored reading: the calendar date is computed (Hinnant's civil_from_days,
 * http://howardhinnant.github.io/date_algorithms.html) rather than through a Date and its
 * toISOString, which cost an object and a longer string per reading. Years outside 0–9999 go
 * through toISOString (its expanded-year form).
 */
export function copyTimestampUs(us: number): string {
  const s = Math.floor(us / 1_000_000);
  const fraction = us - s * 1_000_000;
  const days = Math.floor(s / 86_400);
  const secondOfDay = s - days * 86_400;
  // civil_from_days: days since 1970-01-01 → proleptic Gregorian year, month, day.
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  const year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  if (year < 0 || year > 9999) {
    const ms = Math.floor(us / 1000);
    return `${new Date(ms).toISOString().slice(0, -5)}.${String(fraction).padStart(6, '0')}Z`;
  }
  const hour = Math.floor(secondOfDay / 3600);
  const minute = Math.floor((secondOfDay - hour * 3600) / 60);
  const second = secondOfDay - hour * 3600 - minute * 60;
  return `${pad4(year)}-${TWO_DIGITS[month]}-${TWO_DIGITS[day]}T${TWO_DIGITS[hour]}:${TWO_DIGITS[minute]}:${TWO_DIGITS[second]}.${pad6(fraction)}Z`;
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
  return value === null || value === undefined ? COPY_NULL : copyText(JSON.stringify(value));
}

/** A bytea value in hex form (`\x…`), its backslash escaped for the text format. */
export function copyBytea(bytes: Uint8Array): string {
  return `\\\\x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')}`;
}
