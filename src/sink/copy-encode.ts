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

/** A timestamptz from microseconds since the epoch, as ISO-8601 UTC with six fraction digits. */
export function copyTimestampUs(us: number): string {
  const ms = Math.floor(us / 1000);
  const micros = us - ms * 1000;
  const iso = new Date(ms).toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ
  return `${iso.slice(0, 23)}${String(micros).padStart(3, '0')}Z`;
}

/** A jsonb value; null → NULL. */
export function copyJson(value: unknown): string {
  return value === null || value === undefined ? COPY_NULL : copyText(JSON.stringify(value));
}

/** A bytea value in hex form (`\x…`), its backslash escaped for the text format. */
export function copyBytea(bytes: Uint8Array): string {
  return `\\\\x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')}`;
}
