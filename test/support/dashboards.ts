// Reading the Grafana dashboards and provisioning in ops/grafana/ for the tests: panels and
// their queries, metric names in PromQL, Grafana's SQL macros filled in. Pure, no I/O but files.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './root.ts';

export const DASHBOARD_DIR = path.join(ROOT, 'ops/grafana/dashboards');

export interface DataSourceRef {
  readonly type?: string;
  readonly uid?: string;
}
export interface Target {
  readonly refId: string;
  readonly datasource?: DataSourceRef;
  /** PromQL (Prometheus targets). */
  readonly expr?: string;
  /** SQL (PostgreSQL targets). */
  readonly rawSql?: string;
  readonly format?: string;
}
export interface Panel {
  readonly id: number;
  readonly type: string;
  readonly title: string;
  readonly datasource?: DataSourceRef;
  readonly targets?: Target[];
  readonly panels?: Panel[];
}
export interface Variable {
  readonly name: string;
  readonly type: string;
  readonly datasource?: DataSourceRef;
  readonly query?: string | { query: string };
  readonly options?: { value: string }[];
}
export interface Dashboard {
  readonly uid: string;
  readonly title: string;
  readonly schemaVersion: number;
  readonly panels: Panel[];
  readonly templating: { list: Variable[] };
}

/** Every dashboard file: file name and parsed JSON (throws on a JSON syntax error). */
export function loadDashboards(): { file: string; dashboard: Dashboard }[] {
  return readdirSync(DASHBOARD_DIR)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((file) => ({ file, dashboard: JSON.parse(readFileSync(path.join(DASHBOARD_DIR, file), 'utf8')) as Dashboard }));
}

export function loadDashboard(file: string): Dashboard {
  return JSON.parse(readFileSync(path.join(DASHBOARD_DIR, file), 'utf8')) as Dashboard;
}

/** Panels with rows flattened (a collapsed row holds its panels in `panels`); rows themselves left out. */
export function panelsOf(d: Dashboard): Panel[] {
  return d.panels.flatMap((p) => (p.type === 'row' ? (p.panels ?? []) : [p]));
}

/** Query text of a query variable (string, or the Prometheus editor's `{ query }`). */
export function variableQuery(v: Variable): string | undefined {
  return typeof v.query === 'string' ? v.query : v.query?.query;
}

/** Words of PromQL that are operators or keywords, never metric names. */
const PROMQL_WORDS = new Set([
  'and',
  'or',
  'unless',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'offset',
  'atop',
  'sum',
  'min',
  'max',
  'avg',
  'count',
  'stddev',
  'stdvar',
  'topk',
  'bottomk',
  'quantile',
  'count_values',
  'group',
  'limitk',
  'limit_ratio',
  'inf',
  'nan',
]);

/**
 * Metric names a PromQL expression (or Grafana's `label_values(metric, label)`) selects: every
 * identifier outside strings, label matchers, ranges and label lists that is not a function,
 * an operator or a keyword. Grafana variables (`$x`, `${x}`, `$__rate_interval`) are dropped.
 */
export function promqlMetricNames(expr: string): string[] {
  let s = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ')
    .replace(/\$\{[^}]*\}|\$\w+/g, ' ')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  // label_values(metric, label): the second argument is a label.
  s = s.replace(/\blabel_values\s*\(([^,()]*),[^)]*\)/g, ' $1 ');
  const names = new Set<string>();
  for (const m of s.matchAll(/(?<![\w.])[a-zA-Z_:][\w:]*/g)) {
    const word = m[0];
    const after = s.slice(m.index + word.length);
    if (/^\s*\(/.test(after)) continue;
    if (PROMQL_WORDS.has(word.toLowerCase())) continue;
    names.add(word);
  }
  return [...names];
}

/** Every PromQL expression of a dashboard: panel targets and Prometheus query variables. */
export function promqlExpressions(d: Dashboard): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  for (const p of panelsOf(d)) {
    for (const t of p.targets ?? []) if (t.expr !== undefined) out.push({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr });
  }
  for (const v of d.templating.list) {
    const q = variableQuery(v);
    if (v.datasource?.type === 'prometheus' && q) out.push({ where: `variable $${v.name}`, expr: q });
  }
  return out;
}

/** Every SQL query of a dashboard: panel targets and SQL query variables. */
export function sqlQueries(d: Dashboard): { where: string; sql: string }[] {
  const out: { where: string; sql: string }[] = [];
  for (const p of panelsOf(d)) {
    for (const t of p.targets ?? []) if (t.rawSql !== undefined) out.push({ where: `panel "${p.title}" ${t.refId}`, sql: t.rawSql });
  }
  for (const v of d.templating.list) {
    const q = variableQuery(v);
    if (v.type === 'query' && v.datasource?.type !== 'prometheus' && q) out.push({ where: `variable $${v.name}`, sql: q });
  }
  return out;
}

/**
 * Fills in the Grafana macros and variables the dashboards use, as Grafana's PostgreSQL data
 * source does: `$__timeFilter(col)` → `col BETWEEN '<from>' AND '<to>'`, a multi-value
 * variable → quoted, comma-separated values, a single value → as is.
 * @param vars variable name → its value(s).
 * @throws Error naming any other `$` macro or variable, so a new one is noticed here.
 */
export function interpolateSql(
  sql: string,
  vars: Record<string, string | string[]>,
  range = { from: '2024-01-01T00:00:00Z', to: '2024-01-02T00:00:00Z' },
): string {
  return sql
    .replace(/\$__timeFilter\(([^)]+)\)/g, (_m, col: string) => `${col.trim()} BETWEEN '${range.from}' AND '${range.to}'`)
    .replace(/\$\{(\w+)\}|\$(\w+)/g, (m, a: string | undefined, b: string | undefined) => {
      const name = (a ?? b)!;
      const v = vars[name];
      if (v === undefined) throw new Error(`no value for ${m} in: ${sql}`);
      return Array.isArray(v) ? v.map((x) => `'${x.replace(/'/g, "''")}'`).join(',') : v;
    });
}

/** SQL words the dashboards' queries use that are not column or relation names. */
const SQL_WORDS = new Set([
  'select',
  'distinct',
  'on',
  'from',
  'where',
  'and',
  'or',
  'not',
  'in',
  'between',
  'is',
  'null',
  'as',
  'order',
  'by',
  'group',
  'asc',
  'desc',
  'limit',
  'nulls',
  'first',
  'last',
]);

/**
 * Identifiers an interpolated SQL query reads: words outside string literals that are not SQL
 * keywords, function calls, quoted or `AS` aliases, or the relations after FROM.
 * @returns relations (after FROM) and the other identifiers (column names).
 */
export function sqlIdentifiers(sql: string): { relations: string[]; columns: string[] } {
  const s = sql
    .replace(/'(?:[^']|'')*'/g, ' ')
    .replace(/\bAS\s+("[^"]*"|\w+)/gi, ' ')
    .replace(/"[^"]*"/g, ' ');
  const relations = [...s.matchAll(/\bFROM\s+(\w+)/gi)].map((m) => m[1]!);
  const columns = new Set<string>();
  for (const m of s.matchAll(/(?<![\w.])[a-zA-Z_]\w*/g)) {
    const word = m[0];
    if (SQL_WORDS.has(word.toLowerCase()) || relations.includes(word)) continue;
    if (/^\s*\(/.test(s.slice(m.index + word.length))) continue;
    columns.add(word);
  }
  return { relations, columns: [...columns] };
}

/** Values of a custom variable (its `options`). */
export function customValues(d: Dashboard, name: string): string[] {
  const v = d.templating.list.find((x) => x.name === name);
  return (v?.options ?? []).map((o) => o.value);
}

/**
 * Parses YAML with Python's yaml module (PyYAML: docker-compose's own dependency, which .ci/run
 * installs), so the tests need no YAML package of their own.
 */
export function parseYaml(text: string): unknown {
  const out = execFileSync('python3', ['-c', 'import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)'], { input: text, encoding: 'utf8' });
  return JSON.parse(out);
}

export function readYaml(file: string): unknown {
  return parseYaml(readFileSync(file, 'utf8'));
}

/** Provisioned data sources (ops/grafana/provisioning/datasources/*.yml): uid and type. */
export function provisionedDataSources(): { uid: string; type: string; name: string }[] {
  const dir = path.join(ROOT, 'ops/grafana/provisioning/datasources');
  return readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .flatMap((f) => (readYaml(path.join(dir, f)) as { datasources?: { uid: string; type: string; name: string }[] }).datasources ?? []);
}
