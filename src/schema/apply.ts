// The storage applier: detects TimescaleDB (version, license), reads what is in place, runs the
// plan (plan.ts) feature by feature and reports each feature's state. Runs under the migration
// lock (migrate.ts). It never fails on a feature the server lacks; it throws only on a transient
// database error (migrate is then retried).
import type { Channel } from '../decode/catalog.ts';
import type { Logger } from '../log/logger.ts';
import { classifyDbError, sqlstateOf } from '../sink/sqlstate.ts';
import { type Observed, type ObservedGeneration, parseGenerationName, planStorage, type ServerFacts, TABLE, usesColumnstoreApi } from './plan.ts';
import { describeStorage, FEATURE_NEEDS, FEATURES, type Feature, type FeatureState, type StorageReport, storageMode } from './report.ts';
import { channelsOfColumns, rollupViewName } from './rollups.ts';
import { ROLLUP_NAMES, type RollupName, type StorageSettings } from './settings.ts';

/**
 * The narrow query surface the applier needs: node-postgres' `PoolClient` and `Client` satisfy
 * it, and so does the PGlite adapter of the licensed tests. `params` are `$1…` placeholders.
 */
export interface SqlClient {
  query(text: string, params?: unknown[]): Promise<{ rows: unknown[] }>;
}

async function rows<T>(client: SqlClient, text: string, params?: unknown[]): Promise<T[]> {
  return (await client.query(text, params)).rows as T[];
}

/**
 * Brings the storage of esp_telemetry to `settings` on whatever the server supports.
 * @returns the report (also logged as one line: info, or warn when a feature failed).
 * @throws the database error when it is transient (connection lost, lock timeout…).
 */
export async function applyStorage(client: SqlClient, settings: StorageSettings, catalog: readonly Channel[], log: Logger): Promise<StorageReport> {
  const server = await detectTimescale(client);
  let report: StorageReport;
  if ('reason' in server) {
    const features = Object.fromEntries(FEATURES.map((f) => [f, { state: 'unsupported', sqlstate: server.sqlstate, reason: server.reason }])) as Record<
      Feature,
      FeatureState
    >;
    report = { timescaledb: null, license: null, api: null, mode: storageMode(features), features };
  } else {
    const observed = await observe(client);
    const features = {} as Record<Feature, FeatureState>;
    for (const plan of planStorage(server, observed, settings, catalog)) {
      const need = FEATURE_NEEDS[plan.feature];
      const needed = need ? features[need] : undefined;
      if (needed && needed.state !== 'applied' && plan.target.kind === 'apply') {
        const sqlstate = needed.state === 'unsupported' || needed.state === 'failed' ? needed.sqlstate : null;
        features[plan.feature] = { state: needed.state === 'failed' ? 'failed' : 'unsupported', sqlstate, reason: `needs ${need}, which is ${needed.state}` };
        continue;
      }
      features[plan.feature] = await runPlan(client, plan.feature, plan.steps, plan.target, log);
    }
    report = {
      timescaledb: server.version,
      license: server.license,
      api: usesColumnstoreApi(server) ? 'columnstore' : 'compression',
      mode: storageMode(features),
      features,
    };
  }
  const failed = FEATURES.some((f) => report.features[f].state === 'failed');
  log[failed ? 'warn' : 'info']({ event: 'storage_features', storage: report }, describeStorage(report));
  return report;
}

async function runPlan(
  client: SqlClient,
  feature: Feature,
  steps: readonly { sql: string; note: string }[],
  target: { kind: 'apply'; detail: string } | { kind: 'disable'; reason: string },
  log: Logger,
): Promise<FeatureState> {
  for (const step of steps) {
    try {
      await client.query(step.sql);
    } catch (err) {
      const sqlstate = sqlstateOf(err);
      // Transient: let migrate retry the whole start-up. Anything else is this feature's state.
      if (sqlstate === null || classifyDbError(err) === 'retry') throw err;
      const reason = (err as Error).message;
      // 0A000 feature_not_supported (the Apache license); 42883/42704: the function or option
      // does not exist in this version.
      if (sqlstate === '0A000' || sqlstate === '42883' || sqlstate === '42704') return { state: 'unsupported', sqlstate, reason };
      log.error({ err, feature, sql: step.sql }, `storage: ${feature} failed`);
      return { state: 'failed', sqlstate, reason };
    }
    log.info({ feature }, `storage: ${step.note}`);
  }
  return target.kind === 'apply' ? { state: 'applied', detail: target.detail } : { state: 'disabled', reason: target.reason };
}

/**
 * Finds a usable TimescaleDB: installed in this database (created here when the server has it),
 * and its library loaded (preloaded, or `timescaledb.license` defined, as in PGlite). Without
 * the preload TimescaleDB refuses to load and may end the session, so it is not tried then.
 */
async function detectTimescale(client: SqlClient): Promise<ServerFacts | { reason: string; sqlstate: string | null }> {
  const probe = async () =>
    (
      await rows<{ installed: string | null; available: string | null; preloaded: boolean; license: string | null }>(
        client,
        `SELECT (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb') AS installed,
            (SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb') AS available,
            current_setting('shared_preload_libraries') ~ 'timescaledb' AS preloaded,
            current_setting('timescaledb.license', true) AS license`,
      )
    )[0];
  let row = await probe();
  const loaded = (r: typeof row) => Boolean(r?.preloaded || r?.license);
  if (!row?.installed) {
    if (!row?.available) return { reason: 'TimescaleDB is not installed on this server: a plain PostgreSQL table', sqlstate: null };
    if (!loaded(row)) return { reason: 'TimescaleDB is installed but not in shared_preload_libraries: a plain PostgreSQL table', sqlstate: null };
    try {
      await client.query('CREATE EXTENSION IF NOT EXISTS timescaledb');
    } catch (err) {
      if (classifyDbError(err) === 'retry') throw err;
      return { reason: `CREATE EXTENSION timescaledb failed: ${(err as Error).message}`, sqlstate: sqlstateOf(err) };
    }
    row = await probe();
  }
  if (!row?.installed || !loaded(row))
    return { reason: 'TimescaleDB is not loaded (not in shared_preload_libraries): a plain PostgreSQL table', sqlstate: null };
  return { version: row.installed, license: row.license ?? null };
}

/** Reads what is in place: hypertable, chunk interval, compression, policies, rollups. */
export async function observe(client: SqlClient): Promise<Observed> {
  const [ht] = await rows<{ compression_enabled: boolean; chunk_interval_s: number | null }>(
    client,
    `SELECT h.compression_enabled,
            (SELECT EXTRACT(epoch FROM d.time_interval)::float8 FROM timescaledb_information.dimensions d
              WHERE d.hypertable_schema = h.hypertable_schema AND d.hypertable_name = h.hypertable_name AND d.column_name = 'ts') AS chunk_interval_s
       FROM timescaledb_information.hypertables h
      WHERE h.hypertable_schema = current_schema() AND h.hypertable_name = $1`,
    [TABLE],
  );
  const jobs = await rows<{
    proc_name: string;
    view_name: string | null;
    after_s: number | null;
    start_s: number | null;
    end_s: number | null;
    schedule_s: number;
    batch: number | null;
  }>(
    client,
    `SELECT j.proc_name, c.view_name,
            EXTRACT(epoch FROM COALESCE(j.config->>'compress_after', j.config->>'drop_after')::interval)::float8 AS after_s,
            EXTRACT(epoch FROM (j.config->>'start_offset')::interval)::float8 AS start_s,
            EXTRACT(epoch FROM (j.config->>'end_offset')::interval)::float8 AS end_s,
            EXTRACT(epoch FROM j.schedule_interval)::float8 AS schedule_s,
            (j.config->>'buckets_per_batch')::int AS batch
       FROM timescaledb_information.jobs j
       LEFT JOIN timescaledb_information.continuous_aggregates c
         ON j.proc_name = 'policy_refresh_continuous_aggregate'
        AND c.view_schema = current_schema()
        AND (j.hypertable_name = c.view_name OR j.hypertable_name = c.materialization_hypertable_name)
      WHERE (j.hypertable_schema = current_schema() AND j.hypertable_name = $1 AND j.proc_name IN ('policy_compression', 'policy_retention'))
         OR (j.proc_name = 'policy_refresh_continuous_aggregate' AND c.view_name IS NOT NULL)`,
    [TABLE],
  );
  const policy = (proc: string) => {
    const j = jobs.find((x) => x.proc_name === proc);
    return j ? { afterS: j.after_s } : null;
  };
  const cagg = await rows<{ view_name: string; materialized_only: boolean; columns: string[] }>(
    client,
    `SELECT c.view_name, c.materialized_only,
            ARRAY(SELECT a.attname::text FROM pg_attribute a
                   WHERE a.attrelid = format('%I.%I', c.view_schema, c.view_name)::regclass AND a.attnum > 0 AND NOT a.attisdropped
                   ORDER BY a.attnum) AS columns
       FROM timescaledb_information.continuous_aggregates c
      WHERE c.view_schema = current_schema() AND c.view_name LIKE 'esp\\_telemetry\\_%'`,
  );
  const generations: ObservedGeneration[] = [];
  for (const c of cagg) {
    const g = parseGenerationName(c.view_name);
    if (!g) continue;
    const j = jobs.find((x) => x.proc_name === 'policy_refresh_continuous_aggregate' && x.view_name === c.view_name);
    generations.push({
      ...g,
      channels: channelsOfColumns(c.columns),
      materializedOnly: c.materialized_only,
      policy: j ? { startOffsetS: j.start_s, endOffsetS: j.end_s, scheduleS: j.schedule_s, bucketsPerBatch: j.batch } : null,
    });
  }
  const viewColumns: Partial<Record<RollupName, string[]>> = {};
  for (const rollup of ROLLUP_NAMES) {
    const [v] = await rows<{ columns: string[] | null }>(
      client,
      `SELECT CASE WHEN to_regclass($1) IS NULL THEN NULL ELSE
              ARRAY(SELECT attname::text FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum) END AS columns`,
      [rollupViewName(rollup)],
    );
    if (v?.columns) viewColumns[rollup] = v.columns;
  }
  return {
    hypertable: ht ? { chunkIntervalS: ht.chunk_interval_s } : null,
    compressionEnabled: ht?.compression_enabled ?? false,
    compressionPolicy: policy('policy_compression'),
    retentionPolicy: policy('policy_retention'),
    generations,
    viewColumns,
  };
}
