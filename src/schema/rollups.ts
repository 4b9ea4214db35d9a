// Rollups as SQL: per-well continuous aggregates in generations, and the plain view that joins
// them under the contract name. Pure. A continuous aggregate cannot gain columns in place, so
// channels added to the catalog later get a new generation (README "Storage").

import { ROLLUP_AGGREGATES, type RollupAggregate, rollupColumnNames } from './rollup-columns.ts';
import { formatInterval, ROLLUP_BUCKETS, type RollupName } from './settings.ts';

/** The view dashboards query: `esp_telemetry_1m`, `esp_telemetry_1h`. */
export function rollupViewName(rollup: RollupName): string {
  return `esp_telemetry_${rollup}`;
}

/** Continuous aggregate of generation `n` (1-based): `esp_telemetry_1m_g1`. */
export function generationName(rollup: RollupName, n: number): string {
  return `${rollupViewName(rollup)}_g${n}`;
}

/** Pattern of generation names, for reading them back from the catalog. */
export const GENERATION_RE = /^esp_telemetry_(1m|1h)_g([1-9][0-9]*)$/;

/** Columns of the rollup view over these channel columns: the contract of `../rollup-columns.ts`. */
export function viewColumnNames(channels: readonly string[]): string[] {
  return rollupColumnNames(channels.map((column) => ({ column })));
}

/** The channels a generation holds, from its column names (each channel has one `_avg`). */
export function channelsOfColumns(columns: readonly string[]): string[] {
  return columns.filter((c) => c.endsWith('_avg')).map((c) => c.slice(0, -'_avg'.length));
}

/** Each aggregate of the naming contract as SQL over a channel column (`last`: by device time). */
const AGGREGATE_SQL: Record<RollupAggregate, (column: string) => string> = {
  min: (c) => `min(${c})`,
  max: (c) => `max(${c})`,
  avg: (c) => `avg(${c})`,
  last: (c) => `last(${c}, ts)`,
  count: (c) => `count(${c})`,
};

/**
 * CREATE MATERIALIZED VIEW for one generation, real-time (`materialized_only = false`),
 * `WITH NO DATA` so start-up never waits on materializing history (the refresh policy does it;
 * meanwhile real-time aggregation answers from the raw rows). Generation 1 also counts the rows
 * (`readings`); later generations hold only their channels and only buckets where one of them
 * has a value (HAVING), so history, which has none, costs nothing.
 */
export function createGenerationSql(rollup: RollupName, n: number, channels: readonly string[]): string {
  const bucket = `time_bucket(INTERVAL '${formatInterval(ROLLUP_BUCKETS[rollup].bucketS)}', ts)`;
  const aggs = channels.flatMap((c) => ROLLUP_AGGREGATES.map((a) => `${AGGREGATE_SQL[a](c)} AS ${c}_${a}`));
  const select = ['well_id', `${bucket} AS bucket`, ...(n === 1 ? ['count(*) AS readings'] : []), ...aggs];
  const having = n === 1 ? '' : `\nHAVING ${channels.map((c) => `count(${c}) > 0`).join(' OR ')}`;
  return `CREATE MATERIALIZED VIEW ${generationName(rollup, n)}
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT ${select.join(',\n  ')}
FROM esp_telemetry
GROUP BY well_id, ${bucket}${having}
WITH NO DATA`;
}

/**
 * The contract view over generations `gens` (ascending, the first is generation 1): generation
 * 1 gives the buckets; later ones are LEFT JOINed on (well_id, bucket), their counts 0 where
 * they have no row. CREATE OR REPLACE keeps objects built on the view: columns only get appended.
 */
export function viewSql(rollup: RollupName, gens: readonly { n: number; channels: readonly string[] }[]): string {
  const first = gens[0];
  if (first?.n !== 1) throw new Error(`rollup ${rollup}: generation 1 is missing`);
  const cols = ['g1.well_id', 'g1.bucket', 'g1.readings'];
  const joins: string[] = [];
  for (const g of gens) {
    const alias = `g${g.n}`;
    for (const c of g.channels) {
      for (const a of ROLLUP_AGGREGATES) {
        const col = `${c}_${a}`;
        cols.push(a === 'count' && g.n > 1 ? `COALESCE(${alias}.${col}, 0) AS ${col}` : `${alias}.${col}`);
      }
    }
    if (g.n > 1) joins.push(`LEFT JOIN ${generationName(rollup, g.n)} ${alias} ON ${alias}.well_id = g1.well_id AND ${alias}.bucket = g1.bucket`);
  }
  return `CREATE OR REPLACE VIEW ${rollupViewName(rollup)} AS
SELECT ${cols.join(',\n  ')}
FROM ${generationName(rollup, 1)} g1${joins.map((j) => `\n${j}`).join('')}`;
}
