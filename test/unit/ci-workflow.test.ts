// The GitHub Actions workflow cannot run here: this checks that .github/workflows/ci.yml parses
// and provides what the suite needs (servers reachable by the URLs it sets, every TEST_* variable
// the tests read, the PostgreSQL major that scripts/timescaledb.sh builds against, steps in order).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ROOT } from '../support/root.ts';

interface Step {
  readonly name?: string;
  readonly uses?: string;
  readonly run?: string;
  readonly with?: Record<string, unknown>;
}
interface Service {
  readonly image: string;
  readonly env?: Record<string, string>;
  readonly options?: string;
}
interface Job {
  readonly 'runs-on': string;
  readonly container?: { readonly image: string };
  readonly services: Record<string, Service>;
  readonly env: Record<string, string>;
  readonly steps: Step[];
}

const workflow = parse(readFileSync(path.join(ROOT, '.github/workflows/ci.yml'), 'utf8')) as { on: Record<string, unknown>; jobs: Record<string, Job> };
const job = workflow.jobs.test!;
const steps = job.steps;
const stepIndex = (pred: (s: Step) => boolean, what: string): number => {
  const i = steps.findIndex(pred);
  expect(i, `workflow step ${what}`).toBeGreaterThanOrEqual(0);
  return i;
};

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = path.join(dir, f);
    return statSync(p).isDirectory() ? filesUnder(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** The tool list of scripts/test.sh (its `TOOLS='…'` block): command, Debian package. */
function testShTools(): { command: string; pkg: string }[] {
  const block = /^TOOLS='\n([^']*)'$/m.exec(readFileSync(path.join(ROOT, 'scripts/test.sh'), 'utf8'))?.[1];
  if (block === undefined) throw new Error("scripts/test.sh has no TOOLS='…' block");
  return block
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const [command = '', pkg = ''] = l.trim().split(/\s+/);
      return { command, pkg };
    });
}

describe('.github/workflows/ci.yml', () => {
  it('runs on push and pull request, on ubuntu-latest, in the Debian release scripts/timescaledb.sh is written for', () => {
    expect(Object.keys(workflow.on).sort()).toEqual(['pull_request', 'push']);
    expect(job['runs-on']).toBe('ubuntu-latest');
    expect(job.container?.image).toBe('debian:12');
  });

  it('has the official licensed TimescaleDB image and plain PostgreSQL 17 as health-checked services, trust auth', () => {
    expect(job.services.timescaledb?.image).toBe('timescale/timescaledb:latest-pg17');
    expect(job.services.postgres?.image).toBe('postgres:17');
    for (const s of Object.values(job.services)) {
      expect(s.env?.POSTGRES_HOST_AUTH_METHOD).toBe('trust');
      expect(s.options).toMatch(/--health-cmd "pg_isready/);
    }
  });

  it('points the test URLs at those services by name (container job: service name = host, port 5432)', () => {
    const licensed = new URL(job.env.TEST_DATABASE_URL!);
    const plain = new URL(job.env.TEST_PLAIN_DATABASE_URL!);
    expect([licensed.hostname, licensed.port]).toEqual(['timescaledb', '5432']);
    expect([plain.hostname, plain.port]).toEqual(['postgres', '5432']);
  });

  it('sets every TEST_* variable the tests read', () => {
    const read = new Set<string>();
    for (const f of [...filesUnder(path.join(ROOT, 'test')), ...filesUnder(path.join(ROOT, 'scripts'))]) {
      for (const m of readFileSync(f, 'utf8').matchAll(/process\.env\.(TEST_[A-Z_]+)/g)) read.add(m[1]!);
    }
    const set = new Set([
      ...Object.keys(job.env),
      ...steps.flatMap((s) => [...(s.run ?? '').matchAll(/echo "([A-Z_]+)=.*>> "\$GITHUB_ENV"/g)].map((m) => m[1]!)),
    ]);
    expect(read.size).toBeGreaterThan(0);
    for (const v of read) expect(set, `${v} is read by the tests`).toContain(v);
  });

  it('installs the PostgreSQL major scripts/timescaledb.sh builds against and every package of the tools npm test needs, before the tests', () => {
    const major = /^PG_MAJOR=(\d+)$/m.exec(readFileSync(path.join(ROOT, 'scripts/timescaledb.sh'), 'utf8'))?.[1];
    expect(major).toBeDefined();
    const apt = stepIndex((s) => /apt-get install[^\n]*postgresql-\d+/.test(s.run ?? ''), 'apt-get install');
    const packages = (steps[apt]!.run ?? '')
      .split('\n')
      .filter((l) => l.includes('apt-get install'))
      .join(' ');
    // scripts/test.sh installs these itself as root; the workflow installs them first, with
    // services kept from starting (policy-rc.d), so that npm test finds them there.
    const tools = testShTools();
    expect(tools.map((t) => t.command)).toEqual(expect.arrayContaining(['mosquitto', 'prometheus', 'promtool', 'docker-compose']));
    for (const p of [`postgresql-${major}`, `postgresql-client-${major}`, 'git', ...tools.map((t) => t.pkg)]) expect(packages.split(/\s+/)).toContain(p);
    expect(apt).toBeLessThan(stepIndex((s) => s.run === 'npm test', 'npm test'));
  });

  it('runs checkout, Node 20, npm ci, the Apache-only cluster, then npm test, in that order; actions pinned to a major', () => {
    const order = [
      stepIndex((s) => s.uses?.startsWith('actions/checkout@') === true, 'checkout'),
      stepIndex((s) => s.uses?.startsWith('actions/setup-node@') === true && String(s.with?.['node-version']) === '20', 'setup-node 20'),
      stepIndex((s) => /^npm ci\b/.test(s.run ?? ''), 'npm ci'),
      stepIndex((s) => (s.run ?? '').includes('bash scripts/timescaledb.sh start'), 'scripts/timescaledb.sh start'),
      stepIndex((s) => s.run === 'npm test', 'npm test'),
    ];
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(order.at(-1)).toBe(steps.length - 1);
    for (const s of steps) if (s.uses) expect(s.uses).toMatch(/^[\w-]+\/[\w-]+@v\d+$/);
  });
});

describe('.ci/run and scripts/test.sh', () => {
  it('.ci/run installs from the lock file and then runs npm test, which provisions the rest', () => {
    const commands = readFileSync(path.join(ROOT, '.ci/run'), 'utf8')
      .split('\n')
      .filter((l) => /^npm /.test(l));
    expect(commands).toEqual(['npm ci --no-audit --no-fund', 'npm test']);
  });

  it('npm test checks every tool before it runs lint, typecheck or any test', () => {
    const script = readFileSync(path.join(ROOT, 'scripts/test.sh'), 'utf8');
    const first = (what: string) => {
      const i = script.indexOf(what);
      expect(i, what).toBeGreaterThan(0);
      return i;
    };
    const check = first('missing="$(missing_packages)"');
    for (const run of ['npm run -s lint', 'npm run -s typecheck', 'scripts/timescaledb.sh start', 'npx vitest run']) expect(check).toBeLessThan(first(run));
    expect(script).toContain('npx vitest run --coverage');
  });
});
