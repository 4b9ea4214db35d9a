// Decode: the bytes of one MQTT message → typed readings and rejections with reason codes.
// Pure (no I/O, no clock: the receive time is passed in). Every reading in a payload ends up
// either in `readings` or in `rejections`; nothing is dropped without a count.
import { z } from 'zod';
import type { Channel } from './catalog.ts';

/** Why a reading or message was refused; stored in `rejected_messages.reason`. */
export type RejectReason =
  | 'payload_too_large'
  | 'invalid_utf8'
  | 'invalid_json'
  | 'not_a_reading'
  | 'empty_batch'
  | 'missing_ts'
  | 'invalid_ts'
  | 'ts_without_zone'
  | 'ts_out_of_range'
  | 'invalid_seq'
  | 'non_finite_number'
  | 'type_mismatch'
  | 'out_of_range'
  | 'unknown_field'
  | 'invalid_text'
  | 'no_channels'
  | 'topic_mismatch'
  | 'db_rejected';

/** One validated reading of one well at one instant. */
export interface Reading {
  readonly wellId: string;
  readonly site: string | null;
  /** Device time, microseconds since the Unix epoch (UTC). */
  readonly tsUs: number;
  readonly seq: number | null;
  /** Channel values aligned with the catalog (index i ↔ catalog[i]); null = not reported. */
  readonly values: (number | null)[];
  /** Fields not in the catalog (policy `keep`), or null when there were none. */
  readonly extra: Record<string, unknown> | null;
}

/** One refused reading (`index` into a JSON array) or a whole message (`index` null). */
export interface Rejection {
  readonly reason: RejectReason;
  /** What was wrong and where, for a person: e.g. `motor_current_a: "12.5" is a string`. */
  readonly detail: string;
  readonly index: number | null;
}

export interface Decoded {
  readonly readings: Reading[];
  readonly rejections: Rejection[];
  /** Unknown fields discarded under policy `drop` (counted, never silent). */
  readonly droppedFields: number;
}

export interface DecodeOptions {
  readonly catalog: readonly Channel[];
  readonly unknownFields: 'keep' | 'reject' | 'drop';
  readonly messageMaxBytes: number;
  /** Earliest accepted device time, ms since epoch. */
  readonly tsMinMs: number;
  /** How far past `receivedAtMs` a device time may be, ms. */
  readonly tsMaxFutureMs: number;
}

export interface Source {
  readonly wellId: string;
  readonly site: string | null;
  readonly receivedAtMs: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

// ISO-8601 date-time with a mandatory zone (Z or ±hh:mm / ±hhmm), fraction up to 9 digits.
const ISO_RE = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|z|[+-]\d{2}:?\d{2})?$/;

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

// The reserved keys of a reading; parsed on a two-key pick so zod does not copy every channel.
const Envelope = z.object({
  ts: z.union([z.string(), z.number()], {
    error: (iss) => (iss.input === undefined ? 'missing_ts' : 'invalid_ts'),
  }),
  seq: z
    .number({ error: 'invalid_seq' })
    .int({ error: 'invalid_seq' })
    .min(0, { error: 'invalid_seq' })
    .max(Number.MAX_SAFE_INTEGER, { error: 'invalid_seq' })
    .nullish(),
});

type TsResult = { ok: true; us: number } | { ok: false; reason: RejectReason; detail: string };

/**
 * Parses a device timestamp: ISO-8601 with `Z` or an offset, or integer epoch milliseconds.
 * Fractions below a microsecond are truncated.
 */
export function parseTimestamp(ts: string | number): TsResult {
  if (typeof ts === 'number') {
    if (!Number.isFinite(ts)) return { ok: false, reason: 'non_finite_number', detail: `ts: ${ts} is not finite` };
    if (!Number.isInteger(ts)) return { ok: false, reason: 'invalid_ts', detail: `ts: ${ts} is not an integer count of epoch milliseconds` };
    return { ok: true, us: ts * 1000 };
  }
  const m = ISO_RE.exec(ts);
  if (!m) return { ok: false, reason: 'invalid_ts', detail: `ts: ${JSON.stringify(ts).slice(0, 64)} is not ISO-8601 date-time or epoch milliseconds` };
  const [, y, mo, d, h, mi, s = '0', frac = '', zone] = m;
  if (zone === undefined) return { ok: false, reason: 'ts_without_zone', detail: `ts: ${ts} has no zone; add Z or an offset such as +02:00` };
  const year = Number(y), month = Number(mo), day = Number(d), hour = Number(h), minute = Number(mi), second = Number(s);
  const dim = month === 2 && year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : (DAYS_IN_MONTH[month - 1] ?? 0);
  if (month < 1 || month > 12 || day < 1 || day > dim || hour > 23 || minute > 59 || second > 59) {
    return { ok: false, reason: 'invalid_ts', detail: `ts: ${ts} is not a calendar date-time` };
  }
  let offsetMin = 0;
  if (zone !== 'Z' && zone !== 'z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    const oh = Number(digits.slice(0, 2)), om = Number(digits.slice(2));
    // RFC 3339 time-numoffset: hours 00-23, minutes 00-59.
    if (oh > 23 || om > 59) return { ok: false, reason: 'invalid_ts', detail: `ts: ${ts} has an invalid zone offset` };
    offsetMin = sign * (oh * 60 + om);
  }
  // Date.UTC maps years 0-99 to 1900-1999; utcMs does not (and is slower, so only there).
  const ms = (year >= 100 ? Date.UTC(year, month - 1, day, hour, minute, second) : utcMs(year, month - 1, day, hour, minute, second)) - offsetMin * 60_000;
  const us = Number((frac + '000000').slice(0, 6));
  return { ok: true, us: ms * 1000 + us };
}

/** Date.UTC without its mapping of years 0-99 to 1900-1999. */
function utcMs(year: number, monthIndex: number, day: number, hour: number, minute: number, second: number): number {
  const d = new Date(0);
  d.setUTCFullYear(year, monthIndex, day);
  d.setUTCHours(hour, minute, second, 0);
  return d.getTime();
}

/**
 * Decodes one message payload: a JSON reading object, or a non-empty array of them.
 * Reserved keys: `ts` (required), `seq` (optional integer). Other keys are catalog channels
 * (finite JSON numbers within the channel's range; `null` means not reported) or unknown
 * fields handled by the `unknownFields` policy.
 */
export function decodeMessage(payload: Uint8Array, source: Source, opts: DecodeOptions): Decoded {
  const whole = (reason: RejectReason, detail: string): Decoded => ({
    readings: [],
    rejections: [{ reason, detail, index: null }],
    droppedFields: 0,
  });
  if (payload.byteLength > opts.messageMaxBytes) {
    return whole('payload_too_large', `payload is ${payload.byteLength} bytes; MESSAGE_MAX_BYTES is ${opts.messageMaxBytes}`);
  }
  let text: string;
  try {
    text = utf8.decode(payload);
  } catch {
    return whole('invalid_utf8', 'payload is not valid UTF-8');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return whole('invalid_json', `payload is not JSON: ${(err as Error).message}`);
  }
  const items: unknown[] = Array.isArray(json) ? json : [json];
  if (Array.isArray(json) && json.length === 0) return whole('empty_batch', 'payload is an empty JSON array');
  const readings: Reading[] = [];
  const rejections: Rejection[] = [];
  let droppedFields = 0;
  const index = Array.isArray(json) ? (i: number) => i : () => null;
  items.forEach((item, i) => {
    const r = decodeReading(item, source, opts);
    if ('reason' in r) rejections.push({ reason: r.reason, detail: r.detail, index: index(i) });
    else {
      readings.push(r.reading);
      droppedFields += r.droppedFields;
    }
  });
  return { readings, rejections, droppedFields };
}

const columnIndexCache = new WeakMap<readonly Channel[], Map<string, number>>();
function columnIndex(catalog: readonly Channel[]): Map<string, number> {
  let idx = columnIndexCache.get(catalog);
  if (!idx) {
    idx = new Map(catalog.map((c, i) => [c.column, i]));
    columnIndexCache.set(catalog, idx);
  }
  return idx;
}

type ReadingResult = { reading: Reading; droppedFields: number } | { reason: RejectReason; detail: string };

function decodeReading(item: unknown, source: Source, opts: DecodeOptions): ReadingResult {
  if (item === null || typeof item !== 'object' || Array.isArray(item)) {
    return { reason: 'not_a_reading', detail: `expected a JSON object with "ts", got ${item === null ? 'null' : Array.isArray(item) ? 'an array' : typeof item}` };
  }
  const fields = item as Record<string, unknown>;
  const env = Envelope.safeParse({ ts: fields.ts, seq: fields.seq });
  if (!env.success) {
    const issue = env.error.issues[0]!;
    return { reason: issue.message as RejectReason, detail: `${issue.path.join('.')}: ${JSON.stringify(fields[String(issue.path[0])])?.slice(0, 64)} is not valid` };
  }
  const ts = parseTimestamp(env.data.ts);
  if (!ts.ok) return ts;
  const tsMs = ts.us / 1000;
  if (tsMs < opts.tsMinMs || tsMs > source.receivedAtMs + opts.tsMaxFutureMs) {
    const hint = typeof env.data.ts === 'number' && env.data.ts < 1e11 ? ' (looks like epoch seconds; send milliseconds)' : '';
    const shown = Math.abs(tsMs) <= 8.64e15 ? new Date(tsMs).toISOString() : String(env.data.ts);
    return {
      reason: 'ts_out_of_range',
      detail: `ts: ${shown} is outside [${new Date(opts.tsMinMs).toISOString()}, receive time + ${opts.tsMaxFutureMs / 1000} s]${hint}`,
    };
  }
  const catalog = opts.catalog;
  const cols = columnIndex(catalog);
  const values: (number | null)[] = new Array<number | null>(catalog.length).fill(null);
  let extra: Record<string, unknown> | null = null;
  let droppedFields = 0;
  let channels = 0;
  for (const [key, value] of Object.entries(item)) {
    if (key === 'ts' || key === 'seq') continue;
    const ci = cols.get(key);
    if (ci === undefined) {
      if (opts.unknownFields === 'reject') return { reason: 'unknown_field', detail: `${key}: not in the channel catalog (UNKNOWN_FIELDS=reject)` };
      if (opts.unknownFields === 'drop') {
        droppedFields++;
        continue;
      }
      if (hasNul(key) || hasNul(value)) return { reason: 'invalid_text', detail: `${key.slice(0, 64)}: contains U+0000, which PostgreSQL jsonb cannot store` };
      // defineProperty, not assignment: a "__proto__" key would otherwise set the prototype and vanish.
      Object.defineProperty((extra ??= {}), key, { value, enumerable: true, writable: true, configurable: true });
      continue;
    }
    if (value === null) continue;
    if (typeof value !== 'number') {
      return { reason: 'type_mismatch', detail: `${key}: ${JSON.stringify(value).slice(0, 64)} is a ${typeof value}, expected a JSON number` };
    }
    if (!Number.isFinite(value)) return { reason: 'non_finite_number', detail: `${key}: ${value} is not finite` };
    const ch = catalog[ci]!;
    if (value < ch.min || value > ch.max) {
      return { reason: 'out_of_range', detail: `${key}: ${value} ${ch.unit} is outside the plausible range [${ch.min}, ${ch.max}]` };
    }
    values[ci] = value;
    channels++;
  }
  if (channels === 0 && extra === null) return { reason: 'no_channels', detail: 'the reading carries no channel value' };
  return {
    reading: { wellId: source.wellId, site: source.site, tsUs: ts.us, seq: env.data.seq ?? null, values, extra },
    droppedFields,
  };
}

function hasNul(v: unknown): boolean {
  if (typeof v === 'string') return v.includes('\u0000');
  if (v && typeof v === 'object') return Object.entries(v).some(([k, x]) => k.includes('\u0000') || hasNul(x));
  return false;
}
