// The files the settings name are checked at start: each unreadable one is a configuration
// problem naming its setting, its path and why; BACKUP_INFO_FILE (written later by the backup
// job) is never checked, and the embedded broker's files only with BROKER=embedded.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.ts';
import { unreadableFiles } from '../../src/config/files.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'esp-config-files-'));
const present = path.join(dir, 'present');
writeFileSync(present, 'x');
const missing = path.join(dir, 'missing');
const base = { DATABASE_URL: 'postgres://esp@127.0.0.1:5432/esp' };

describe('unreadableFiles', () => {
  it('finds nothing when every named file can be read, or none is named', () => {
    expect(unreadableFiles(loadConfig(base))).toEqual([]);
    expect(unreadableFiles(loadConfig({ ...base, MQTT_PASSWORD_FILE: present, DATABASE_PASSWORD_FILE: present }))).toEqual([]);
  });

  it('names each missing file with its setting, its path and the errno code', () => {
    expect(unreadableFiles(loadConfig({ ...base, MQTT_PASSWORD_FILE: missing, DATABASE_PASSWORD_FILE: present }))).toEqual([
      `MQTT_PASSWORD_FILE: cannot read ${missing} (ENOENT)`,
    ]);
  });

  it('never checks BACKUP_INFO_FILE (the backup job writes it after the first backup)', () => {
    expect(unreadableFiles(loadConfig({ ...base, BACKUP_INFO_FILE: missing }))).toEqual([]);
  });
});
