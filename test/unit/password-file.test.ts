// Unit tests for reading Mosquitto's password file: lines written by the real mosquitto_passwd.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parsePasswordFile, verifyPassword } from '../../src/broker/password-file.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'esp-pw-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('parsePasswordFile and verifyPassword', () => {
  it('accepts the passwords mosquitto_passwd wrote ($7$, PBKDF2-SHA512) and refuses others', async () => {
    const file = path.join(dir, 'pw');
    execFileSync('mosquitto_passwd', ['-c', '-b', file, 'W-1', 'S3cr3t-pw%23x']);
    execFileSync('mosquitto_passwd', ['-b', file, 'esp-ingest', 'ingest pass:with colon']);
    const { users, problems } = parsePasswordFile(readFileSync(file, 'utf8'));
    expect(problems).toEqual([]);
    expect([...users.keys()]).toEqual(['W-1', 'esp-ingest']);
    expect(users.get('W-1')).toMatchObject({ type: 'pbkdf2-sha512', iterations: 101 });
    expect(await verifyPassword(users.get('W-1')!, 'S3cr3t-pw%23x')).toBe(true);
    expect(await verifyPassword(users.get('W-1')!, 'S3cr3t-pw#x')).toBe(false);
    expect(await verifyPassword(users.get('esp-ingest')!, 'ingest pass:with colon')).toBe(true);
    expect(await verifyPassword(users.get('esp-ingest')!, '')).toBe(false);
  });

  it('reads the older $6$ (salted SHA-512) form', async () => {
    // $6$: base64 salt, base64 SHA-512(password ‖ salt), as Mosquitto 1.x wrote it.
    const { createHash } = await import('node:crypto');
    const salt = Buffer.from('0123456789ab');
    const hash = createHash('sha512').update('pw').update(salt).digest('base64');
    const { users } = parsePasswordFile(`old:$6$${salt.toString('base64')}$${hash}\n`);
    expect(await verifyPassword(users.get('old')!, 'pw')).toBe(true);
    expect(await verifyPassword(users.get('old')!, 'px')).toBe(false);
  });

  it('lists unusable lines by number only (never their content); comments and blank lines are skipped', () => {
    const { users, problems } = parsePasswordFile('# comment\n\nplain:secret\n:$7$101$AAAA$AAAA\nW-2:$7$x$AAAA$AAAA\n');
    expect(users.size).toBe(0);
    expect(problems).toHaveLength(3);
    expect(problems[0]).toMatch(/^line 3: /);
    expect(problems.join('\n')).not.toContain('secret');
  });
});
