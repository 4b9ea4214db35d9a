// The newest backup per stanza from `pgbackrest info --output=json` (the document pgBackRest 2.45
// prints; fields per its user guide, "Info Command"), which BACKUP_INFO_FILE holds.
import { describe, expect, it } from 'vitest';
import { newestBackups } from '../../src/lifecycle/backup-health.ts';

const backup = (label: string, type: string, start: number, stop: number) => ({
  label,
  type,
  timestamp: { start, stop },
  info: { size: 1, delta: 1, repository: { size: 1, delta: 1 } },
});

describe('newestBackups', () => {
  it('takes the latest stop time of each stanza, whatever the backup type and order', () => {
    const info = [
      {
        name: 'esp',
        status: { code: 0, message: 'ok' },
        backup: [
          backup('20240501-010000F', 'full', 1714525200, 1714525260),
          backup('20240502-010000F_20240502-010000D', 'diff', 1714611600, 1714611630),
          backup('20240501-130000F_20240501-130000I', 'incr', 1714568400, 1714568410),
        ],
      },
      { name: 'other', status: { code: 0, message: 'ok' }, backup: [backup('20240401-010000F', 'full', 1711933200, 1711933300)] },
    ];
    expect(newestBackups(info)).toEqual([
      { stanza: 'esp', stopS: 1714611630 },
      { stanza: 'other', stopS: 1711933300 },
    ]);
  });

  it('gives 0 for a stanza with no backup yet (status 2, "no valid backups")', () => {
    expect(newestBackups([{ name: 'esp', status: { code: 2, message: 'no valid backups' }, backup: [] }])).toEqual([{ stanza: 'esp', stopS: 0 }]);
  });

  it.each([
    { name: 'an object, not the array', json: { name: 'esp' }, error: /expected an array of stanzas/ },
    { name: 'a stanza without a name', json: [{ backup: [] }], error: /without a name/ },
  ])('refuses $name', ({ json, error }) => {
    expect(() => newestBackups(json)).toThrow(error);
  });
});
