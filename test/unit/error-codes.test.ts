// The error-code contract: README.md's "Error codes" table and the catalog of src/errors.ts list
// the same codes, each with when it is raised and what to do, and every code is raised somewhere
// in src/ (a code nothing raises is removed, not documented).
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, EspError } from '../../src/errors.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Row {
  readonly code: string;
  readonly when: string;
  readonly todo: string;
}

/** Rows of the table under `### Error codes` in README.md: code | raised when | what to do. */
function readmeRows(): Row[] {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const section = readme.split(/^#{2,3} /m).find((s) => s.startsWith('Error codes\n'));
  if (!section) throw new Error('README.md has no "### Error codes" section');
  return section
    .split('\n')
    .filter((l) => l.startsWith('| `'))
    .map((l) => {
      const cells = l.split(' | ').map((c) => c.replace(/^\| |\s*\|$/g, '').trim());
      if (cells.length !== 3) throw new Error(`README error-code row has ${cells.length} cells, not 3: ${l}`);
      const [code, when, todo] = cells as [string, string, string];
      return { code: code.replace(/`/g, ''), when, todo };
    });
}

function sourcesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = path.join(dir, f);
    return statSync(p).isDirectory() ? sourcesUnder(p) : p.endsWith('.ts') ? [p] : [];
  });
}

describe('error codes: README.md and src/errors.ts', () => {
  const rows = readmeRows();

  it('the README table lists every code of the catalog once, and nothing else', () => {
    expect(ERROR_CODES.length).toBeGreaterThan(0);
    expect(rows.map((r) => r.code).sort()).toEqual([...ERROR_CODES].sort());
  });

  it('says for each code when it is raised and what to do', () => {
    for (const r of rows) {
      expect(r.when.length, `${r.code}: "raised when"`).toBeGreaterThan(20);
      expect(r.todo.length, `${r.code}: "what to do"`).toBeGreaterThan(10);
    }
  });

  it('every code is raised in src/: named outside the catalog, or the code of an error class that src/ constructs', () => {
    const errorsTs = path.join(ROOT, 'src/errors.ts');
    const others = sourcesUnder(path.join(ROOT, 'src'))
      .filter((f) => f !== errorsTs)
      .map((f) => readFileSync(f, 'utf8'))
      .join('\n');
    // `class XError extends EspError { … super('ESP_X', …` in the catalog: code → class.
    const classOf = new Map(
      [...readFileSync(errorsTs, 'utf8').matchAll(/export class (\w+) extends EspError \{[\s\S]*?super\('(ESP_\w+)'/g)].map((m) => [m[2]!, m[1]!] as const),
    );
    const unraised = ERROR_CODES.filter((code) => {
      const cls = classOf.get(code);
      return !others.includes(`'${code}'`) && !(cls !== undefined && others.includes(`new ${cls}(`));
    });
    expect(unraised, 'codes nothing in src/ raises').toEqual([]);
  });

  it('an error keeps its code, its class name and its cause', () => {
    const cause = new Error('connection reset');
    const err = new EspError('ESP_DB_MIGRATION_FAILED', 'migration 001.sql failed', { cause });
    expect([err.code, err.name, err.cause, err instanceof Error]).toEqual(['ESP_DB_MIGRATION_FAILED', 'EspError', cause, true]);
  });

  it('the service prints a configuration error with its code on stderr and exits 2', () => {
    const env = { PATH: process.env.PATH, DATABASE_URL: 'not a url' };
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd: ROOT, env, encoding: 'utf8', timeout: 60_000 });
    expect(run.status, run.stderr).toBe(2);
    expect(run.stderr).toMatch(/^esp-ingest: ESP_CONFIG_INVALID invalid configuration:\n {2}- DATABASE_URL: /);
  });

  it('a file a setting names that cannot be read is a configuration error too, before anything connects', () => {
    const env = { PATH: process.env.PATH, DATABASE_URL: 'postgres://esp@127.0.0.1:1/esp', MQTT_PASSWORD_FILE: '/nonexistent/mqtt-password' };
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd: ROOT, env, encoding: 'utf8', timeout: 60_000 });
    expect(run.status, run.stderr).toBe(2);
    expect(run.stderr).toMatch(
      /^esp-ingest: ESP_CONFIG_INVALID invalid configuration:\n {2}- MQTT_PASSWORD_FILE: cannot read \/nonexistent\/mqtt-password \(ENOENT\)/,
    );
  });
});
