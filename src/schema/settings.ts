// Storage settings (chunk interval, compression age, retention, rollups): their types, defaults
// and the duration grammar the STORAGE_* variables use. Pure; config/config.ts parses with it.

/** A rollup: a per-well continuous aggregate `esp_telemetry_<name>` with buckets of `bucketS` seconds. */
export const ROLLUP_BUCKETS = { '1m': { bucketS: 60 }, '1h': { bucketS: 3_600 } } as const;
export type RollupName = keyof typeof ROLLUP_BUCKETS;
export const ROLLUP_NAMES = Object.keys(ROLLUP_BUCKETS) as RollupName[];

/** What the service keeps the storage at; durations in seconds, `null` = off. */
export interface StorageSettings {
  /** TimescaleDB chunk interval of `esp_telemetry` (applies to chunks created from now on). */
  readonly chunkIntervalS: number;
  /** Chunks whose data is all older than this are compressed by policy; null = no policy. */
  readonly compressAfterS: number | null;
  /** Chunks whose data is all older than this are dropped by policy; null = keep forever. */
  readonly retentionS: number | null;
  /** Rollups kept refreshed; empty = none. */
  readonly rollups: readonly RollupName[];
}

export const DEFAULT_STORAGE_SETTINGS: StorageSettings = Object.freeze({
  chunkIntervalS: 86_400,
  compressAfterS: 7 * 86_400,
  retentionS: null,
  rollups: Object.freeze([...ROLLUP_NAMES]),
});

const UNIT_S: Readonly<Record<string, number>> = {
  s: 1,
  sec: 1,
  secs: 1,
  second: 1,
  seconds: 1,
  min: 60,
  mins: 60,
  minute: 60,
  minutes: 60,
  h: 3_600,
  hour: 3_600,
  hours: 3_600,
  d: 86_400,
  day: 86_400,
  days: 86_400,
  w: 604_800,
  week: 604_800,
  weeks: 604_800,
};

/**
 * Parses `<integer> <unit>` (`1 day`, `7 days`, `12h`, `90 minutes`, `2 weeks`; units s, min,
 * h, d, w and their English words). Months and years are refused: they have no fixed length,
 * write days.
 * @returns seconds, or a problem message.
 */
export function parseDurationS(text: string): number | string {
  const m = /^\s*(\d{1,9})\s*([a-z]+)\s*$/i.exec(text);
  const unit = m ? UNIT_S[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) return `"${text}" is not a duration like "7 days", "12 hours", "30 min" (units s, min, h, d, w; no months or years)`;
  return Number(m[1]) * unit;
}

/** `86400` → `1 day`, `5400` → `90 minutes`: a PostgreSQL interval literal, largest exact unit. */
export function formatInterval(seconds: number): string {
  for (const [unit, size] of [
    ['day', 86_400],
    ['hour', 3_600],
    ['minute', 60],
  ] as const) {
    if (seconds % size === 0) {
      const n = seconds / size;
      return `${n} ${unit}${n === 1 ? '' : 's'}`;
    }
  }
  return `${seconds} second${seconds === 1 ? '' : 's'}`;
}

/**
 * Parses STORAGE_ROLLUPS: `off`, or a comma-separated subset of `1m`, `1h`.
 * @returns the rollups in canonical order, or a problem message.
 */
export function parseRollups(text: string): RollupName[] | string {
  if (text.trim().toLowerCase() === 'off') return [];
  const parts = text
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '');
  const bad = parts.filter((p) => !(p in ROLLUP_BUCKETS));
  if (parts.length === 0 || bad.length > 0) return `"${text}": expected "off" or a comma-separated list of ${ROLLUP_NAMES.join(', ')}`;
  return ROLLUP_NAMES.filter((r) => parts.includes(r));
}
