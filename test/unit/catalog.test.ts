// Unit tests for the channel catalog and its checks.
import { describe, expect, it } from 'vitest';
import { catalogProblems, DEFAULT_CATALOG, RESERVED_COLUMNS } from '../../src/decode/catalog.ts';
import { channel } from '../support/fixtures.ts';

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
    ['a valid single channel', [channel('motor_current_a')], []],
    ['a 57-character name (its rollup column `_count` has 63)', [channel('a'.repeat(57))], []],
    ['min equal to max', [channel('x_a', 5, 5)], []],
    ['an empty catalog', [], []],
  ])('accepts %s', (_what, catalog, problems) => {
    expect(catalogProblems(catalog)).toEqual(problems);
  });

  it.each([
    ['upper case', [channel('Motor_a')], /must match/],
    ['a leading digit', [channel('1_a')], /must match/],
    ['a hyphen', [channel('motor-a')], /must match/],
    ['a quote (SQL injection)', [channel('a"; drop table x; --')], /must match/],
    ['an empty name', [channel('')], /must match/],
    ['a 64-character name', [channel('a'.repeat(64))], /must match/],
    ['a reserved name', [channel('ts')], /reserved/],
    ['another reserved name', [channel('extra')], /reserved/],
    ['a duplicate', [channel('x_a'), channel('x_a')], /declared twice/],
    ['min above max', [channel('x_a', 2, 1)], /min 2 > max 1/],
    ['a NaN bound', [channel('x_a', Number.NaN, 1)], /min NaN > max 1/],
  ])('reports %s', (_what, catalog, problem) => {
    const problems = catalogProblems(catalog);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(problem);
  });

  it('reports every problem, one per line', () => {
    expect(catalogProblems([channel('Bad'), channel('ts'), channel('x_a', 3, 1), channel('x_a')])).toHaveLength(4);
  });
});
