// The GitHub Actions workflow cannot run here: this checks that .github/workflows/ci.yml parses
// and provides what the suite needs (servers reachable by the URLs it sets, every TEST_* variable
// the tests read, the PostgreSQL major that scripts/timescaledb.sh builds against, steps in order).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../support/root.ts';
import { parse } from 'yaml';


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
    const set = new Set([...Object.keys(job.env), ...steps.flatMap((s) => [...(s.run ?? '').matchAll(/echo "([A-Z_]+)=.*>> "\$GITHUB_ENV"/g)].map((m) => m[1]!))]);
    expect(read.size).toBeGreaterThan(0);
    for (const v of read) expect(set, `${v} is read by the tests`).toContain(v);
  });

  it('installs the PostgreSQL major scripts/timescaledb.sh builds against and every package .ci/run installs, before the tests', () => {
    const major = /^PG_MAJOR=(\d+)$/m.exec(readFileSync(path.join(ROOT, 'scripts/timescaledb.sh'), 'utf8'))?.[1];
    expect(major).toBeDefined();
    const apt = stepIndex((s) => /apt-get install[^\n]*postgresql-\d+/.test(s.run ?? ''), 'apt-get install');
    const packages = (steps[apt]!.run ?? '').split('\n').filter((l) => l.includes('apt-get install')).join(' ');
    // What .ci/run installs on the project's own CI machine, the workflow installs too.
    const ciRun = readFileSync(path.join(ROOT, '.ci/run'), 'utf8');
    const ciPackages = [...ciRun.matchAll(/apt-get install ([^\n&|;]*)/g)].flatMap((m) => m[1]!.split(/\s+/).filter((w) => w !== '' && !w.startsWith('-')));
    expect(ciPackages).toEqual(expect.arrayContaining(['mosquitto', 'prometheus', 'docker-compose']));
    for (const p of [`postgresql-${major}`, `postgresql-client-${major}`, 'git', ...ciPackages]) expect(packages.split(/\s+/)).toContain(p);
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
