// The storage planner: from what the server is, what is already there and the settings, the
// statements that bring esp_telemetry to the settings, feature by feature. Pure; the applier
// (apply.ts) reads the state, runs the plan and reports. An empty step list means "already so".
import type { Channel } from '../decode/catalog.ts';
import type { Feature } from './report.ts';
import { createGenerationSql, GENERATION_RE, generationName, rollupViewName, viewColumnNames, viewSql } from './rollups.ts';
import { formatInterval, ROLLUP_BUCKETS, ROLLUP_NAMES, type RollupName, type StorageSettings } from './settings.ts';

export const TABLE = 'esp_telemetry';
/** Fixed, not settings: the writer's key is (well_id, ts) and every query is per well over time. */
const SEGMENT_BY = 'well_id';
const ORDER_BY = 'ts DESC';

/** The TimescaleDB in front of us. */
export interface ServerFacts {
  /** `2.19.3`, `2.23.0-dev`. */
  readonly version: string;
  readonly license: string | null;
}

/** A refresh policy of a continuous aggregate; offsets in seconds, null = open (NULL). */
export interface RefreshPolicy {
  readonly startOffsetS: number | null;
  readonly endOffsetS: number | null;
  readonly scheduleS: number;
  /** Buckets refreshed per transaction (TimescaleDB 2.19+); null = the server's default. */
  readonly bucketsPerBatch: number | null;
}

export interface ObservedGeneration {
  readonly rollup: RollupName;
  readonly n: number;
  readonly channels: readonly string[];
  readonly materializedOnly: boolean;
  readonly policy: RefreshPolicy | null;
}

/** What is in the database now (apply.ts reads it). */
export interface Observed {
  /** null: esp_telemetry is not a hypertable. */
  readonly hypertable: { readonly chunkIntervalS: number | null } | null;
  readonly compressionEnabled: boolean;
  /** null: no policy; `afterS` null when the policy's age is not an interval. */
  readonly compressionPolicy: { readonly afterS: number | null } | null;
  readonly retentionPolicy: { readonly afterS: number | null } | null;
  readonly generations: readonly ObservedGeneration[];
  /** Columns of each contract view (`esp_telemetry_1m`), in order; absent when there is none. */
  readonly viewColumns: Readonly<Partial<Record<RollupName, readonly string[]>>>;
}

export interface Step {
  readonly sql: string;
  /** What it changes, for the log. */
  readonly note: string;
}

export interface FeaturePlan {
  readonly feature: Feature;
  /** `apply`: the steps bring the feature to the settings. `disable`: off by setting; the steps remove what an earlier setting created. */
  readonly target: { readonly kind: 'apply'; readonly detail: string } | { readonly kind: 'disable'; readonly reason: string };
  readonly steps: readonly Step[];
}

/** `2.19.3` → 219; `2.23.0-dev` → 223. */
function versionNumber(version: string): number {
  const [major, minor] = version.split(/[.-]/).map((p) => Number.parseInt(p, 10));
  return (major ?? 0) * 100 + (minor ?? 0);
}

/** TimescaleDB 2.18 renamed compression to columnstore; older servers get the older names. */
export function usesColumnstoreApi(server: ServerFacts): boolean {
  return versionNumber(server.version) >= 218;
}

/**
 * Refresh policy of a rollup: refresh every 5 min (1m) or 30 min (1h), materialize up to one
 * bucket ago (real-time aggregation answers for the rest). The window starts at the retention
 * age, or is open (NULL) without retention: a refresh only recomputes buckets whose raw rows
 * changed, so late data of any age reaches the rollup, and buckets whose raw chunks retention
 * dropped are never recomputed from nothing. From 2.19 a refresh runs in batches, one
 * transaction each: with the server's default, 30,000 rows over a year of 1-minute buckets took
 * 80 s in the licensed test build; with one day (1m) or one week (1h) per batch, 1 s.
 */
function refreshPolicy(rollup: RollupName, settings: StorageSettings, server: ServerFacts): RefreshPolicy {
  return {
    startOffsetS: settings.retentionS,
    endOffsetS: ROLLUP_BUCKETS[rollup].bucketS,
    scheduleS: rollup === '1m' ? 300 : 1_800,
    bucketsPerBatch: versionNumber(server.version) >= 219 ? (rollup === '1m' ? 1_440 : 168) : null,
  };
}

const interval = (s: number | null) => (s === null ? 'NULL' : `INTERVAL '${formatInterval(s)}'`);
const samePolicy = (a: RefreshPolicy, b: RefreshPolicy) =>
  a.startOffsetS === b.startOffsetS && a.endOffsetS === b.endOffsetS && a.scheduleS === b.scheduleS && a.bucketsPerBatch === b.bucketsPerBatch;

/** Plans every feature, in FEATURES order; `catalog` gives the channels the rollups must cover. */
export function planStorage(server: ServerFacts, observed: Observed, settings: StorageSettings, catalog: readonly Channel[]): FeaturePlan[] {
  const columnstore = usesColumnstoreApi(server);
  return [
    planHypertable(server, observed, settings),
    planCompression(columnstore, observed, settings),
    planCompressionPolicy(columnstore, observed, settings),
    planRetention(observed, settings),
    planRollups(server, observed, settings, catalog),
  ];
}

function planHypertable(server: ServerFacts, observed: Observed, settings: StorageSettings): FeaturePlan {
  const want = settings.chunkIntervalS;
  const steps: Step[] = [];
  if (!observed.hypertable) {
    // by_range() exists from 2.13; before, the column and chunk_time_interval are arguments.
    const sql =
      versionNumber(server.version) >= 213
        ? `SELECT create_hypertable('${TABLE}', by_range('ts', ${interval(want)}), if_not_exists => true, migrate_data => true)`
        : `SELECT create_hypertable('${TABLE}', 'ts', chunk_time_interval => ${interval(want)}, if_not_exists => true, migrate_data => true)`;
    steps.push({ sql, note: `hypertable created, chunks of ${formatInterval(want)}` });
  } else if (observed.hypertable.chunkIntervalS !== want) {
    const was = observed.hypertable.chunkIntervalS;
    steps.push({
      sql: `SELECT set_chunk_time_interval('${TABLE}', ${interval(want)})`,
      note: `chunk interval changed from ${was === null ? 'unknown' : formatInterval(was)} to ${formatInterval(want)} (chunks created from now on)`,
    });
  }
  return { feature: 'hypertable', target: { kind: 'apply', detail: `chunks of ${formatInterval(want)}` }, steps };
}

function planCompression(columnstore: boolean, observed: Observed, settings: StorageSettings): FeaturePlan {
  if (settings.compressAfterS === null) {
    const reason = observed.compressionEnabled ? 'STORAGE_COMPRESS_AFTER=off; chunks already compressed stay compressed' : 'STORAGE_COMPRESS_AFTER=off';
    return { feature: 'compression', target: { kind: 'disable', reason }, steps: [] };
  }
  const detail = `${columnstore ? 'columnstore' : 'compression'}: segmentby ${SEGMENT_BY}, orderby ${ORDER_BY}`;
  const sql = columnstore
    ? `ALTER TABLE ${TABLE} SET (timescaledb.enable_columnstore = true, timescaledb.segmentby = '${SEGMENT_BY}', timescaledb.orderby = '${ORDER_BY}')`
    : `ALTER TABLE ${TABLE} SET (timescaledb.compress, timescaledb.compress_segmentby = '${SEGMENT_BY}', timescaledb.compress_orderby = '${ORDER_BY}')`;
  return { feature: 'compression', target: { kind: 'apply', detail }, steps: observed.compressionEnabled ? [] : [{ sql, note: `${detail} enabled` }] };
}

function planCompressionPolicy(columnstore: boolean, observed: Observed, settings: StorageSettings): FeaturePlan {
  const remove: Step = columnstore
    ? { sql: `CALL remove_columnstore_policy('${TABLE}', if_exists => true)`, note: 'columnstore policy removed' }
    : { sql: `SELECT remove_compression_policy('${TABLE}', if_exists => true)`, note: 'compression policy removed' };
  const want = settings.compressAfterS;
  if (want === null) {
    return {
      feature: 'compression_policy',
      target: { kind: 'disable', reason: 'STORAGE_COMPRESS_AFTER=off' },
      steps: observed.compressionPolicy ? [remove] : [],
    };
  }
  const add: Step = columnstore
    ? { sql: `CALL add_columnstore_policy('${TABLE}', after => ${interval(want)})`, note: `columnstore policy: chunks older than ${formatInterval(want)}` }
    : {
        sql: `SELECT add_compression_policy('${TABLE}', compress_after => ${interval(want)})`,
        note: `compression policy: chunks older than ${formatInterval(want)}`,
      };
  const have = observed.compressionPolicy;
  const steps = have === null ? [add] : have.afterS === want ? [] : [remove, add];
  return { feature: 'compression_policy', target: { kind: 'apply', detail: `chunks older than ${formatInterval(want)}` }, steps };
}

function planRetention(observed: Observed, settings: StorageSettings): FeaturePlan {
  const remove: Step = { sql: `SELECT remove_retention_policy('${TABLE}', if_exists => true)`, note: 'retention policy removed' };
  const want = settings.retentionS;
  if (want === null) {
    return { feature: 'retention_policy', target: { kind: 'disable', reason: 'STORAGE_RETENTION=off' }, steps: observed.retentionPolicy ? [remove] : [] };
  }
  const add: Step = {
    sql: `SELECT add_retention_policy('${TABLE}', drop_after => ${interval(want)})`,
    note: `retention policy: chunks older than ${formatInterval(want)} dropped`,
  };
  const have = observed.retentionPolicy;
  const steps = have === null ? [add] : have.afterS === want ? [] : [remove, add];
  return { feature: 'retention_policy', target: { kind: 'apply', detail: `chunks older than ${formatInterval(want)} dropped` }, steps };
}

function planRollups(server: ServerFacts, observed: Observed, settings: StorageSettings, catalog: readonly Channel[]): FeaturePlan {
  const steps: Step[] = [];
  const details: string[] = [];
  for (const rollup of ROLLUP_NAMES) {
    const found = observed.generations.filter((g) => g.rollup === rollup).sort((a, b) => a.n - b.n);
    // Generations only mean something on top of generation 1; without it (dropped by hand) the
    // others are left alone and the rollup starts again from generation 1.
    const gens = found[0]?.n === 1 ? found : [];
    const removePolicy = (g: { n: number }): Step => ({
      sql: `SELECT remove_continuous_aggregate_policy('${generationName(rollup, g.n)}', if_exists => true)`,
      note: `refresh policy of ${generationName(rollup, g.n)} removed`,
    });
    if (!settings.rollups.includes(rollup)) {
      // Off: stop refreshing; the views and what they hold stay (drop them by hand if unwanted).
      for (const g of gens) if (g.policy) steps.push(removePolicy(g));
      continue;
    }
    const covered = new Set(gens.flatMap((g) => g.channels));
    const missing = catalog.map((c) => c.column).filter((c) => !covered.has(c));
    const all = [...gens.map((g) => ({ n: g.n, channels: g.channels, materializedOnly: g.materializedOnly, policy: g.policy }))];
    if (missing.length > 0) {
      const n = gens.length === 0 ? 1 : Math.max(...gens.map((g) => g.n)) + 1;
      steps.push({
        sql: createGenerationSql(rollup, n, missing),
        note: `rollup ${generationName(rollup, n)} created for ${missing.length} channel(s): ${missing.join(', ')}`,
      });
      all.push({ n, channels: missing, materializedOnly: false, policy: null });
    }
    const want = refreshPolicy(rollup, settings, server);
    for (const g of all) {
      const name = generationName(rollup, g.n);
      if (g.materializedOnly)
        steps.push({ sql: `ALTER MATERIALIZED VIEW ${name} SET (timescaledb.materialized_only = false)`, note: `${name}: real-time aggregation on` });
      if (g.policy && samePolicy(g.policy, want)) continue;
      if (g.policy) steps.push(removePolicy(g));
      steps.push({
        sql: `SELECT add_continuous_aggregate_policy('${name}', start_offset => ${interval(want.startOffsetS)}, end_offset => ${interval(want.endOffsetS)}, schedule_interval => ${interval(want.scheduleS)}${want.bucketsPerBatch === null ? '' : `, buckets_per_batch => ${want.bucketsPerBatch}`})`,
        note: `refresh policy of ${name}: every ${formatInterval(want.scheduleS)}, from ${want.startOffsetS === null ? 'the start' : `${formatInterval(want.startOffsetS)} ago`} to ${formatInterval(want.endOffsetS ?? 0)} ago`,
      });
    }
    const view = rollupViewName(rollup);
    const columns = viewColumnNames(all.flatMap((g) => g.channels));
    const have = observed.viewColumns[rollup];
    if (!have || have.join(',') !== columns.join(','))
      steps.push({ sql: viewSql(rollup, all), note: `view ${view} over ${all.map((g) => `g${g.n}`).join(', ')}` });
    details.push(`${view} (${all.map((g) => generationName(rollup, g.n)).join(' + ')})`);
  }
  if (settings.rollups.length === 0) {
    return {
      feature: 'rollups',
      target: { kind: 'disable', reason: 'STORAGE_ROLLUPS=off; existing rollup views are kept, no longer refreshed by policy' },
      steps,
    };
  }
  return { feature: 'rollups', target: { kind: 'apply', detail: details.join(', ') }, steps };
}

/** Whether `name` is a rollup generation this service made, and which. */
export function parseGenerationName(name: string): { rollup: RollupName; n: number } | null {
  const m = GENERATION_RE.exec(name);
  return m ? { rollup: m[1] as RollupName, n: Number(m[2]) } : null;
}
