// When a restore holds the service's schema work back, and what /readyz tells a person to run:
// restore mode on (timescaledb_pre_restore()), or a catalog of another TimescaleDB version than
// the server loads (timescale/timescaledb #1797: restore into the same version, then update).
import { describe, expect, it } from 'vitest';
import { ReadinessState } from '../../src/lifecycle/readiness.ts';
import { restoreBlock } from '../../src/schema/restore-state.ts';

describe('restoreBlock', () => {
  it.each([
    { name: 'no TimescaleDB at all', restoring: false, installed: null, server: null, kind: undefined, command: undefined },
    { name: 'extension available, not created yet', restoring: false, installed: null, server: '2.19.3', kind: undefined, command: undefined },
    { name: 'same versions', restoring: false, installed: '2.19.3', server: '2.19.3', kind: undefined, command: undefined },
    { name: 'restore mode on', restoring: true, installed: '2.19.3', server: '2.19.3', kind: 'restoring', command: 'SELECT timescaledb_post_restore();' },
    {
      name: 'restore mode on and versions differ: restore mode first',
      restoring: true,
      installed: '2.17.1',
      server: '2.19.3',
      kind: 'restoring',
      command: 'timescaledb_post_restore()',
    },
    {
      name: 'older catalog than the server loads',
      restoring: false,
      installed: '2.17.1',
      server: '2.19.3',
      kind: 'version_mismatch',
      command: 'ALTER EXTENSION timescaledb UPDATE;',
    },
    {
      name: 'newer catalog than the server loads',
      restoring: false,
      installed: '2.20.0',
      server: '2.19.3',
      kind: 'version_mismatch',
      command: 'server version the data was restored from',
    },
  ] as const)('$name → $kind', ({ restoring, installed, server, kind, command }) => {
    const block = restoreBlock({ restoring, installedVersion: installed, serverVersion: server });
    expect(block?.kind).toBe(kind);
    if (command) expect(block?.detail).toContain(command);
    if (kind === 'version_mismatch') expect(block?.detail).toContain(`${installed} is installed`);
  });
});

describe('readiness while migrations are held', () => {
  it('migrations_pending carries the hold, and clears once migrations are applied', () => {
    const s = new ReadinessState({ bufferMaxRows: 100, bufferHighWaterRatio: 0.9, clock: () => 0 });
    s.mqtt(undefined);
    expect(s.reasons()[0]).toEqual({ code: 'migrations_pending', detail: 'schema migrations not applied yet' });
    s.migrationsHeld('restore mode: run SELECT timescaledb_post_restore();');
    expect(s.reasons()[0]).toEqual({ code: 'migrations_pending', detail: 'restore mode: run SELECT timescaledb_post_restore();' });
    s.migrationsHeld(undefined);
    expect(s.reasons()[0]?.detail).toBe('schema migrations not applied yet');
    s.migrationsApplied();
    expect(s.reasons()).toEqual([]);
  });
});
