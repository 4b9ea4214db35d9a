// Unit tests for the scripts' command-line parsing (src/tools/cli.ts): --help, unknown options as
// one line plus usage, bounded numeric options, closed value lists; and the specs of rejects/replay.
import { describe, expect, it } from 'vitest';
import { replay } from '../../dev/replay.ts';
import { REJECT_REASONS } from '../../src/decode/decode.ts';
import { checkNumber, parseCli } from '../../src/tools/cli.ts';
import { REJECTS_CLI } from '../../src/tools/rejects.ts';

const DEMO = {
  name: 'demo',
  usage: 'usage: npm run demo -- [--speed N] [--per-message N] [--crash]',
  options: {
    speed: { type: 'string', default: '0' },
    'per-message': { type: 'string', default: '1' },
    crash: { type: 'boolean', default: false },
  },
  numbers: { speed: { min: 0 }, 'per-message': { min: 1, integer: true } },
} as const;

describe('parseCli', () => {
  it('defaults: numbers parsed from the string defaults', () => {
    const r = parseCli([], DEMO);
    expect(r).toMatchObject({ kind: 'run', numbers: { speed: 0, 'per-message': 1 }, values: { crash: false } });
  });

  it('given values', () => {
    const r = parseCli(['--speed', '600', '--per-message=10', '--crash'], DEMO);
    expect(r).toMatchObject({ kind: 'run', numbers: { speed: 600, 'per-message': 10 }, values: { crash: true } });
  });

  it.each([['--help'], ['-h'], ['--speed', 'x', '--help'], ['--bogus', '--help']])('%j → the usage, nothing else', (...argv) => {
    expect(parseCli(argv, DEMO)).toEqual({ kind: 'help', text: DEMO.usage });
  });

  it('--help after `--` is a positional, not a request for help', () => {
    expect(parseCli(['--', '--help'], DEMO).kind).toBe('error');
  });

  it.each([
    [['--bogus'], "demo: unknown option '--bogus'"],
    [['--speed'], "demo: option '--speed <value>' argument missing"],
    [['stray'], "demo: unexpected argument 'stray'"],
    [['--per-message', '0'], 'demo: --per-message must be an integer ≥ 1, got "0"'],
    [['--per-message', '1.5'], 'demo: --per-message must be an integer ≥ 1, got "1.5"'],
    [['--per-message', ''], 'demo: --per-message must be an integer ≥ 1, got ""'],
    [['--speed=-1'], 'demo: --speed must be a number ≥ 0, got "-1"'],
    [['--speed', '-1'], "demo: option '--speed' argument is ambiguous: write --speed=VALUE for a value that starts with -"],
    [['--speed', 'fast'], 'demo: --speed must be a number ≥ 0, got "fast"'],
    [['--speed', 'Infinity'], 'demo: --speed must be a number ≥ 0, got "Infinity"'],
  ])('%j → one error line, then the usage', (argv, line) => {
    const r = parseCli(argv, DEMO);
    expect(r.kind).toBe('error');
    const text = (r as { text: string }).text;
    expect(text).toBe(`${line}\n${DEMO.usage}`);
    expect(text).not.toMatch(/ERR_PARSE_ARGS|\n\s+at /);
  });
});

describe('checkNumber', () => {
  it.each([
    ['5', { min: 1, max: 10, integer: true }, 5],
    ['0.5', { min: 0 }, 0.5],
    ['1e3', { min: 0 }, 1000],
    [' 7 ', {}, 7],
  ])('%j within %j → %s', (raw, rule, value) => expect(checkNumber('n', raw, rule)).toEqual({ value }));

  it.each([
    ['11', { min: 1, max: 10, integer: true }, '--n must be an integer ≥ 1 and ≤ 10, got "11"'],
    ['NaN', {}, '--n must be a number, got "NaN"'],
    ['  ', {}, '--n must be a number, got "  "'],
  ])('%j outside %j → %s', (raw, rule, problem) => expect(checkNumber('n', raw, rule)).toEqual({ problem }));
});

describe('rejects command line', () => {
  it('a known reason passes', () => {
    expect(parseCli(['replay', '--reason', 'invalid_ts'], REJECTS_CLI)).toMatchObject({
      kind: 'run',
      positionals: ['replay'],
      values: { reason: 'invalid_ts' },
    });
    expect(parseCli(['list', '--reason', 'db_rejected'], REJECTS_CLI).kind).toBe('run');
  });

  it('an unknown reason is refused with every known one listed', () => {
    const r = parseCli(['replay', '--reason', 'typo_mismatch'], REJECTS_CLI);
    expect(r.kind).toBe('error');
    const line = (r as { text: string }).text.split('\n')[0]!;
    expect(line).toBe(`rejects: --reason: unknown value "typo_mismatch"; known: ${REJECT_REASONS.join(', ')}`);
    expect(line).toContain('db_rejected');
  });

  it('the usage lists every reason code', () => {
    for (const reason of REJECT_REASONS) expect(REJECTS_CLI.usage).toContain(reason);
  });
});

describe('replay options', () => {
  it.each([
    [{ speed: 0, perMessage: 0 }, /perMessage must be an integer ≥ 1/],
    [{ speed: 0, perMessage: 2.5 }, /perMessage must be an integer ≥ 1/],
    [{ speed: -1, perMessage: 1 }, /speed must be a number ≥ 0/],
    [{ speed: Number.NaN, perMessage: 1 }, /speed must be a number ≥ 0/],
    [{ speed: 0, perMessage: 1, window: 0 }, /window must be an integer ≥ 1/],
  ])('%j is refused before connecting', async (o, message) => {
    // Port 9 (discard) on loopback: a connection attempt would fail differently, or hang.
    await expect(replay({ url: 'mqtt://127.0.0.1:9', wells: [], ...o })).rejects.toThrow(message);
  });
});
