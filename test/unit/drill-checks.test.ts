// The restore drill's judgement, table-driven: what makes a restored database fail (missing
// hypertable or chunks, restore mode left on, a broken unique key, a rollup that no longer
// refreshes as after timescale/timescaledb #6389), and the comparison with a reference database.
import { describe, expect, it } from 'vitest';
import { type DrillObservation, drillProblems, type Inspection } from '../../src/tools/drill-checks.ts';

const good: Inspection = {
  extension: '2.19.3',
  restoreModeOn: false,
  hypertable: true,
  chunks: 3,
  compressedChunks: 0,
  jobs: ['policy_compression:esp_telemetry'],
  rollups: ['esp_telemetry_1h_g1'],
  uniqueKey: { present: true, duplicates: 0 },
  rows: 30,
  allRows: 30,
  wells: [
    { wellId: 'A', rows: 10, md5: 'a' },
    { wellId: 'B', rows: 20, md5: 'b' },
  ],
};
const ok: DrillObservation = { restored: good, uniqueKeyProbe: 'rejected', rollupRefresh: { esp_telemetry_1h_g1: 'refreshed' } };

describe('drillProblems', () => {
  it('passes a sound restore, with and without a matching reference', () => {
    expect(drillProblems(ok)).toEqual([]);
    expect(drillProblems({ ...ok, reference: good })).toEqual([]);
  });

  it.each([
    { name: 'no extension', o: { ...ok, restored: { ...good, extension: null, hypertable: false } }, problem: /TimescaleDB is not installed/ },
    { name: 'restore mode left on', o: { ...ok, restored: { ...good, restoreModeOn: true } }, problem: /timescaledb_post_restore\(\)/ },
    { name: 'plain table', o: { ...ok, restored: { ...good, hypertable: false } }, problem: /not a hypertable/ },
    { name: 'readings without chunks', o: { ...ok, restored: { ...good, chunks: 0 } }, problem: /no chunks/ },
    { name: 'nothing restored', o: { ...ok, restored: { ...good, rows: 0, wells: [] } }, problem: /no readings/ },
    { name: 'unique key gone', o: { ...ok, restored: { ...good, uniqueKey: { present: false, duplicates: 0 } } }, problem: /unique key is missing/ },
    {
      name: 'duplicates stored',
      o: { ...ok, restored: { ...good, uniqueKey: { present: true, duplicates: 2 } } },
      problem: /2 \(well_id, ts\) keys are stored more than once/,
    },
    { name: 'duplicate accepted', o: { ...ok, uniqueKeyProbe: 'accepted' as const }, problem: /duplicate \(well_id, ts\) was accepted/ },
    { name: 'jobs without a scheduler', o: { ...ok, scheduler: false }, problem: /job scheduler is not running/ },
    {
      name: 'rollup refresh fails',
      o: { ...ok, rollupRefresh: { esp_telemetry_1h_g1: 'invalidation threshold for hypertable 3 not found' } },
      problem: /esp_telemetry_1h_g1 does not refresh: invalidation threshold/,
    },
    { name: 'a policy lost', o: { ...ok, reference: { ...good, jobs: [...good.jobs, 'policy_retention:esp_telemetry'] } }, problem: /policy jobs differ/ },
    { name: 'a rollup lost', o: { ...ok, reference: { ...good, rollups: [...good.rollups, 'esp_telemetry_1m_g1'] } }, problem: /continuous aggregates differ/ },
    {
      name: 'a well missing',
      o: { ...ok, reference: { ...good, wells: [...good.wells, { wellId: 'C', rows: 5, md5: 'c' }] } },
      problem: /well C: missing \(reference has 5 readings\)/,
    },
    {
      name: 'a well the reference lacks',
      o: { ...ok, reference: { ...good, wells: [good.wells[0]!] } },
      problem: /well B: 20 readings the reference does not have/,
    },
    {
      name: 'fewer readings',
      o: { ...ok, reference: { ...good, wells: [good.wells[0]!, { wellId: 'B', rows: 21, md5: 'x' }] } },
      problem: /well B: 20 readings, reference 21/,
    },
    {
      name: 'same count, other values',
      o: { ...ok, reference: { ...good, wells: [good.wells[0]!, { wellId: 'B', rows: 20, md5: 'x' }] } },
      problem: /well B: same count \(20\), different checksum/,
    },
  ])('$name', ({ o, problem }) => {
    const problems = drillProblems(o);
    expect(
      problems.some((p) => problem.test(p)),
      problems.join('\n'),
    ).toBe(true);
  });
});
