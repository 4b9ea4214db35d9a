// Naming contract of the per-well rollups (`esp_telemetry_1m`, `esp_telemetry_1h`): which
// columns they have, derived from the channel catalog. Pure; the rollup DDL and the Grafana
// dashboard checks both read it, so the two cannot drift apart.
import type { Channel } from '../decode/catalog.ts';
import { formatInterval, ROLLUP_BUCKETS, ROLLUP_NAMES } from './settings.ts';

/** Rollup views, finest first: view name and bucket width, from the storage settings. */
export const ROLLUP_VIEWS = ROLLUP_NAMES.map((name) => ({ view: `esp_telemetry_${name}`, bucket: formatInterval(ROLLUP_BUCKETS[name].bucketS) }));

/** Aggregates kept per channel, in column order. */
export const ROLLUP_AGGREGATES = ['min', 'max', 'avg', 'last', 'count'] as const;
export type RollupAggregate = (typeof ROLLUP_AGGREGATES)[number];

/** One rollup column. */
export interface RollupColumn {
  readonly name: string;
  /**
   * `key`: `well_id` (text) or `bucket` (timestamptz, start of the bucket); `readings`: rows in
   * the bucket (bigint); otherwise the aggregate over `channel`'s non-null values: min, max, avg,
   * last (by ts) as double precision, count as bigint.
   */
  readonly kind: 'key' | 'readings' | RollupAggregate;
  /** Catalog column the aggregate is over; absent for `key` and `readings`. */
  readonly channel?: string;
}

/** Every rollup column in order: `well_id`, `bucket`, `readings`, then `<col>_<agg>` per channel. */
export function rollupColumns(catalog: readonly Pick<Channel, 'column'>[]): RollupColumn[] {
  const columns: RollupColumn[] = [
    { name: 'well_id', kind: 'key' },
    { name: 'bucket', kind: 'key' },
    { name: 'readings', kind: 'readings' },
  ];
  for (const ch of catalog) {
    for (const agg of ROLLUP_AGGREGATES) columns.push({ name: `${ch.column}_${agg}`, kind: agg, channel: ch.column });
  }
  return columns;
}

/** Names of `rollupColumns(catalog)`, in order. */
export function rollupColumnNames(catalog: readonly Pick<Channel, 'column'>[]): string[] {
  return rollupColumns(catalog).map((c) => c.name);
}

/** PostgreSQL's identifier limit (NAMEDATALEN - 1); longer names are silently truncated. */
const MAX_IDENTIFIER_BYTES = 63;

/**
 * Rollup column names PostgreSQL would truncate: a catalog column of up to 63 characters is
 * valid in `esp_telemetry` but `<col>_count` may not be.
 * @returns one problem per line; empty when every name fits.
 */
export function rollupColumnProblems(catalog: readonly Pick<Channel, 'column'>[]): string[] {
  return rollupColumnNames(catalog)
    .filter((name) => Buffer.byteLength(name) > MAX_IDENTIFIER_BYTES)
    .map((name) => `rollup column "${name}" is longer than ${MAX_IDENTIFIER_BYTES} bytes: shorten the channel's column name`);
}
