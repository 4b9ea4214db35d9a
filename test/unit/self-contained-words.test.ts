// Code, tests and docs speak for themselves: no tracked file cites this project's own issue,
// scenario or case numbers (documents a reader of the repository does not have). Upstream sources
// are cited by project and number with '#', e.g. "timescaledb #7672", "node-postgres #2439",
// "MQTT.js #1585", which this check leaves alone.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../support/root.ts';

/** References to documents of ours: a case id ("BC-" and a number), "issue" or "scenario" and a number. */
const OWN_REFERENCES: readonly RegExp[] = [/\bBC-\d+\b/, /\bissues? #?\d+\b/i, /\bscenarios? \d+\b/i];

/** npm's lockfile: package versions, not prose of ours. */
const SKIPPED = new Set(['package-lock.json']);

/** Each line of a tracked text file that matches `patterns`, as `path:line: text`. */
function citations(patterns: readonly RegExp[]): string[] {
  const files = execFileSync('git', ['ls-files', '-z'], { cwd: ROOT, encoding: 'utf8' }).split('\0').filter(Boolean);
  const found: string[] = [];
  for (const file of files) {
    if (SKIPPED.has(file) || file.split('/').includes('node_modules')) continue;
    let text: string;
    try {
      text = readFileSync(path.join(ROOT, file), 'utf8');
    } catch {
      continue; // deleted in the working tree, not yet in the index
    }
    if (text.includes('\0')) continue; // binary
    text.split('\n').forEach((line, i) => {
      if (patterns.some((p) => p.test(line))) found.push(`${file}:${i + 1}: ${line.trim()}`);
    });
  }
  return found;
}

describe('self-contained words', () => {
  it('no tracked file cites an issue, scenario or case number of this project', () => {
    expect(citations(OWN_REFERENCES)).toEqual([]);
  });

  // The numbers are interpolated so that this file passes its own check.
  it.each([
    ['a case id', `see BC-${13}`, true],
    ['an issue number', `Issue ${3}, the broker restart`, true],
    ['an issue number with #', `fixed in issue #${12}`, true],
    ['a scenario number', `the hung server (scenario ${3})`, true],
    ['an upstream issue by project and #', 'ON CONFLICT on compressed chunks (timescaledb #7672)', false],
    ['an upstream pull request', 'sql-flow PR #172', false],
    ['a hex digest that happens to hold bc and digits', 'commit dc24bc2599c1dae500290b280c41bbcc95fab837', false],
  ])('%s: %j → flagged %s', (_what, line, flagged) => {
    expect(OWN_REFERENCES.some((p) => p.test(line))).toBe(flagged);
  });
});
