// The alert rules (ops/prometheus/alerts.yml) through Debian's promtool: they load, every alert
// has `for:`, a severity and summary/description annotations, and alerts.test.yml makes each one
// fire in one case and stay quiet in another.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../support/root.ts';

const RULES = 'ops/prometheus/alerts.yml';
const RULE_TESTS = 'ops/prometheus/alerts.test.yml';

function promtool(...args: string[]): { status: number | null; out: string } {
  const r = spawnSync('promtool', args, { cwd: ROOT, encoding: 'utf8' });
  if (r.error) throw new Error(`promtool could not run (apt-get install prometheus; .ci/run does): ${r.error.message}`);
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** Each rule of alerts.yml as its name and the text of its block. */
function alertBlocks(): { name: string; block: string }[] {
  const text = readFileSync(path.join(ROOT, RULES), 'utf8');
  return text
    .split(/^\s+- alert: /m)
    .slice(1)
    .map((block) => ({ name: block.slice(0, block.indexOf('\n')).trim(), block }));
}

describe('alert rules', () => {
  const alerts = alertBlocks();

  it('load in promtool', () => {
    const r = promtool('check', 'rules', RULES);
    expect(r.out).toContain(`SUCCESS: ${alerts.length} rules found`);
    expect(r.status).toBe(0);
  });

  it("are loaded by the compose stack's Prometheus config (ops/prometheus/prometheus.yml), which promtool accepts", () => {
    const r = promtool('check', 'config', 'ops/prometheus/prometheus.yml');
    expect(r.out).toContain('SUCCESS: 1 rule files found');
    expect(r.out).toContain(`SUCCESS: ${alerts.length} rules found`);
    expect(r.status).toBe(0);
  });

  it('each have for:, a severity label and summary and description annotations', () => {
    expect(alerts.map((a) => a.name)).toEqual(
      expect.arrayContaining([
        'EspIngestDown',
        'EspIngestStalled',
        'EspIngestCommitLagHigh',
        'EspIngestRejectRateHigh',
        'EspIngestDatabaseDown',
        'EspIngestWellSilent',
      ]),
    );
    for (const { name, block } of alerts) {
      expect({ name, for: /^\s+for: \d+[smh]$/m.test(block) }).toEqual({ name, for: true });
      expect({ name, severity: /^\s+severity: (critical|warning|info)$/m.exec(block)?.[1] !== undefined }).toEqual({ name, severity: true });
      expect({ name, summary: /^\s+summary: ".+"$/m.test(block), description: /^\s+description: ".+"$/m.test(block) }).toEqual({
        name,
        summary: true,
        description: true,
      });
    }
  });

  it('pass their unit tests, which make every alert fire once and stay quiet once', () => {
    const tests = readFileSync(path.join(ROOT, RULE_TESTS), 'utf8');
    // Each alert_rule_test entry: its alertname and whether it expects alerts (exp_alerts: [] or a list).
    const cases = [...tests.matchAll(/alertname: (\w+)\n\s+exp_alerts:( \[\])?/g)].map((m) => ({ alert: m[1]!, fires: m[2] === undefined }));
    for (const { name } of alerts) {
      expect({ name, fires: cases.some((c) => c.alert === name && c.fires), quiet: cases.some((c) => c.alert === name && !c.fires) }).toEqual({
        name,
        fires: true,
        quiet: true,
      });
    }
    expect(cases.map((c) => c.alert).filter((a) => !alerts.some((x) => x.name === a))).toEqual([]);
    const r = promtool('test', 'rules', RULE_TESTS);
    expect(r.out).toContain('SUCCESS');
    expect(r.status).toBe(0);
  });
});
