// The credential tool's password path, with the real mosquitto_passwd: the new password verifies
// against the line it wrote, the file is its owner's alone, and the password never appears on a
// command line (it goes through mosquitto_passwd's standard input).
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parsePasswordFile, verifyPassword } from '../../src/broker/password-file.ts';
import { issuePassword } from '../../src/tools/credential.ts';

describe('issuePassword', () => {
  it('creates a 0600 Mosquitto password file whose line verifies the printed password; a second well is added beside it', async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'esp-cred-')), 'passwd');
    const first = issuePassword(file, 'W-1', false);
    const second = issuePassword(file, 'W-2');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const users = parsePasswordFile(readFileSync(file, 'utf8')).users;
    expect(await verifyPassword(users.get('W-1')!, first)).toBe(true);
    expect(await verifyPassword(users.get('W-2')!, second)).toBe(true);
    expect(await verifyPassword(users.get('W-1')!, second)).toBe(false);
  });

  it("fails with mosquitto_passwd's reason and without the password when the file cannot be written", () => {
    expect(() => issuePassword('/nonexistent-dir/passwd', 'W-1', false)).toThrow(/mosquitto_passwd could not add "W-1".*Unable to open file/);
  });
});
