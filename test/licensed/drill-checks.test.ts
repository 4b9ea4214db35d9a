// The restore drill's checks on licensed TimescaleDB (PGlite build, test tool only), where the
// production database has compressed chunks, policies and continuous aggregates: the project's
// migrations on the real well data, compression by the policy, then what the drill judges.
// Rollups that lost part of their state, as in timescale/timescaledb #6389 and #5763 after a
// restore, show as totals that disagree with the raw rows.
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CATALOG } from '../../src/decode/catalog.ts';
import type { SqlClient } from '../../src/schema/apply.ts';
import { migrateWith } from '../../src/schema/migrate.ts';
import { drillProblems, inspect, probeUniqueKey, refreshRollups, rollupTotalProblems } from '../../src/tools/drill-checks.ts';
import { type LicensedDb, openLicensedTimescale } from '../support/pglite.ts';
import { sqlClient } from '../support/sql-client.ts';
import { copyOf, wellReadings } from '../support/well-rows.ts';

let db: LicensedDb;
let client: SqlClient;
const readings = wellReadings(DEFAULT_CATALOG);

beforeAll(async () => {
  db = await openLicensedTimescale();
  client = sqlClient(db);
  await migrateWith(client, DEFAULT_CATALOG, pino({ level: 'silent' }));
  const { target, text } = copyOf(DEFAULT_CATALOG, readings);
  await db.copyFrom(target, text);
  // The compression policy, run as the scheduler would (PGlite has no background workers).
  const [job] = (
    await client.query(
      `SELECT job_id FROM timescaledb_information.jobs WHERE hypertable_name = 'esp_telemetry' AND proc_name IN ('policy_compression', 'policy_columnstore')`,
    )
  ).rows as { job_id: number }[];
  await client.query(`CALL run_job(${job!.job_id})`);
});
afterAll(async () => {
  await db?.close();
});

describe('drill checks on licensed TimescaleDB', () => {
  it('a sound database passes: compressed chunks, policy jobs, rollups that refresh and add up, the unique key', async () => {
    const restored = await inspect(client, {});
    expect(restored.rows).toBe(readings.length);
    expect(restored.compressedChunks).toBeGreaterThan(0);
    expect(restored.jobs.some((j) => j.endsWith(':esp_telemetry'))).toBe(true);
    expect(restored.rollups.length).toBeGreaterThan(0);
    const rollupRefresh = await refreshRollups(client, restored.rollups);
    expect(Object.values(rollupRefresh).every((r) => r === 'refreshed')).toBe(true);
    const rollupTotals = await rollupTotalProblems(client, restored.rollups);
    expect(rollupTotals).toEqual([]);
    const uniqueKeyProbe = await probeUniqueKey(client);
    expect(uniqueKeyProbe).toBe('rejected');
    expect(drillProblems({ restored, uniqueKeyProbe, rollupRefresh, rollupTotals, reference: restored })).toEqual([]);
  });

  it('rollups that miss readings are named, per view and well', async () => {
    const { rollups } = await inspect(client, {});
    const g1 = rollups.find((v) => /_g1$/.test(v))!;
    // Readings the rollup has not seen: materialized_only, so real-time aggregation cannot hide them.
    await client.query(`ALTER MATERIALIZED VIEW ${g1} SET (timescaledb.materialized_only = true)`);
    await client.query(`INSERT INTO esp_telemetry (ts, well_id) VALUES ('2030-01-01T00:00:00Z', 'WELL-LATE')`);
    const problems = await rollupTotalProblems(client, [g1]);
    expect(problems).toEqual([`continuous aggregate ${g1}: well WELL-LATE counts 0 readings, esp_telemetry holds 1`]);
  });
});
