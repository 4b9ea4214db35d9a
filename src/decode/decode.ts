// Decode: the bytes of one MQTT message → typed readings and rejections with reason codes.
// Pure (no I/O, no clock: the receive time is passed in). Every reading in a payload ends up
// either in `readings` or in `rejections`; nothing is dropped without a count.
import { isUtf8 } from 'node:buffer';
import type { Channel } from './catalog.ts';
import { type ChannelLayout, channelLayout } from './channels.ts';

/** Why a reading or message was refused; stored in `rejected_messages.reason`. */
export type RejectReason =
  | 'payload_too_large'
  | 'invalid_utf8'
  | 'invalid_json'
  | 'not_a_reading'
  | 'empty_batch'
  | 'missing_ts'
  | 'retained_without_ts'
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
  | 'too_many_readings'
  | 'invalid_well_id'
  | 'well_id_mismatch'
  | 'db_rejected';

/** Every reason code, in the order docs/payload.md lists them; the `reason` label's whole set. */
export const REJECT_REASONS: readonly RejectReason[] = [
  'payload_too_large',
  'invalid_utf8',
  'invalid_json',
  'empty_batch',
  'too_many_readings',
  'not_a_reading',
  'missing_ts',
  'retained_without_ts',
  'invalid_ts',
  'ts_without_zone',
  'ts_out_of_range',
  'invalid_seq',
  'non_finite_number',
  'type_mismatch',
  'out_of_range',
  'unknown_field',
  'invalid_text',
  'no_channels',
  'topic_mismatch',
  'invalid_well_id',
  'well_id_mismatch',
  'db_rejected',
];

/** One validated reading of one well at one instant. */
export interface Reading {
  readonly wellId: string;
  readonly site: string | null;
  /** Device time, microseconds since the Unix epoch (UTC). */
  readonly tsUs: number;
  readonly seq: number | null;
  /** Which catalog channels it carries (shared by every reading with the same set; see channels.ts). */
  readonly layout: ChannelLayout;
  /** Their values, in `layout.indexes` order: finite numbers (channelValue gives one by catalog index). */
  readonly values: number[];
  /** Fields not in the catalog (policy `keep`), or null when there were none. */
  readonly extra: Record<string, unknown> | null;
}

/** One refused reading (`index` into a JSON array) or a whole message (`index` null). */
export interface Rejection {
  readonly reason: RejectReason;
  /** What was wrong and where, for a person: e.g. `motor_current_a: "12.5" is a string`. */
  readonly detail: string;
  readonly index: number | null;
  /** The refused element of an array payload, as parsed (absent for a whole message). */
  readonly item?: unknown;
}

export interface Decoded {
  readonly readings: Reading[];
  readonly rejections: Rejection[];
  /** Unknown fields discarded under policy `drop` (counted, never silent). */
  readonly droppedFields: number;
  /** Channel values sent as numeric strings (`"12.5"`) and stored as numbers, in stored readings. */
  readonly coercedValues: number;
}

/** Unit of an integer epoch `ts` (TS_EPOCH_UNIT). */
export type EpochUnit = 's' | 'ms' | 'us';

export interface DecodeOptions {
  readonly catalog: readonly Channel[];
  readonly unknownFields: 'keep' | 'reject' | 'drop';
  readonly messageMaxBytes: number;
  /** Earliest accepted device time, ms since epoch. */
  readonly tsMinMs: number;
  /** How far past `receivedAtMs` a device time may be, ms. */
  readonly tsMaxFutureMs: number;
  /** Unit of an integer epoch `ts`; default `ms`. */
  readonly tsEpochUnit?: EpochUnit;
  /** A reading without `ts`: `reject` (`missing_ts`, default) or `stamp` it with the receive time, marked `extra.ts_source = "receive_time"`. */
  readonly missingTs?: 'reject' | 'stamp';
  /** Most readings one message may carry; more is `too_many_readings`. Default 10,000. */
  readonly maxReadings?: number;
  /** Characters a well id or site may hold (WELL_ID_CHARS; default topic.ts DEFAULT_ID_CHARS). */
  readonly wellIdChars?: string;
}

export interface Source {
  readonly wellId: string;
  readonly site: string | null;
  readonly receivedAtMs: number;
}

// ISO-8601 date-time with a mandatory zone (Z or ±hh:mm / ±hhmm), fraction up to 9 digits.
const ISO_RE = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|z|[+-]\d{2}:?\d{2})?$/;

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

// The reserved keys of a reading, checked by hand: this runs once per reading, up to
// MESSAGE_MAX_READINGS times per message, and a zod parse per reading tripled the decode time
// of a full-size array payload (worst-case budget: 50 ms, test/unit/decode.test.ts). Returns why
// the reading is refused, or undefined.
function envelope(ts: unknown, seq: unknown): { reason: RejectReason; key: 'ts' | 'seq' } | undefined {
  if ((typeof ts !== 'string' && typeof ts !== 'number') || ts === Infinity || ts === -Infinity)
    return { reason: ts === undefined ? 'missing_ts' : 'invalid_ts', key: 'ts' };
  if (seq === undefined || seq === null) return undefined;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) return { reason: 'invalid_seq', key: 'seq' };
  return undefined;
}

type TsResult = { ok: true; us: number } | { ok: false; reason: RejectReason; detail: string };

const US_PER_UNIT: Record<EpochUnit, number> = { s: 1_000_000, ms: 1_000, us: 1 };
const UNIT_NAME: Record<EpochUnit, string> = { s: 'seconds', ms: 'milliseconds', us: 'microseconds' };

/**
 * Parses a device timestamp: ISO-8601 with `Z` or an offset, or an integer epoch count in
 * `unit` (TS_EPOCH_UNIT). Fractions below a microsecond are truncated. Never reads the host's
 * time zone: every calendar computation is UTC.
 */
export function parseTimestamp(ts: string | number, unit: EpochUnit = 'ms'): TsResult {
  if (typeof ts === 'number') {
    if (!Number.isFinite(ts)) return { ok: false, reason: 'non_finite_number', detail: `ts: ${ts} is not finite` };
    if (!Number.isInteger(ts)) return { ok: false, reason: 'invalid_ts', detail: `ts: ${ts} is not an integer count of epoch ${UNIT_NAME[unit]}` };
    return { ok: true, us: ts * US_PER_UNIT[unit] };
  }
  const fast = utcIsoUs(ts);
  if (fast !== undefined) return { ok: true, us: fast };
  const m = ISO_RE.exec(ts);
  if (!m)
    return { ok: false, reason: 'invalid_ts', detail: `ts: ${JSON.stringify(ts).slice(0, 64)} is not an ISO-8601 date-time with a zone, nor an epoch number` };
  const [, y, mo, d, h, mi, s = '0', frac = '', zone] = m;
  if (zone === undefined) return { ok: false, reason: 'ts_without_zone', detail: `ts: ${ts} has no zone; add Z or an offset such as +02:00` };
  const year = Number(y),
    month = Number(mo),
    day = Number(d),
    hour = Number(h),
    minute = Number(mi),
    second = Number(s);
  const dim = month === 2 && year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : (DAYS_IN_MONTH[month - 1] ?? 0);
  if (month < 1 || month > 12 || day < 1 || day > dim || hour > 23 || minute > 59 || second > 59) {
    return { ok: false, reason: 'invalid_ts', detail: `ts: ${ts} is not a calendar date-time` };
  }
  let offsetMin = 0;
  if (zone !== 'Z' && zone !== 'z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    const oh = Number(digits.slice(0, 2)),
      om = Number(digits.slice(2));
    // RFC 3339 time-numoffset: hours 00-23, minutes 00-59.
    if (oh > 23 || om > 59) return { ok: false, reason: 'invalid_ts', detail: `ts: ${ts} has an invalid zone offset` };
    offsetMin = sign * (oh * 60 + om);
  }
  // Date.UTC maps years 0-99 to 1900-1999; utcMs does not (and is slower, so only there).
  const ms = (year >= 100 ? Date.UTC(year, month - 1, day, hour, minute, second) : utcMs(year, month - 1, day, hour, minute, second)) - offsetMin * 60_000;
  const us = Number(frac.padEnd(6, '0').slice(0, 6));
  return { ok: true, us: ms * 1000 + us };
}

/**
 * The common form, `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (what devices and toISOString write), read
 * by character codes: once per reading, and several times cheaper than the regular expression.
 * @returns µs since the epoch, or undefined for any other form and for any date-time that is not
 *   a calendar one (parseTimestamp's general path then says what is wrong).
 */
function utcIsoUs(ts: string): number | undefined {
  const n = ts.length;
  if (n < 20 || n > 30 || ts.charCodeAt(n - 1) !== 0x5a) return undefined;
  if (ts.charCodeAt(4) !== 0x2d || ts.charCodeAt(7) !== 0x2d || ts.charCodeAt(10) !== 0x54 || ts.charCodeAt(13) !== 0x3a || ts.charCodeAt(16) !== 0x3a)
    return undefined;
  const year = digits(ts, 0, 4);
  const month = digits(ts, 5, 2);
  const day = digits(ts, 8, 2);
  const hour = digits(ts, 11, 2);
  const minute = digits(ts, 14, 2);
  const second = digits(ts, 17, 2);
  let us = 0;
  if (n > 20) {
    // A fraction of 1 to 9 digits; below a microsecond truncated.
    if (ts.charCodeAt(19) !== 0x2e || n === 21) return undefined;
    const fractionDigits = n - 21;
    const micro = digits(ts, 20, Math.min(fractionDigits, 6));
    if (fractionDigits > 6 && Number.isNaN(digits(ts, 26, fractionDigits - 6))) return undefined;
    us = micro * 10 ** (6 - Math.min(fractionDigits, 6));
  }
  if (!(year >= 100 && month >= 1 && month <= 12 && day >= 1 && hour <= 23 && minute <= 59 && second <= 59) || Number.isNaN(us)) return undefined;
  const dim = month === 2 && year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : DAYS_IN_MONTH[month - 1]!;
  if (day > dim) return undefined;
  return Date.UTC(year, month - 1, day, hour, minute, second) * 1000 + us;
}

/** The decimal number in `count` characters of `s` from `at`; NaN when one is not a digit. */
function digits(s: string, at: number, count: number): number {
  let value = 0;
  for (let i = at; i < at + count; i++) {
    const d = s.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return Number.NaN;
    value = value * 10 + d;
  }
  return value;
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
    coercedValues: 0,
  });
  if (payload.byteLength > opts.messageMaxBytes) {
    return whole('payload_too_large', `payload is ${payload.byteLength} bytes; MESSAGE_MAX_BYTES is ${opts.messageMaxBytes}`);
  }
  // isUtf8 and toString: one native pass each, several times faster than a fatal TextDecoder on
  // the small payloads of one reading.
  if (!isUtf8(payload)) return whole('invalid_utf8', 'payload is not valid UTF-8');
  // A raw NUL byte is never valid JSON text (RFC 8259 §7: control characters must be escaped);
  // said plainly here rather than as the parser's message. An escaped \u0000 is `invalid_text`.
  const nul = payload.indexOf(0);
  if (nul >= 0) return whole('invalid_json', `payload contains a NUL byte (0x00) at byte ${nul}`);
  const decoded = (Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)).toString('utf8');
  // A UTF-8 byte-order mark is skipped, as the WHATWG UTF-8 decode does.
  const text = decoded.charCodeAt(0) === 0xfeff ? decoded.slice(1) : decoded;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return whole('invalid_json', `payload is not JSON: ${(err as Error).message}`);
  }
  // Counts of the readings kept only (decodeReading adds to it when it returns a reading).
  const tally: Tally = { droppedFields: 0, coercedValues: 0 };
  if (!Array.isArray(json)) {
    const r = decodeReading(json, source, opts, tally);
    return 'reason' in r
      ? { readings: [], rejections: [{ reason: r.reason, detail: r.detail, index: null }], ...tally }
      : { readings: [r], rejections: [], ...tally };
  }
  if (json.length === 0) return whole('empty_batch', 'payload is an empty JSON array');
  const maxReadings = opts.maxReadings ?? 10_000;
  if (json.length > maxReadings) return whole('too_many_readings', `payload carries ${json.length} readings; MESSAGE_MAX_READINGS is ${maxReadings}`);
  const readings: Reading[] = [];
  const rejections: Rejection[] = [];
  for (let i = 0; i < json.length; i++) {
    const item: unknown = json[i];
    const r = decodeReading(item, source, opts, tally);
    if ('reason' in r) rejections.push({ reason: r.reason, detail: r.detail, index: i, item });
    else readings.push(r);
  }
  return { readings, rejections, ...tally };
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

/**
 * Decoding's scratch space, reused from reading to reading (decoding is synchronous): the catalog
 * indices a reading carries, and its values by catalog index (undefined between readings).
 */
const scratch = { carried: [] as number[], byIndex: [] as (number | undefined)[] };

function scratchValues(channelCount: number): (number | undefined)[] {
  if (scratch.byIndex.length !== channelCount) {
    scratch.byIndex = new Array<number | undefined>(channelCount).fill(undefined);
    scratch.carried.length = 0;
  }
  return scratch.byIndex;
}

const ascending = (a: number, b: number): number => a - b;

/** Unknown fields dropped and channel values coerced in readings kept; decodeReading adds to it. */
interface Tally {
  droppedFields: number;
  coercedValues: number;
}

type ReadingResult = Reading | { reason: RejectReason; detail: string };

// A numeric string: optional minus, digits with an optional fraction (or a bare fraction), an
// optional exponent. No spaces, no `+`, no comma decimal, no hex, no Infinity/NaN: "12,5" and
// " 12.5 " are firmware bugs to see, not to guess at.
const NUMERIC_STRING = /^-?(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][+-]?\d+)?$/;

/** Deepest nesting accepted in an unknown field's value (jsonb and the walk below stay shallow). */
const MAX_EXTRA_DEPTH = 32;

/** A value for a detail, at most 64 characters; never walks into objects (they may be deep). */
const show = (v: unknown): string => {
  if (v === null || typeof v !== 'object') return (JSON.stringify(v) ?? String(v)).slice(0, 64);
  const flat = Object.values(v).length <= 8 && Object.values(v).every((x) => x === null || typeof x !== 'object');
  return flat ? JSON.stringify(v).slice(0, 64) : Array.isArray(v) ? `an array of ${v.length}` : 'an object';
};

function decodeReading(item: unknown, source: Source, opts: DecodeOptions, tally: Tally): ReadingResult {
  if (item === null || typeof item !== 'object' || Array.isArray(item)) {
    return {
      reason: 'not_a_reading',
      detail: `expected a JSON object with "ts", got ${item === null ? 'null' : Array.isArray(item) ? 'an array' : typeof item}`,
    };
  }
  const fields = item as Record<string, unknown>;
  const stamp = fields.ts === undefined && opts.missingTs === 'stamp';
  const env = envelope(stamp ? source.receivedAtMs : fields.ts, fields.seq);
  if (env !== undefined) {
    const value = fields[env.key];
    return { reason: env.reason, detail: value === undefined ? `${env.key}: missing` : `${env.key}: ${show(value)} is not valid` };
  }
  const rawTs = fields.ts as string | number;
  const seq = (fields.seq ?? null) as number | null;
  const unit = opts.tsEpochUnit ?? 'ms';
  // The common form read at once, with no result object; anything else through parseTimestamp.
  let tsUs = stamp ? source.receivedAtMs * 1000 : typeof rawTs === 'string' ? utcIsoUs(rawTs) : undefined;
  if (tsUs === undefined) {
    const ts = parseTimestamp(rawTs, unit);
    if (!ts.ok) return ts;
    tsUs = ts.us;
  }
  if (fields.well_id !== undefined && fields.well_id !== source.wellId) {
    return { reason: 'well_id_mismatch', detail: `well_id: ${show(fields.well_id)} disagrees with the topic's well id ${show(source.wellId)}` };
  }
  const tsMs = tsUs / 1000;
  if (tsMs < opts.tsMinMs || tsMs > source.receivedAtMs + opts.tsMaxFutureMs) {
    const hint = !stamp && typeof rawTs === 'number' ? epochHint(rawTs, unit) : '';
    const shown = Math.abs(tsMs) <= 8.64e15 ? new Date(tsMs).toISOString() : String(rawTs);
    return {
      reason: 'ts_out_of_range',
      detail: `ts: ${shown} is outside [${new Date(opts.tsMinMs).toISOString()}, receive time + ${opts.tsMaxFutureMs / 1000} s]${hint}`,
    };
  }
  const catalog = opts.catalog;
  const cols = columnIndex(catalog);
  // The channels carried, in the payload's order, and their values by catalog index; what the
  // previous reading left (it may have returned half way) cleared first.
  const byIndex = scratchValues(catalog.length);
  const carried = scratch.carried;
  for (const ci of carried) byIndex[ci] = undefined;
  carried.length = 0;
  // Unknown fields to keep, assigned to a plain object; a "__proto__" key is defined as an own
  // property (assignment would set the prototype). defineProperty for every key would be several
  // times slower on a reading with thousands of fields.
  let extra: Record<string, unknown> | null = stamp ? { ts_source: 'receive_time' } : null;
  let kept = 0;
  let droppedFields = 0;
  let coercedValues = 0;
  let channels = 0;
  // for…in, not Object.entries: no array per field. A parsed JSON object has only own,
  // enumerable properties (a "__proto__" key included: JSON.parse defines it as its own).
  for (const key in fields) {
    if (key === 'ts' || key === 'seq' || key === 'well_id') continue;
    const value = fields[key];
    const ci = cols.get(key);
    if (ci === undefined) {
      if (opts.unknownFields === 'reject') return { reason: 'unknown_field', detail: `${key}: not in the channel catalog (UNKNOWN_FIELDS=reject)` };
      if (opts.unknownFields === 'drop') {
        droppedFields++;
        continue;
      }
      const text = textProblem(key, value);
      if (text === 'nul') return { reason: 'invalid_text', detail: `${key.slice(0, 64)}: contains U+0000, which PostgreSQL jsonb cannot store` };
      if (text === 'deep') return { reason: 'invalid_json', detail: `${key.slice(0, 64)}: nested deeper than ${MAX_EXTRA_DEPTH} levels` };
      extra ??= {};
      if (key === '__proto__') Object.defineProperty(extra, key, { value, enumerable: true, writable: true, configurable: true });
      else extra[key] = value;
      kept++;
      continue;
    }
    if (value === null) continue;
    let n: number;
    if (typeof value === 'number') n = value;
    else if (typeof value === 'string' && value.length <= 64 && NUMERIC_STRING.test(value)) {
      n = Number(value);
      if (!Number.isFinite(n)) return { reason: 'non_finite_number', detail: `${key}: ${show(value)} is not finite` };
      coercedValues++;
    } else {
      const kind = Array.isArray(value) ? 'an array' : typeof value === 'object' ? 'an object' : `a ${typeof value}`;
      return { reason: 'type_mismatch', detail: `${key}: ${show(value)} is ${kind}, expected a JSON number or a numeric string such as "12.5"` };
    }
    if (!Number.isFinite(n)) return { reason: 'non_finite_number', detail: `${key}: ${n} is not finite` };
    const ch = catalog[ci]!;
    if (n < ch.min || n > ch.max) {
      return { reason: 'out_of_range', detail: `${key}: ${n} ${ch.unit} is outside the plausible range [${ch.min}, ${ch.max}]` };
    }
    if (byIndex[ci] === undefined) carried.push(ci);
    byIndex[ci] = n;
    channels++;
  }
  if (channels === 0 && kept === 0) return { reason: 'no_channels', detail: 'the reading carries no channel value' };
  if (carried.length > 1) carried.sort(ascending);
  const values = new Array<number>(carried.length);
  for (let k = 0; k < carried.length; k++) values[k] = byIndex[carried[k]!]!;
  tally.droppedFields += droppedFields;
  tally.coercedValues += coercedValues;
  return { wellId: source.wellId, site: source.site, tsUs, seq, layout: channelLayout(catalog.length, carried), values, extra };
}

/** Says which unit an out-of-window epoch number looks like, when it is not the configured one. */
function epochHint(ts: number, unit: EpochUnit): string {
  const a = Math.abs(ts);
  // Around the present: ~1.7e9 s, ~1.7e12 ms, ~1.7e15 us.
  const looks: EpochUnit | undefined = a >= 1e8 && a < 1e11 ? 's' : a >= 1e11 && a < 1e14 ? 'ms' : a >= 1e14 && a < 1e17 ? 'us' : undefined;
  return looks && looks !== unit ? ` (looks like epoch ${UNIT_NAME[looks]}; TS_EPOCH_UNIT is ${unit})` : '';
}

/** `nul` if a key or string anywhere in `key: value` holds U+0000; `deep` past MAX_EXTRA_DEPTH. Iterative: no recursion on input. */
function textProblem(key: string, value: unknown): 'nul' | 'deep' | undefined {
  if (key.includes('\u0000')) return 'nul';
  if (typeof value === 'string') return value.includes('\u0000') ? 'nul' : undefined;
  if (value === null || typeof value !== 'object') return undefined;
  const stack: [unknown, number][] = [[value, 1]];
  for (let top = stack.pop(); top; top = stack.pop()) {
    const [v, depth] = top;
    if (typeof v === 'string') {
      if (v.includes('\u0000')) return 'nul';
    } else if (v !== null && typeof v === 'object') {
      if (depth > MAX_EXTRA_DEPTH) return 'deep';
      for (const [k, x] of Object.entries(v)) {
        if (k.includes('\u0000')) return 'nul';
        stack.push([x, depth + 1]);
      }
    }
  }
  return undefined;
}
