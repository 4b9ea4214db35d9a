// What the storage lifecycle reached on this server, feature by feature: the shape shown in
// /readyz (`storage`), the esp_ingest_storage_feature metric and the start-up log line. Pure.
import type { Metrics } from '../metrics/metrics.ts';

/** The features, in the order they are applied; each needs the one named in FEATURE_NEEDS. */
export const FEATURES = ['hypertable', 'compression', 'compression_policy', 'retention_policy', 'rollups'] as const;
export type Feature = (typeof FEATURES)[number];

/** A feature that cannot be applied unless this one is. */
export const FEATURE_NEEDS: Readonly<Record<Feature, Feature | null>> = {
  hypertable: null,
  compression: 'hypertable',
  compression_policy: 'compression',
  retention_policy: 'hypertable',
  rollups: 'hypertable',
};

export const FEATURE_STATES = ['applied', 'unsupported', 'disabled', 'failed'] as const;

/**
 * - `applied`: in place as the settings say (`detail` says how).
 * - `unsupported`: this server cannot (no TimescaleDB, the Apache-only license: SQLSTATE 0A000),
 *   or a feature it needs is unsupported.
 * - `disabled`: off by setting; what an earlier setting created was removed (or, for data, kept:
 *   `reason` says which).
 * - `failed`: the server should support it but refused (`sqlstate`, `reason`); logged as an error.
 */
export type FeatureState =
  | { readonly state: 'applied'; readonly detail: string }
  | { readonly state: 'unsupported'; readonly sqlstate: string | null; readonly reason: string }
  | { readonly state: 'disabled'; readonly reason: string }
  | { readonly state: 'failed'; readonly sqlstate: string | null; readonly reason: string };

/** The storage of `esp_telemetry` summed up in one word (esp_ingest_storage_mode). */
export type StorageMode = 'timescaledb_compressed' | 'timescaledb_hypertable' | 'postgresql_table';
export const STORAGE_MODES: readonly StorageMode[] = ['timescaledb_compressed', 'timescaledb_hypertable', 'postgresql_table'];

export interface StorageReport {
  /** TimescaleDB extension version (`2.19.3`), null without TimescaleDB. */
  readonly timescaledb: string | null;
  /** `timescaledb.license`: `apache` or `timescale`; null without TimescaleDB. */
  readonly license: string | null;
  /** Which API names were used: `columnstore` (2.18+) or `compression` (older). */
  readonly api: 'columnstore' | 'compression' | null;
  readonly mode: StorageMode;
  readonly features: Readonly<Record<Feature, FeatureState>>;
}

/** `timescaledb_compressed` when compression is applied, else by whether the hypertable is. */
export function storageMode(features: Readonly<Record<Feature, FeatureState>>): StorageMode {
  if (features.compression.state === 'applied') return 'timescaledb_compressed';
  return features.hypertable.state === 'applied' ? 'timescaledb_hypertable' : 'postgresql_table';
}

/** One line: `hypertable applied; compression unsupported (0A000); retention_policy disabled`. */
export function describeStorage(report: StorageReport): string {
  const parts = FEATURES.map((f) => {
    const s = report.features[f];
    return s.state === 'unsupported' || s.state === 'failed' ? `${f} ${s.state}${s.sqlstate ? ` (${s.sqlstate})` : ''}` : `${f} ${s.state}`;
  });
  const server = report.timescaledb ? `TimescaleDB ${report.timescaledb} (${report.license ?? 'unknown'} license)` : 'PostgreSQL without TimescaleDB';
  return `storage on ${server}: ${parts.join('; ')}`;
}

/** Sets esp_ingest_storage_mode and esp_ingest_storage_feature from `report`: a 1 for each mode and feature state in use, 0 for the others. */
export function exportStorageReport(metrics: Pick<Metrics, 'storageMode' | 'storageFeature'>, report: StorageReport): void {
  for (const mode of STORAGE_MODES) metrics.storageMode.set({ mode }, mode === report.mode ? 1 : 0);
  for (const feature of FEATURES) {
    for (const state of FEATURE_STATES) metrics.storageFeature.set({ feature, state }, report.features[feature].state === state ? 1 : 0);
  }
}
