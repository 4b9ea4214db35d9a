// Unit tests for the rollup naming contract (src/schema/rollup-columns.ts).
import { describe, expect, it } from 'vitest';
import { DEFAULT_CATALOG } from '../../src/decode/catalog.ts';
import { rollupColumnNames, rollupColumnProblems, rollupColumns } from '../../src/schema/rollup-columns.ts';
import { channel } from '../support/fixtures.ts';

describe('rollupColumnNames', () => {
  it('gives the keys, the row count, then five aggregates per channel in catalog order', () => {
    expect(rollupColumnNames([channel('intake_pressure_kpa'), channel('motor_current_a')])).toEqual([
      'well_id',
      'bucket',
      'readings',
      'intake_pressure_kpa_min',
      'intake_pressure_kpa_max',
      'intake_pressure_kpa_avg',
      'intake_pressure_kpa_last',
      'intake_pressure_kpa_count',
      'motor_current_a_min',
      'motor_current_a_max',
      'motor_current_a_avg',
      'motor_current_a_last',
      'motor_current_a_count',
    ]);
  });

  it('has only the keys and the row count for an empty catalog', () => {
    expect(rollupColumnNames([])).toEqual(['well_id', 'bucket', 'readings']);
  });

  it('names every column of the default catalog once', () => {
    const names = rollupColumnNames(DEFAULT_CATALOG);
    expect(names).toHaveLength(3 + 5 * DEFAULT_CATALOG.length);
    expect(new Set(names).size).toBe(names.length);
  });
});

describe('rollupColumns', () => {
  it('ties each aggregate column to its channel', () => {
    const cols = rollupColumns([channel('vibration_mm_s')]);
    expect(cols.find((c) => c.name === 'vibration_mm_s_last')).toEqual({ name: 'vibration_mm_s_last', kind: 'last', channel: 'vibration_mm_s' });
    expect(cols.find((c) => c.name === 'readings')).toEqual({ name: 'readings', kind: 'readings' });
  });
});

describe('rollupColumnProblems', () => {
  it('accepts the default catalog', () => {
    expect(rollupColumnProblems(DEFAULT_CATALOG)).toEqual([]);
  });

  it('accepts a 57-character column (its _count is exactly 63)', () => {
    expect(rollupColumnProblems([channel('a'.repeat(57))])).toEqual([]);
  });

  it('names the columns PostgreSQL would truncate', () => {
    expect(rollupColumnProblems([channel('a'.repeat(58))])).toEqual([
      `rollup column "${'a'.repeat(58)}_count" is longer than 63 bytes: shorten the channel's column name`,
    ]);
  });
});
