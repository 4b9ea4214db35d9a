// Command-line parsing shared by the scripts (demo, replay, bench, rejects): node:util parseArgs
// plus `--help`, bounded numeric options and closed lists of values. `parseCli` is pure (tested
// in test/unit/cli.test.ts); `parseCliOrExit` prints help (exit 0) or one error line + usage (exit 2).
import { type ParseArgsConfig, parseArgs } from 'node:util';

type Options = NonNullable<ParseArgsConfig['options']>;

/** Bounds of a numeric option; `integer` refuses fractions. Both bounds inclusive. */
export interface NumberRule {
  readonly min?: number;
  readonly max?: number;
  readonly integer?: boolean;
}

export interface CliSpec<O extends Options, N extends string> {
  /** The script's name, e.g. `demo`; it starts every error line. */
  readonly name: string;
  /** Usage text, several lines, printed by `--help` and after every error. */
  readonly usage: string;
  /** parseArgs options (`--help`/`-h` is added). */
  readonly options: O;
  readonly allowPositionals?: boolean;
  /** String options that must hold a number within bounds; each needs a default. */
  readonly numbers?: { readonly [K in N]: NumberRule };
  /** String options whose value, when given, must be one of a list (e.g. reason codes). */
  readonly choices?: { readonly [K in keyof O]?: readonly string[] };
}

type Parsed<O extends Options> = ReturnType<typeof parseArgs<{ options: O; args: string[]; allowPositionals: true; strict: true }>>;

export type CliResult<O extends Options, N extends string> =
  | { readonly kind: 'run'; readonly values: Parsed<O>['values']; readonly positionals: string[]; readonly numbers: { readonly [K in N]: number } }
  | { readonly kind: 'help'; readonly text: string }
  | { readonly kind: 'error'; readonly text: string };

/** `--per-message must be an integer ≥ 1, got "0"`, or undefined when `raw` obeys `rule`. */
export function checkNumber(option: string, raw: string, rule: NumberRule): { value: number } | { problem: string } {
  const n = raw.trim() === '' ? Number.NaN : Number(raw);
  const bounds = [rule.min !== undefined ? `≥ ${rule.min}` : '', rule.max !== undefined ? `≤ ${rule.max}` : ''].filter(Boolean).join(' and ');
  const want = `${rule.integer ? 'an integer' : 'a number'}${bounds ? ` ${bounds}` : ''}`;
  const bad =
    !Number.isFinite(n) || (rule.integer && !Number.isInteger(n)) || (rule.min !== undefined && n < rule.min) || (rule.max !== undefined && n > rule.max);
  return bad ? { problem: `--${option} must be ${want}, got ${JSON.stringify(raw)}` } : { value: n };
}

/**
 * Parses `argv` (without node and the script) against `spec`. Never throws on user input:
 * unknown options, missing values, stray positionals, bad numbers and values outside `choices`
 * come back as `{ kind: 'error', text }` (one line, then the usage); `--help` as `kind: 'help'`.
 */
export function parseCli<O extends Options, N extends string = never>(argv: readonly string[], spec: CliSpec<O, N>): CliResult<O, N> {
  const fail = (line: string): CliResult<O, N> => ({ kind: 'error', text: `${spec.name}: ${line}\n${spec.usage}` });
  const end = argv.indexOf('--');
  const options = end === -1 ? argv : argv.slice(0, end);
  if (options.includes('--help') || options.includes('-h')) return { kind: 'help', text: spec.usage };
  let parsed: Parsed<O>;
  try {
    parsed = parseArgs({ args: [...argv], options: spec.options, allowPositionals: spec.allowPositionals ?? false, strict: true }) as Parsed<O>;
  } catch (err) {
    // parseArgs' messages carry advice after the first sentence; the first names the fault.
    const message = err instanceof Error ? err.message : String(err);
    const fault = message
      .split('\n')[0]!
      .split('. ')[0]!
      .replace(/\.$/, '')
      .replace(/^./, (c) => c.toLowerCase());
    const option = /'(--[^' ]+)/.exec(message)?.[1];
    return fail(fault.includes('ambiguous') && option ? `${fault}: write ${option}=VALUE for a value that starts with -` : fault);
  }
  const values = parsed.values as Record<string, unknown>;
  const numbers: Record<string, number> = {};
  for (const [option, rule] of Object.entries(spec.numbers ?? {}) as [string, NumberRule][]) {
    const raw = values[option];
    if (typeof raw !== 'string') throw new Error(`cli spec of ${spec.name}: numeric option --${option} needs a string default`);
    const checked = checkNumber(option, raw, rule);
    if ('problem' in checked) return fail(checked.problem);
    numbers[option] = checked.value;
  }
  for (const [option, allowed] of Object.entries(spec.choices ?? {}) as [string, readonly string[]][]) {
    const raw = values[option];
    if (typeof raw === 'string' && !allowed.includes(raw)) return fail(`--${option}: unknown value ${JSON.stringify(raw)}; known: ${allowed.join(', ')}`);
  }
  return { kind: 'run', values: parsed.values, positionals: parsed.positionals, numbers: numbers as { [K in N]: number } };
}

/** `parseCli` for a script's entry point: on help prints it and exits 0, on error exits 2. */
export function parseCliOrExit<O extends Options, N extends string = never>(
  argv: readonly string[],
  spec: CliSpec<O, N>,
): Extract<CliResult<O, N>, { kind: 'run' }> {
  const r = parseCli(argv, spec);
  if (r.kind === 'run') return r;
  if (r.kind === 'help') {
    process.stdout.write(`${r.text}\n`);
    process.exit(0);
  }
  process.stderr.write(`${r.text}\n`);
  process.exit(2);
}

/** One error line and the usage on stderr, for checks a script makes after parsing; returns 2. */
export function usageError(spec: { readonly name: string; readonly usage: string }, line: string): 2 {
  process.stderr.write(`${spec.name}: ${line}\n${spec.usage}\n`);
  return 2;
}
