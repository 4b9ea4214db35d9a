// Probes against real servers: /startupz before and after the first start; /readyz reason codes
// while the database is down (a private cluster stopped and started), the broker is down, or the
// buffer is above its high-water mark (a table lock holds the writes); /livez untouched by all of
// that and 503 only when the event loop is blocked (the process SIGSTOPped, and in-process a
// busy-wait).
import { connect } from 'node:net';
import mqtt from 'mqtt';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { Sidecar } from '../../src/http/sidecar.ts';
import { EventLoopWatchdog } from '../../src/lifecycle/liveness.ts';
import { freshDatabase, lockTelemetryTable, metric, privateMosquitto, startService, Teardown, waitFor } from '../support/harness.ts';
import { privatePostgres } from '../support/private-postgres.ts';

const t = new Teardown();
afterAll(() => t.run());

interface ProbeBody {
  reasons?: string[];
  details?: Record<string, string>;
  [k: string]: unknown;
}

async function probe(port: number, path: string): Promise<{ status: number; body: ProbeBody }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: (await res.json()) as ProbeBody };
}

/** Polls `path` until its reasons equal `reasons` (order included); returns that answer. */
async function reasonsBecome(port: number, path: string, reasons: string[], timeoutMs = 20_000) {
  return waitFor(
    `${path} reasons ${JSON.stringify(reasons)}`,
    async () => {
      const r = await probe(port, path);
      return JSON.stringify(r.body.reasons ?? []) === JSON.stringify(reasons) ? r : undefined;
    },
    timeoutMs,
    50,
  );
}

describe('probes of the running service (child process)', () => {
  it('/startupz, /readyz, /livez through start-up with the database down, a database outage and a broker outage', async () => {
    const db = await privatePostgres(t);
    await db.stop();
    const mq = await privateMosquitto(t);
    const svc = await startService(
      t,
      { DATABASE_URL: db.url, MQTT_URL: mq.url, MQTT_CLIENT_ID: 'esp-ingest-probes', DB_CONNECT_TIMEOUT_MS: '1000', RETRY_MAX_DELAY_MS: '500' },
      { waitReady: false },
    );

    // Start-up with the database down: not started, not ready (with why), yet alive.
    const before = await reasonsBecome(svc.httpPort, '/readyz', [
      'migrations_pending',
      'database_unreachable',
      'mqtt_subscription_inactive',
      'mqtt_subscription_deaf',
    ]);
    expect(before.status).toBe(503);
    expect(before.body.ready).toBe(false);
    expect(before.body.details?.database_unreachable).toMatch(/ECONNREFUSED/);
    expect(before.body.details?.database_unreachable).toMatch(/checks failed in a row/);
    const startupBefore = await probe(svc.httpPort, '/startupz');
    expect(startupBefore.status).toBe(503);
    expect(startupBefore.body.started).toBe(false);
    expect(startupBefore.body.reasons).toContain('migrations_pending');
    expect((await probe(svc.httpPort, '/livez')).status).toBe(200);

    await db.start();
    await waitFor('/startupz 200', async () => (await probe(svc.httpPort, '/startupz')).status === 200, 30_000, 50);
    const ready = await reasonsBecome(svc.httpPort, '/readyz', []);
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({
      ready: true,
      reasons: [],
      storage: { mode: expect.stringMatching(/^timescaledb_|^postgresql_table$/) },
      rowsBuffered: 0,
      unacknowledged: 0,
    });
    expect(ready.body.details).toBeUndefined();
    expect((await probe(svc.httpPort, '/startupz')).body).toEqual({ started: true, reasons: [] });

    // Database outage after start: not ready naming it; started and alive all along.
    await db.stop();
    const dbStopped = performance.now();
    const dbDown = await reasonsBecome(svc.httpPort, '/readyz', ['database_unreachable'], 15_000);
    const dbDownAfterS = (performance.now() - dbStopped) / 1000;
    expect(dbDown.status).toBe(503);
    expect((await probe(svc.httpPort, '/startupz')).status).toBe(200);
    expect((await probe(svc.httpPort, '/livez')).status).toBe(200);
    // The metric the database-down alert reads follows the same debounced rule.
    expect(await metric(svc.httpPort, 'esp_ingest_database_up')).toBe(0);
    // The change is logged once, as it happens, with its codes.
    await waitFor(
      'not_ready logged',
      () =>
        svc
          .output()
          .split('\n')
          .some((l) => l.includes('"event":"not_ready"') && l.includes('"reasons":["database_unreachable"]')),
      5_000,
    );
    await db.start();
    const dbStarted = performance.now();
    await reasonsBecome(svc.httpPort, '/readyz', [], 20_000);
    expect(await metric(svc.httpPort, 'esp_ingest_database_up')).toBe(1);
    const dbBackAfterS = (performance.now() - dbStarted) / 1000;

    // Broker outage: not ready naming the subscription; started and alive all along.
    await mq.stop();
    const mqStopped = performance.now();
    const mqDown = await reasonsBecome(svc.httpPort, '/readyz', ['mqtt_subscription_inactive'], 15_000);
    const mqDownAfterS = (performance.now() - mqStopped) / 1000;
    expect(mqDown.status).toBe(503);
    expect(mqDown.body.details?.mqtt_subscription_inactive).toMatch(/^mqtt: /);
    expect((await probe(svc.httpPort, '/startupz')).status).toBe(200);
    expect((await probe(svc.httpPort, '/livez')).status).toBe(200);
    await mq.start();
    const mqStarted = performance.now();
    await reasonsBecome(svc.httpPort, '/readyz', [], 20_000);
    console.log(
      `probes: database_unreachable ${dbDownAfterS.toFixed(2)} s after the server stopped, ready ${dbBackAfterS.toFixed(2)} s after it was back; ` +
        `mqtt_subscription_inactive ${mqDownAfterS.toFixed(2)} s after the broker stopped, ready ${((performance.now() - mqStarted) / 1000).toFixed(2)} s after it was back`,
    );

    // A clean stop.
    svc.proc.kill('SIGTERM');
    expect(await svc.exited).toBe(0);
    expect(svc.output()).not.toMatch(/uncaught|unhandled/i);
  });

  it('buffer_above_high_water while a table lock holds the writes; ready again once they commit', async () => {
    const databaseUrl = await freshDatabase(t);
    const mq = await privateMosquitto(t);
    const svc = await startService(t, {
      DATABASE_URL: databaseUrl,
      MQTT_URL: mq.url,
      MQTT_CLIENT_ID: 'esp-ingest-probes-buffer',
      BATCH_MAX_ROWS: '100',
      BUFFER_MAX_ROWS: '1000',
      READY_BUFFER_HIGH_WATER_RATIO: '0.5',
      DB_LOCK_TIMEOUT_MS: '120000',
      DB_STATEMENT_TIMEOUT_MS: '120000',
    });
    const locker = await lockTelemetryTable(t, databaseUrl);

    // 7 messages of 100 readings: 700 rows held, above the mark of 500 (0.5 × 1000).
    const pub = await mqtt.connectAsync(mq.url, { clientId: 'esp-probes-pub', protocolVersion: 5 });
    t.add(() => pub.endAsync(true));
    const t0 = Date.parse('2024-05-01T00:00:00Z');
    for (let m = 0; m < 7; m++) {
      const readings = Array.from({ length: 100 }, (_, i) => ({ ts: new Date(t0 + (m * 100 + i) * 1000).toISOString(), intake_pressure_kpa: 8000 + i }));
      await pub.publishAsync('esp/3w/W-BUF/telemetry', JSON.stringify(readings), { qos: 1 });
    }
    const high = await reasonsBecome(svc.httpPort, '/readyz', ['buffer_above_high_water']);
    expect(high.status).toBe(503);
    expect(high.body.rowsBuffered).toBe(700);
    expect(high.body.details?.buffer_above_high_water).toMatch(/700 rows buffered \(high water 500, ready again below 250\)/);
    expect(await metric(svc.httpPort, 'esp_ingest_unacknowledged_messages')).toBe(7);

    await locker.release();
    await reasonsBecome(svc.httpPort, '/readyz', []);
    await waitFor(
      '700 committed and acknowledged',
      async () =>
        (await metric(svc.httpPort, 'esp_ingest_readings_committed_total')) === 700 && (await metric(svc.httpPort, 'esp_ingest_unacknowledged_messages')) === 0,
    );
    svc.proc.kill('SIGTERM');
    expect(await svc.exited).toBe(0);
  });

  it('/livez 503 after the process was frozen (SIGSTOP) longer than LIVEZ_MAX_EVENT_LOOP_BLOCK_MS; 200 again after', async () => {
    const databaseUrl = await freshDatabase(t);
    const mq = await privateMosquitto(t);
    const svc = await startService(t, {
      DATABASE_URL: databaseUrl,
      MQTT_URL: mq.url,
      MQTT_CLIENT_ID: 'esp-ingest-probes-livez',
      LIVEZ_MAX_EVENT_LOOP_BLOCK_MS: '300',
    });
    expect(await probe(svc.httpPort, '/livez')).toEqual({ status: 200, body: { live: true } });

    svc.proc.kill('SIGSTOP');
    t.add(() => svc.proc.kill('SIGCONT'));
    // Sent while the process is stopped: the kernel queues it; it is answered after SIGCONT.
    const during = probe(svc.httpPort, '/livez');
    // The freeze is the injected fault (a timed one), not a synchronisation.
    await new Promise((r) => setTimeout(r, 1_200));
    svc.proc.kill('SIGCONT');
    const after = await during;
    expect(after.status).toBe(503);
    expect(after.body).toMatchObject({ live: false, reasons: ['event_loop_blocked'], maxEventLoopBlockMs: 300 });
    expect(after.body.eventLoopBlockedMs).toBeGreaterThan(300);
    await waitFor('/livez 200 again', async () => (await probe(svc.httpPort, '/livez')).status === 200, 10_000, 50);
    svc.proc.kill('SIGTERM');
    expect(await svc.exited).toBe(0);
  });
});

describe('/livez in-process', () => {
  it('503 for a request that waited behind a busy-wait longer than the bound', async () => {
    const watchdog = new EventLoopWatchdog(200);
    watchdog.start();
    t.add(() => watchdog.stop());
    const ready = { reasons: () => [], startupPending: () => [], detail: () => ({}) };
    const sidecar = new Sidecar({ registry: new Registry(), readiness: ready, liveness: { maxBlockMs: 200, blocked: () => watchdog.tracker.blocked() } });
    const port = await sidecar.start(0, '127.0.0.1');
    t.add(() => sidecar.stop());
    expect((await probe(port, '/livez')).status).toBe(200);

    const socket = connect(port, '127.0.0.1');
    await new Promise<void>((r) => socket.once('connect', () => r()));
    let response = '';
    socket.on('data', (d: Buffer) => (response += d.toString()));
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.write('GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    // Wedge the event loop: nothing else runs in this process for 600 ms.
    const until = performance.now() + 600;
    while (performance.now() < until);
    await closed;
    expect(response).toMatch(/^HTTP\/1\.1 503 /);
    const body = JSON.parse(response.slice(response.indexOf('\r\n\r\n') + 4)) as ProbeBody;
    expect(body).toMatchObject({ live: false, reasons: ['event_loop_blocked'], maxEventLoopBlockMs: 200 });
    expect(body.eventLoopBlockedMs).toBeGreaterThanOrEqual(350);
    await waitFor('/livez 200 again', async () => (await probe(port, '/livez')).status === 200, 5_000, 20);
  });
});
