// What a restore drill checks in a restored database: readings per well (count and a checksum
// over whole rows), the hypertable and its chunks, policy jobs, continuous aggregates that still
// refresh (timescale/timescaledb #6389, #5763: thresholds and watermarks lost in restores), and
// the (well_id, ts) unique key. `inspect` reads; `drillProblems` is the pure judgement.
import type { SqlClient } from '../schema/apply.ts';
import { sqlstateOf } from '../sink/sqlstate.ts';

/** Readings of one well: how many, and md5 over their rows in text form, ordered by device time. */
export interface WellSum {
  readonly wellId: string;
  readonly rows: number;
  readonly md5: string;
}

/** A device-time range `[from, to)`; either end open when undefined. */
export interface TsRange {
  readonly from?: string | undefined;
  readonly to?: string | undefined;
}

export interface Inspection {
  /** Installed TimescaleDB version; null without the extension. */
  readonly extension: string | null;
  /** `timescaledb.restoring` still on for this database. */
  readonly restoreModeOn: boolean;
  readonly hypertable: boolean;
  readonly chunks: number;
  readonly compressedChunks: number;
  /** Background jobs on esp_telemetry and its rollups, `proc_name:relation`, sorted. */
  readonly jobs: string[];
  /** Continuous aggregates (materialised views), sorted. */
  readonly rollups: string[];
  readonly uniqueKey: { readonly present: boolean; readonly duplicates: number };
  /** Readings in the range (the sum over `wells`). */
  readonly rows: number;
  /** Readings in the whole table, whatever the range. */
  readonly allRows: number;
  readonly wells: WellSum[];
}

/**
 * Per-well count and checksum of esp_telemetry over `range` (positional parameters $1, $2 as
 * timestamptz or NULL). The row text is PostgreSQL's composite output of the whole row, so a
 * changed value, column or ingest time changes the checksum.
 */
export const WELL_SUMS_SQL = `SELECT well_id, count(*)::int AS rows, md5(string_agg(t::text, E'\\n' ORDER BY ts)) AS md5
  FROM esp_telemetry t
  WHERE ($1::timestamptz IS NULL OR ts >= $1) AND ($2::timestamptz IS NULL OR ts < $2)
  GROUP BY well_id ORDER BY well_id`;

async function rows<T>(client: SqlClient, text: string, params?: unknown[]): Promise<T[]> {
  return (await client.query(text, params)).rows as T[];
}

/** Readings per well over `range`. */
export async function wellSums(client: SqlClient, range: TsRange): Promise<WellSum[]> {
  const r = await rows<{ well_id: string; rows: number; md5: string }>(client, WELL_SUMS_SQL, [range.from ?? null, range.to ?? null]);
  return r.map((w) => ({ wellId: w.well_id, rows: w.rows, md5: w.md5 }));
}

/** Reads everything the drill judges, without changing anything. */
export async function inspect(client: SqlClient, range: TsRange): Promise<Inspection> {
  const [ext] = await rows<{ v: string | null; restoring: string | null }>(
    client,
    `SELECT
      (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb') AS v,
      current_setting('timescaledb.restoring', true) AS restoring`,
  );
  const extension = ext?.v ?? null;
  const [key] = await rows<{ present: boolean }>(
    client,
    `SELECT EXISTS (SELECT 1 FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid
      WHERE r.relname = 'esp_telemetry' AND c.contype IN ('u', 'p') AND c.convalidated
        AND (SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_attribute a WHERE a.attrelid = r.oid AND a.attnum = ANY (c.conkey)) = ARRAY['ts', 'well_id']) AS present`,
  );
  const [dups] = await rows<{ n: number }>(client, `SELECT count(*)::int AS n FROM (SELECT 1 FROM esp_telemetry GROUP BY well_id, ts HAVING count(*) > 1) d`);
  const wells = await wellSums(client, range);
  const [all] = await rows<{ n: number }>(client, 'SELECT count(*)::int AS n FROM esp_telemetry');
  let hypertable = false;
  let chunks = 0;
  let compressedChunks = 0;
  let jobs: string[] = [];
  let rollups: string[] = [];
  if (extension !== null) {
    const [h] = await rows<{ n: number }>(client, `SELECT count(*)::int AS n FROM timescaledb_information.hypertables WHERE hypertable_name = 'esp_telemetry'`);
    hypertable = (h?.n ?? 0) > 0;
    const [c] = await rows<{ n: number; compressed: number }>(
      client,
      `SELECT count(*)::int AS n, count(*) FILTER (WHERE is_compressed)::int AS compressed
      FROM timescaledb_information.chunks WHERE hypertable_name = 'esp_telemetry'`,
    );
    chunks = c?.n ?? 0;
    compressedChunks = c?.compressed ?? 0;
    rollups = (await rows<{ v: string }>(client, `SELECT view_name::text AS v FROM timescaledb_information.continuous_aggregates ORDER BY 1`)).map((r) => r.v);
    jobs = (
      await rows<{ j: string }>(
        client,
        `SELECT j.proc_name || ':' || coalesce(ca.view_name, j.hypertable_name) AS j
      FROM timescaledb_information.jobs j
      LEFT JOIN timescaledb_information.continuous_aggregates ca ON ca.materialization_hypertable_name = j.hypertable_name
      WHERE j.hypertable_name IS NOT NULL ORDER BY 1`,
      )
    ).map((r) => r.j);
  }
  return {
    extension,
    restoreModeOn: ext?.restoring === 'on',
    hypertable,
    chunks,
    compressedChunks,
    jobs,
    rollups,
    uniqueKey: { present: key?.present === true, duplicates: dups?.n ?? 0 },
    rows: wells.reduce((n, w) => n + w.rows, 0),
    allRows: all?.n ?? 0,
    wells,
  };
}

/**
 * Inserts a copy of one stored reading's key inside a transaction that is rolled back:
 * `rejected` when the unique key refuses it (23505), `accepted` when it does not (the key is
 * broken), `empty` when there is nothing to copy. Only for a drill's throwaway server.
 */
export async function probeUniqueKey(client: SqlClient): Promise<'rejected' | 'accepted' | 'empty'> {
  await client.query('BEGIN');
  try {
    const r = await rows<{ n: number }>(
      client,
      `WITH one AS (SELECT ts, well_id FROM esp_telemetry LIMIT 1)
      INSERT INTO esp_telemetry (ts, well_id) SELECT ts, well_id FROM one RETURNING 1 AS n`,
    );
    return r.length === 0 ? 'empty' : 'accepted';
  } catch (err) {
    if (sqlstateOf(err) === '23505') return 'rejected';
    throw err;
  } finally {
    await client.query('ROLLBACK');
  }
}

/**
 * Refreshes every continuous aggregate over its whole range (needs autocommit: CALL cannot run
 * in a transaction block). @returns view → `refreshed` or the error text.
 */
export async function refreshRollups(client: SqlClient, views: readonly string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const view of views) {
    try {
      // The name comes from the catalog; quote_ident keeps it one identifier.
      const [q] = await rows<{ q: string }>(client, 'SELECT quote_ident($1) AS q', [view]);
      await client.query(`CALL refresh_continuous_aggregate('${q!.q.replace(/'/g, "''")}', NULL, NULL)`);
      out[view] = 'refreshed';
    } catch (err) {
      out[view] = (err as Error).message;
    }
  }
  return out;
}

/**
 * Readings per well in each rollup that counts rows (a `readings` column: generation 1 of
 * rollups.ts) against `count(*)` of esp_telemetry: after a refresh they must agree, or the
 * restore lost part of the rollups' state. @returns one sentence per disagreement.
 */
export async function rollupTotalProblems(client: SqlClient, views: readonly string[]): Promise<string[]> {
  const problems: string[] = [];
  const raw = new Map(
    (await rows<{ w: string; n: number }>(client, 'SELECT well_id AS w, count(*)::int AS n FROM esp_telemetry GROUP BY well_id')).map((r) => [r.w, r.n]),
  );
  for (const view of views) {
    const [hasReadings] = await rows<{ ok: boolean }>(
      client,
      `SELECT EXISTS (SELECT 1 FROM information_schema.columns
        WHERE table_schema = current_schema() AND table_name = $1 AND column_name = 'readings') AS ok`,
      [view],
    );
    if (!hasReadings?.ok) continue;
    const [q] = await rows<{ q: string }>(client, 'SELECT quote_ident($1) AS q', [view]);
    const rolled = new Map(
      (await rows<{ w: string; n: number }>(client, `SELECT well_id AS w, sum(readings)::int AS n FROM ${q!.q} GROUP BY well_id`)).map((r) => [r.w, r.n]),
    );
    for (const well of [...new Set([...raw.keys(), ...rolled.keys()])].sort()) {
      const a = rolled.get(well) ?? 0;
      const b = raw.get(well) ?? 0;
      if (a !== b) problems.push(`continuous aggregate ${view}: well ${well} counts ${a} readings, esp_telemetry holds ${b}`);
    }
  }
  return problems;
}

/**
 * Waits up to `timeoutMs` for TimescaleDB's background-worker scheduler of this database (it runs
 * the policies and rollup refreshes; after some restores it died and jobs stopped until a
 * restart: timescale/timescaledb #1712). @returns whether it runs.
 */
export async function schedulerRunning(client: SqlClient, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const [r] = await rows<{ up: boolean }>(
      client,
      `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
      WHERE datname = current_database() AND backend_type = 'TimescaleDB Background Worker Scheduler') AS up`,
    );
    if (r?.up || Date.now() > end) return r?.up === true;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** What the drill observed on the restored server. */
export interface DrillObservation {
  readonly restored: Inspection;
  /** The TimescaleDB job scheduler of the database runs (undefined: not checked, no TimescaleDB). */
  readonly scheduler?: boolean | undefined;
  readonly uniqueKeyProbe: 'rejected' | 'accepted' | 'empty';
  readonly rollupRefresh: Record<string, string>;
  /** The same inspection of a reference database (`--compare-url`), when given. */
  readonly reference?: Inspection | undefined;
  /** rollupTotalProblems after the refresh. */
  readonly rollupTotals?: readonly string[] | undefined;
}

/** Everything wrong with a restore, one sentence each; empty when the drill passes. Pure. */
export function drillProblems(o: DrillObservation): string[] {
  const p: string[] = [];
  const r = o.restored;
  if (r.extension === null) p.push('TimescaleDB is not installed in the restored database');
  if (r.restoreModeOn) p.push('timescaledb.restoring is still on: run SELECT timescaledb_post_restore();');
  if (r.extension !== null && !r.hypertable) p.push('esp_telemetry is not a hypertable');
  if (r.hypertable && r.rows > 0 && r.chunks === 0) p.push('esp_telemetry has readings but no chunks');
  if (r.rows === 0) p.push('no readings in the restored range');
  if (!r.uniqueKey.present) p.push('the (well_id, ts) unique key is missing or not valid');
  if (r.uniqueKey.duplicates > 0) p.push(`${r.uniqueKey.duplicates} (well_id, ts) keys are stored more than once`);
  if (o.uniqueKeyProbe === 'accepted') p.push('a duplicate (well_id, ts) was accepted');
  if (o.scheduler === false)
    p.push(
      "TimescaleDB's job scheduler is not running for the database, so no policy or rollup refresh runs: check timescaledb.max_background_workers and the server log",
    );
  for (const [view, result] of Object.entries(o.rollupRefresh)) if (result !== 'refreshed') p.push(`continuous aggregate ${view} does not refresh: ${result}`);
  p.push(...(o.rollupTotals ?? []));
  const ref = o.reference;
  if (ref) {
    const same = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x, i) => x === b[i]);
    if (!same(r.jobs, ref.jobs)) p.push(`policy jobs differ: restored [${r.jobs.join(', ')}], reference [${ref.jobs.join(', ')}]`);
    if (!same(r.rollups, ref.rollups)) p.push(`continuous aggregates differ: restored [${r.rollups.join(', ')}], reference [${ref.rollups.join(', ')}]`);
    if (r.hypertable !== ref.hypertable) p.push(`hypertable: restored ${r.hypertable}, reference ${ref.hypertable}`);
    const mine = new Map(r.wells.map((w) => [w.wellId, w]));
    const theirs = new Map(ref.wells.map((w) => [w.wellId, w]));
    for (const id of [...new Set([...mine.keys(), ...theirs.keys()])].sort()) {
      const a = mine.get(id);
      const b = theirs.get(id);
      if (!a) p.push(`well ${id}: missing (reference has ${b!.rows} readings)`);
      else if (!b) p.push(`well ${id}: ${a.rows} readings the reference does not have`);
      else if (a.rows !== b.rows) p.push(`well ${id}: ${a.rows} readings, reference ${b.rows}`);
      else if (a.md5 !== b.md5) p.push(`well ${id}: same count (${a.rows}), different checksum`);
    }
  }
  return p;
}
