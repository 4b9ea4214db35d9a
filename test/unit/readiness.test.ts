// Unit tests for the readiness state machine on a fake clock: the debounce rules (one failed or
// slow database check never flips /readyz), the buffer's hysteresis, the reason codes and their
// order, and the start-up latch (once started, /startupz stays 200).
import { describe, expect, it } from 'vitest';
import { FailureStreak, HighWater, NOT_READY_CODES, type NotReadyCode, ReadinessState, WRITE_FAILING_MIN_MS } from '../../src/lifecycle/readiness.ts';

/** A state on a fake clock; migrated and subscribed unless told (`mqtt`: why the subscription is inactive). */
function state(o: { bufferMaxRows?: number; ratio?: number; migrated?: boolean; mqtt?: string } = {}) {
  const world = { nowMs: 0 };
  const s = new ReadinessState({
    bufferMaxRows: o.bufferMaxRows ?? 1000,
    bufferHighWaterRatio: o.ratio ?? 0.9,
    clock: () => world.nowMs,
  });
  s.mqtt(o.mqtt);
  if (o.migrated !== false) s.migrationsApplied();
  const codes = (): NotReadyCode[] => s.reasons().map((r) => r.code);
  return { s, world, codes };
}

describe('FailureStreak', () => {
  it.each([
    { name: 'no failure', failures: 0, spanMs: 0, n: 2, minMs: 0, tripped: false },
    { name: 'one failure', failures: 1, spanMs: 0, n: 2, minMs: 0, tripped: false },
    { name: 'two in a row', failures: 2, spanMs: 1000, n: 2, minMs: 0, tripped: true },
    { name: 'three in a row, too quick', failures: 3, spanMs: 500, n: 3, minMs: 2000, tripped: false },
    { name: 'three in a row over the minimum', failures: 3, spanMs: 2000, n: 3, minMs: 2000, tripped: true },
  ])('$name: tripped=$tripped', ({ failures, spanMs, n, minMs, tripped }) => {
    const f = new FailureStreak(n, minMs);
    for (let i = 0; i < failures; i++) f.failure((spanMs * i) / Math.max(1, failures - 1), `e${i}`);
    expect(f.tripped(spanMs)).toBe(tripped);
  });

  it('a success in between starts the count again', () => {
    const f = new FailureStreak(2);
    f.failure(0, 'a');
    f.success();
    f.failure(1, 'b');
    expect(f.tripped(1)).toBe(false);
    f.failure(2, 'c');
    expect(f.tripped(2)).toBe(true);
    expect(f.detail).toBe('c');
    f.success();
    expect(f.tripped(3)).toBe(false);
  });
});

describe('HighWater', () => {
  it('goes above at the high mark and back only under the low mark', () => {
    const h = new HighWater(900, 450);
    const seen = [0, 899, 900, 899, 600, 451, 450, 449, 899, 900].map((v) => h.update(v));
    expect(seen).toEqual([false, false, true, true, true, true, true, false, false, true]);
  });
});

describe('ReadinessState', () => {
  it('is ready with migrations applied, the subscription active, the database answering', () => {
    const { codes } = state();
    expect(codes()).toEqual([]);
  });

  it('before migrations: migrations_pending, and mqtt_subscription_inactive until subscribed', () => {
    const { s, codes } = state({ migrated: false, mqtt: 'mqtt: not started' });
    expect(codes()).toEqual(['migrations_pending', 'mqtt_subscription_inactive']);
    s.migrationsApplied();
    expect(codes()).toEqual(['mqtt_subscription_inactive']);
    s.mqtt(undefined);
    expect(codes()).toEqual([]);
  });

  it('one failed database check does not flip readiness; two in a row do; one success clears it', () => {
    const { s, world, codes } = state();
    s.databaseCheck(false, 'connect ECONNREFUSED');
    expect(codes()).toEqual([]);
    world.nowMs = 1000;
    s.databaseCheck(true);
    world.nowMs = 2000;
    s.databaseCheck(false, 'database check not answered within 1000 ms');
    expect(codes()).toEqual([]);
    world.nowMs = 3000;
    s.databaseCheck(false, 'connect ECONNREFUSED');
    expect(codes()).toEqual(['database_unreachable']);
    expect(s.reasons()[0]!.detail).toMatch(/ECONNREFUSED \(2 checks failed in a row\)/);
    world.nowMs = 4000;
    s.databaseCheck(true);
    expect(codes()).toEqual([]);
  });

  it('a committed batch proves the database reachable', () => {
    const { s, codes } = state();
    s.databaseCheck(false);
    s.databaseCheck(false);
    expect(codes()).toEqual(['database_unreachable']);
    s.commit(true);
    expect(codes()).toEqual([]);
  });

  it(`failed writes: not ready after 3 in a row spanning ${WRITE_FAILING_MIN_MS} ms; a commit clears it`, () => {
    const { s, world, codes } = state();
    for (const t of [0, 100, 300]) {
      world.nowMs = t;
      s.commit(false, '55P03 lock timeout');
    }
    expect(codes()).toEqual([]);
    world.nowMs = WRITE_FAILING_MIN_MS;
    expect(codes()).toEqual(['database_writes_failing']);
    s.commit(true);
    expect(codes()).toEqual([]);
  });

  it('a failed write does not clear an unreachable database, nor does a passing check clear failing writes', () => {
    const { s, world, codes } = state();
    s.databaseCheck(false);
    s.databaseCheck(false);
    for (const t of [0, 1000, 2000]) {
      world.nowMs = t;
      s.commit(false, 'connection terminated');
    }
    expect(codes()).toEqual(['database_unreachable', 'database_writes_failing']);
    s.databaseCheck(true);
    expect(codes()).toEqual(['database_writes_failing']);
  });

  it('buffer above the high-water mark (ratio of BUFFER_MAX_ROWS), with hysteresis', () => {
    const { s, codes } = state({ bufferMaxRows: 1000, ratio: 0.9 });
    expect(s.bufferMarks).toEqual({ highRows: 900, lowRows: 450 });
    s.buffered(899);
    expect(codes()).toEqual([]);
    s.buffered(900);
    expect(codes()).toEqual(['buffer_above_high_water']);
    s.buffered(500);
    expect(codes()).toEqual(['buffer_above_high_water']);
    s.buffered(449);
    expect(codes()).toEqual([]);
  });

  it('a subscription that delivers nothing (the canary) holds readiness and the start-up latch until a probe comes back', () => {
    const { s, codes } = state({});
    s.canary('mqtt: the broker granted the subscription but did not deliver our probe');
    expect(codes()).toEqual(['mqtt_subscription_deaf']);
    expect(s.started).toBe(false);
    s.canary(undefined);
    expect(codes()).toEqual([]);
    expect(s.started).toBe(true);
    s.canary('mqtt: a later probe did not come back');
    expect(codes()).toEqual(['mqtt_subscription_deaf']);
    expect(s.startupPending()).toEqual([]);
  });

  it('lists every reason at once, in NOT_READY_CODES order, shutting_down last', () => {
    const { s, world, codes } = state({ migrated: false, mqtt: 'mqtt: not connected to the broker' });
    s.databaseCheck(false);
    s.databaseCheck(false);
    for (const t of [0, 1000, 2000]) {
      world.nowMs = t;
      s.commit(false);
    }
    s.canary('mqtt: no probe has come back through the subscription yet');
    s.restoreInProgress('restore mode on');
    s.buffered(1000);
    s.shuttingDown();
    expect(codes()).toEqual([...NOT_READY_CODES]);
    expect(s.reasons().find((r) => r.code === 'mqtt_subscription_inactive')!.detail).toBe('mqtt: not connected to the broker');
  });

  it('start-up: pending until migrated and subscribed once, then complete for good', () => {
    const { s } = state({ migrated: false, mqtt: 'mqtt: not started' });
    expect(s.startupPending().map((r) => r.code)).toEqual(['migrations_pending', 'mqtt_subscription_inactive']);
    s.migrationsApplied();
    expect(s.started).toBe(false);
    s.mqtt(undefined);
    expect(s.startupPending()).toEqual([]);
    expect(s.started).toBe(true);
    // Later outages make it not ready, never not started.
    s.mqtt('mqtt: not connected to the broker');
    s.databaseCheck(false);
    s.databaseCheck(false);
    s.shuttingDown();
    expect(s.reasons().length).toBeGreaterThan(0);
    expect(s.startupPending()).toEqual([]);
  });
});
