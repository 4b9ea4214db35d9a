// Unit tests: how a refused CONNACK is named (MQTT 3.1.1 §3.2.2.3, MQTT 5 §3.2.2.2), and the
// files read before every connect (a rotated file is read again; an unreadable one keeps the old).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { connackRefusal, readConnectFiles } from '../../src/ingress/connect-options.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'esp-co-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('connackRefusal', () => {
  it.each([
    [5, 4, 'not_authorized', 'not authorized (CONNACK 5)'],
    [4, 4, 'bad_credentials', 'bad user name or password (CONNACK 4)'],
    [2, 4, 'other', 'refused (CONNACK 2)'],
    [0x87, 5, 'not_authorized', 'not authorized (0x87)'],
    [0x8a, 5, 'not_authorized', 'not authorized (0x8a)'],
    [0x86, 5, 'bad_credentials', 'bad user name or password (0x86)'],
    [0x85, 5, 'other', 'refused (0x85)'],
  ] as const)('code %i over v%i → %s', (code, version, label, text) => {
    expect(connackRefusal(code, version)).toEqual({ label, text });
  });
});

describe('readConnectFiles', () => {
  it('reads the password without its trailing newline, keeps the previous value when a file turns unreadable, and names the setting', () => {
    const pw = path.join(dir, 'pw');
    writeFileSync(pw, 'token-1\n');
    const c = { passwordFile: pw, tls: { caFile: undefined, certFile: undefined, keyFile: undefined } };
    const first = readConnectFiles(c);
    expect(first.options.password?.toString()).toBe('token-1');
    writeFileSync(pw, 'token-2');
    expect(readConnectFiles(c, first.options).options.password?.toString()).toBe('token-2');
    rmSync(pw);
    const gone = readConnectFiles(c, first.options);
    expect(gone.options.password?.toString()).toBe('token-1');
    expect(gone.problems).toEqual(['credentials: cannot read MQTT_PASSWORD_FILE (ENOENT)']);
  });
});
