// The configuration's documentation agrees with the schema: every variable the service reads is
// in the README's Configuration table and in .env.example, and neither names one it does not read.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { ENV_VARIABLE_NAMES } from '../../src/config/config.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

it('README Configuration table and .env.example list exactly the schema variables', () => {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const section = readme.split(/^## /m).find((s) => s.startsWith('Configuration\n')) ?? '';
  const inReadme = new Set(
    section
      .split('\n')
      .filter((l) => l.startsWith('| `'))
      .flatMap((l) => [...(l.split('|')[1] ?? '').matchAll(/`([A-Z][A-Z0-9_]+)`/g)].map((m) => m[1]!)),
  );
  const inExample = new Set([...readFileSync(path.join(ROOT, '.env.example'), 'utf8').matchAll(/^([A-Z][A-Z0-9_]+)=/gm)].map((m) => m[1]!));
  const schema = [...ENV_VARIABLE_NAMES].sort();
  expect([...inReadme].sort()).toEqual(schema);
  expect([...inExample].sort()).toEqual(schema);
});
