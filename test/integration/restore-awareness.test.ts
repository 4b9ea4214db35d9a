// The service started on a database in the middle of a logical restore (after
// `timescaledb_pre_restore()`, before `timescaledb_post_restore()`): it runs no DDL, /readyz says
// why and names the command, it does not subscribe (so the broker keeps the backlog for its
// session), and once the restore is finished it migrates and stores the backlog by itself. Then
// a restore started under the running service: commits and PUBACKs held until it ends.
// Upstream: timescale/timescaledb #1797, #7383 (DDL and reads on a half-restored catalog).
import mqtt from 'mqtt';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { checkRestore, RestoreWatch, waitWhileRestoring } from '../../src/schema/restore-state.ts';
import { freshDatabase, metric, privateMosquitto, query, readyz, startService, Teardown, waitFor } from '../support/harness.ts';

const t = new Teardown();
afterAll(() => t.run());

describe('a restore under way at start-up', () => {
  it('holds migrations and intake during timescaledb_pre_restore(), then proceeds after timescaledb_post_restore()', async () => {
    const db = await freshDatabase(t);
    await query(db, 'CREATE EXTENSION IF NOT EXISTS timescaledb');
    await query(db, 'SELECT timescaledb_pre_restore()');
    const mq = await privateMosquitto(t);

    // The service's persistent session exists on the broker, as after an earlier run.
    const clientId = 'esp-ingest-restore';
    const topic = 'esp/site-r/WELL-R1/telemetry';
    const session = await mqtt.connectAsync(mq.url, { clientId, clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 3600 } });
    await session.subscribeAsync('esp/+/+/telemetry', { qos: 1 });
    await session.endAsync();

    const svc = await startService(t, { DATABASE_URL: db, MQTT_URL: mq.url, MQTT_CLIENT_ID: clientId }, { waitReady: false });
    const held = await waitFor(
      'readyz naming the restore',
      async () => {
        const r = await readyz(svc.httpPort);
        const detail = (r.body as { details?: Record<string, string> }).details?.migrations_pending ?? '';
        return detail.includes('timescaledb_post_restore()') ? r : undefined;
      },
      30_000,
      100,
    );
    expect(held.status).toBe(503);
    expect(held.body.reasons).toContain('migrations_pending');

    // Readings published while the restore runs are queued by the broker for the session.
    const publisher = await mqtt.connectAsync(mq.url, { clientId: 'restore-publisher', protocolVersion: 5 });
    t.add(() => publisher.endAsync());
    for (let i = 0; i < 5; i++) {
      await publisher.publishAsync(topic, JSON.stringify({ ts: `2024-03-01T00:00:0${i}Z`, motor_current_a: 40 + i }), { qos: 1 });
    }
    // While held: no table of ours exists.
    const tables = await query<{ n: number }>(
      db,
      `SELECT count(*)::int AS n FROM pg_class WHERE relname IN ('esp_telemetry', 'esp_schema_migrations', 'rejected_messages')`,
    );
    expect(tables[0]?.n).toBe(0);
    expect(svc.output()).toMatch(/"event":"restore_in_progress"/);
    expect(svc.output()).toMatch(/"installedVersion":"\d+\.\d+\.\d+"/);

    await query(db, 'SELECT timescaledb_post_restore()');
    await waitFor('ready after the restore', async () => (await readyz(svc.httpPort)).status === 200, 30_000, 100);
    const stored = await waitFor(
      'the backlog stored',
      async () => {
        const rows = await query<{ n: number }>(db, `SELECT count(*)::int AS n FROM esp_telemetry WHERE well_id = 'WELL-R1'`);
        return rows[0]?.n === 5 ? rows : undefined;
      },
      20_000,
      100,
    );
    expect(stored[0]?.n).toBe(5);
    expect(svc.output()).toMatch(/"event":"restore_finished"/);

    // A restore started under the running service: commits held, /readyz says why, nothing
    // written and nothing acknowledged, then it goes on by itself; every row is in a chunk.
    await query(db, 'SELECT timescaledb_pre_restore()');
    const running = await waitFor(
      'readyz restore_in_progress',
      async () => {
        const r = await readyz(svc.httpPort);
        return r.body.reasons.includes('restore_in_progress') ? r : undefined;
      },
      15_000,
      100,
    );
    expect((running.body as { details?: Record<string, string> }).details?.restore_in_progress).toContain('timescaledb_post_restore()');
    for (let i = 0; i < 5; i++) {
      await publisher.publishAsync(topic, JSON.stringify({ ts: `2024-03-01T00:01:0${i}Z`, motor_current_a: 50 + i }), { qos: 1 });
    }
    await waitFor('the readings received and held', async () => (await metric(svc.httpPort, 'esp_ingest_unacknowledged_messages')) === 5, 15_000, 100);
    const during = await query<{ n: number }>(db, `SELECT count(*)::int AS n FROM esp_telemetry WHERE well_id = 'WELL-R1'`);
    expect(during[0]?.n).toBe(5);
    await query(db, 'SELECT timescaledb_post_restore()');
    await waitFor('ready again', async () => (await readyz(svc.httpPort)).status === 200, 15_000, 100);
    await waitFor(
      'the held readings stored',
      async () => (await query<{ n: number }>(db, `SELECT count(*)::int AS n FROM esp_telemetry WHERE well_id = 'WELL-R1'`))[0]?.n === 10,
      15_000,
      100,
    );
    const root = await query<{ n: number }>(db, 'SELECT count(*)::int AS n FROM ONLY esp_telemetry');
    expect(root[0]?.n).toBe(0);
  }, 90_000);
});

describe('the restore checks on a real database', () => {
  it('the start-up gate waits through restore mode; the watch holds a commit until the restore ends', async () => {
    const db = await freshDatabase(t);
    await query(db, 'CREATE EXTENSION IF NOT EXISTS timescaledb');
    const pool = new pg.Pool({ connectionString: db, max: 2 });
    t.add(() => pool.end());
    const log = pino({ level: 'silent' });
    // A pooled session opened before the restore keeps its old setting: the check must not
    // depend on it.
    await pool.query('SELECT 1');
    await query(db, 'SELECT timescaledb_pre_restore()');
    expect((await checkRestore(pool))?.kind).toBe('restoring');

    // Start-up gate: held with the command, released by post_restore, aborted by shutdown.
    const held: (string | undefined)[] = [];
    const gate = waitWhileRestoring(pool, { held: (d) => held.push(d), log, signal: new AbortController().signal, pollMs: 50 });
    await waitFor('the gate holding', () => held.length === 1);
    expect(held[0]).toContain('SELECT timescaledb_post_restore();');
    const shutdown = new AbortController();
    const aborted = waitWhileRestoring(pool, { held: () => undefined, log, signal: shutdown.signal, pollMs: 50 });
    shutdown.abort();
    await expect(aborted).rejects.toThrow(/aborted by shutdown/);

    // The running watch: a commit waits while restoring, and goes through after.
    const changes: (string | undefined)[] = [];
    const watch = new RestoreWatch({ db: pool, onChange: (d) => changes.push(d), log, pollMs: 50 });
    await watch.check();
    expect(changes).toHaveLength(1);
    const committed: number[] = [];
    const sink = watch.holding({ commit: async (items: number[]) => void committed.push(...items) }, new AbortController().signal);
    const commit = sink.commit([1, 2]);
    const stopping = new AbortController();
    const refused = watch.holding({ commit: async () => undefined }, stopping.signal).commit([]);
    stopping.abort();
    await expect(refused).rejects.toThrow(/a commit held by a restore/);
    expect(committed).toEqual([]);

    await query(db, 'SELECT timescaledb_post_restore()');
    await gate;
    expect(held.at(-1)).toBeUndefined();
    watch.start();
    await commit;
    watch.stop();
    expect(committed).toEqual([1, 2]);
    expect(changes.at(-1)).toBeUndefined();
    expect(await checkRestore(pool)).toBeUndefined();
  });
});
