// Unit tests for the channel catalog and its checks.
import { describe, expect, it } from 'vitest';
import { catalogProblems, DEFAULT_CATALOG, RESERVED_COLUMNS, type Channel } from '../../src/decode/catalog.ts';

const ch = (column: string, min = 0, max = 1): Channel => ({ column, unit: 'u', min, max, description: 'test' });

describe('DEFAULT_CATALOG', () => {
  it('has no problems', () => {
    expect(catalogProblems(DEFAULT_CATALOG)).toEqual([]);
  });

  it('declares each column once and none reserved', () => {
    const columns = DEFAULT_CATALOG.map((c) => c.column);
    expect(new Set(columns).size).toBe(columns.length);
    for (const r of RESERVED_COLUMNS) expect(columns).not.toContain(r);
  });
});

describe('catalogProblems', () => {
  it.each([
    ['a valid single channel', [ch('motor_current_a')], []],
    ['a 57-character name (its rollup column `_count` has 63)', [ch('a'.repeat(57))], []],
    ['min equal to max', [ch('x_a', 5, 5)], []],
    ['an empty catalog', [], []],
  ])('accepts %s', (_what, catalog, problems) => {
    expect(catalogProblems(catalog)).toEqual(problems);
  });

  it.each([
    ['upper case', [ch('Motor_a')], /must match/],
    ['a leading digit', [ch('1_a')], /must match/],
    ['a hyphen', [ch('motor-a')], /must match/],
    ['a quote (SQL injection)', [ch('a"; drop table x; --')], /must match/],
    ['an empty name', [ch('')], /must match/],
    ['a 64-character name', [ch('a'.repeat(64))], /must match/],
    ['a reserved name', [ch('ts')], /reserved/],
    ['another reserved name', [ch('extra')], /reserved/],
    ['a duplicate', [ch('x_a'), ch('x_a')], /declared twice/],
    ['min above max', [ch('x_a', 2, 1)], /min 2 > max 1/],
    ['a NaN bound', [ch('x_a', Number.NaN, 1)], /min NaN > max 1/],
  ])('reports %s', (_what, catalog, problem) => {
    const problems = catalogProblems(catalog);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(problem);
  });

  it('reports every problem, one per line', () => {
    expect(catalogProblems([ch('Bad'), ch('ts'), ch('x_a', 3, 1), ch('x_a')])).toHaveLength(4);
  });
});
