// The whole path in-process, against real brokers (embedded aedes in-process, the machine's
// Mosquitto) and real TimescaleDB: valid and invalid readings, PUBACK only after commit,
// graceful stop.

import mqtt from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import { startEmbeddedBroker } from '../../src/broker/embedded-broker.ts';
import { freshDatabase, lockTelemetryTable, metric, query, startInProcess, Teardown, waitFor } from '../support/harness.ts';

const t = new Teardown();
afterAll(() => t.run());
const MACHINE_MOSQUITTO = process.env.TEST_MQTT_URL ?? 'mqtt://127.0.0.1:1883';

async function start(env: Record<string, string>): Promise<{ app: App; prefix: string; databaseUrl: string }> {
  const databaseUrl = await freshDatabase(t);
  const prefix = `t${Math.random().toString(36).slice(2, 10)}`;
  const app = await startInProcess(t, prefix, { DATABASE_URL: databaseUrl, ...env });
  return { app, prefix, databaseUrl };
}

async function publisher(url: string): Promise<mqtt.MqttClient> {
  const c = await mqtt.connectAsync(url, { clientId: `pub-${Math.random().toString(36).slice(2)}`, clean: true });
  t.add(() => c.endAsync());
  return c;
}

describe.each([
  { broker: 'embedded aedes (MQTT 3.1.1)', protocol: '4' as const },
  { broker: "the machine's Mosquitto (MQTT 5)", protocol: '5' as const },
])('through $broker', ({ protocol }) => {
  it('stores the valid reading and rejects {"ts":"yesterday"} with a reason and the raw payload', async () => {
    let url = MACHINE_MOSQUITTO;
    if (protocol === '4') {
      const broker = await startEmbeddedBroker(0);
      t.add(() => broker.close());
      url = `mqtt://127.0.0.1:${broker.port}`;
    }
    const { app, prefix, databaseUrl } = await start({ MQTT_URL: url, MQTT_PROTOCOL_VERSION: protocol });
    const pub = await publisher(url);
    const bad = '{"ts":"yesterday","intake_pressure_kpa":1}';
    await pub.publishAsync(`${prefix}/site-a/W-17/telemetry`, bad, { qos: 1 });
    await pub.publishAsync(
      `${prefix}/site-a/W-17/telemetry`,
      JSON.stringify([
        { ts: '2024-05-01T00:00:00Z', seq: 1, intake_pressure_kpa: 8200.5, vsd_frequency_hz: 52 },
        { ts: 1714521601000, seq: 2, intake_pressure_kpa: 8201, motor_current_a: 41.5, firmware: 'v2' },
      ]),
      { qos: 1 },
    );
    await waitFor('2 rows and 1 reject', async () => {
      const [r] = await query<{ n: string; m: string }>(
        databaseUrl,
        'SELECT (SELECT count(*) FROM esp_telemetry) AS n, (SELECT count(*) FROM rejected_messages) AS m',
      );
      return Number(r!.n) === 2 && Number(r!.m) === 1;
    });
    const rows = await query(databaseUrl, `SELECT well_id, site, seq, intake_pressure_kpa, motor_current_a, extra FROM esp_telemetry ORDER BY ts`);
    expect(rows).toEqual([
      { well_id: 'W-17', site: 'site-a', seq: '1', intake_pressure_kpa: 8200.5, motor_current_a: null, extra: null },
      { well_id: 'W-17', site: 'site-a', seq: '2', intake_pressure_kpa: 8201, motor_current_a: 41.5, extra: { firmware: 'v2' } },
    ]);
    const [rej] = await query<{ reason: string; detail: string; payload: Buffer; topic: string; well_id: string }>(
      databaseUrl,
      'SELECT reason, detail, payload, topic, well_id FROM rejected_messages',
    );
    expect(rej).toMatchObject({ reason: 'invalid_ts', topic: `${prefix}/site-a/W-17/telemetry`, well_id: 'W-17' });
    expect(rej!.payload.toString()).toBe(bad);
    expect(rej!.detail).toContain('yesterday');
    expect(await metric(app.httpPort, 'esp_ingest_readings_rejected_total{reason="invalid_ts"}')).toBe(1);
    expect(await metric(app.httpPort, 'esp_ingest_readings_committed_total')).toBe(2);
    expect(await app.stop()).toBe(true);
  });
});

it('with BROKER=embedded, runs aedes in-process and takes its messages in-process', async () => {
  const { app, prefix, databaseUrl } = await start({ BROKER: 'embedded', BROKER_PORT: '0' });
  expect(app.mqttUrl).toMatch(/^mqtt:\/\/127\.0\.0\.1:\d+$/);
  const pub = await publisher(app.mqttUrl);
  await pub.publishAsync(`${prefix}/s/W-9/telemetry`, '{"ts":"2024-05-01T00:00:00Z","vsd_frequency_hz":50}', { qos: 1 });
  await waitFor('the row', async () => (await query<{ n: number }>(databaseUrl, 'SELECT count(*)::int AS n FROM esp_telemetry'))[0]!.n === 1);
  expect(await app.stop()).toBe(true);
});

it('with BROKER=embedded, a PUBLISH with an empty topic level or under $SYS is acknowledged and dropped; the publisher stays connected and its next reading is stored', async () => {
  const { app, prefix, databaseUrl } = await start({ BROKER: 'embedded', BROKER_PORT: '0' });
  // Refused but acknowledged (aedes #210): a refusal that closed the connection would make a
  // persistent publisher resend it on every reconnect, stranding the good readings behind it.
  const bad = await mqtt.connectAsync(app.mqttUrl, {
    clientId: `bad-${Math.random().toString(36).slice(2, 8)}`,
    protocolVersion: 4,
    clean: false,
    reconnectPeriod: 0,
  });
  for (const topic of [`${prefix}//W-1/telemetry`, `${prefix}/s//telemetry`]) {
    await bad.publishAsync(topic, '{"ts":"2024-05-01T00:00:00Z","vsd_frequency_hz":50}', { qos: 1 });
  }
  await bad.publishAsync(`$SYS/fake/new/clients`, `esp-ingest-${prefix}`, { qos: 1 });
  expect(bad.connected).toBe(true);
  await bad.publishAsync(`${prefix}/s/W-8/telemetry`, '{"ts":"2024-05-01T00:00:00Z","vsd_frequency_hz":50}', { qos: 1 });
  await bad.endAsync();
  await waitFor(
    'the reading sent after the refused ones',
    async () => (await query<{ n: number }>(databaseUrl, "SELECT count(*)::int AS n FROM esp_telemetry WHERE well_id = 'W-8'"))[0]!.n === 1,
  );
  expect(await metric(app.httpPort, 'esp_ingest_embedded_broker_publishes_refused_total{reason="empty_topic_level"}')).toBe(2);
  expect(await metric(app.httpPort, 'esp_ingest_embedded_broker_publishes_refused_total{reason="sys_topic"}')).toBe(1);
  expect(await metric(app.httpPort, 'esp_ingest_pubacks_dropped_total')).toBe(0);
  expect(await app.stop()).toBe(true);
});

describe('acknowledgement', () => {
  it('sends the PUBACK only after the reading is committed, and the connection stays alive meanwhile', async () => {
    // aedes reports each PUBACK it receives from a subscriber ('ack'), which Mosquitto cannot.
    const broker = await startEmbeddedBroker(0);
    t.add(() => broker.close());
    const url = `mqtt://127.0.0.1:${broker.port}`;
    const { app, prefix, databaseUrl } = await start({ MQTT_URL: url, MQTT_PROTOCOL_VERSION: '4', DB_LOCK_TIMEOUT_MS: '300', RETRY_MAX_DELAY_MS: '200' });
    const pubacks: string[] = [];
    // Telemetry only: the service also acknowledges its own canary probe and session marker.
    broker.aedes.on('ack', (packet, client) => {
      if (client?.id.startsWith('esp-ingest-') && packet && 'payload' in packet && packet.topic.startsWith(`${prefix}/`)) pubacks.push(String(packet.payload));
    });
    // Another session holds the hypertable: every write waits, times out and is retried.
    const locker = await lockTelemetryTable(t, databaseUrl);
    const pub = await publisher(url);
    const first = '{"ts":"2024-05-01T00:00:00Z","motor_current_a":40}';
    await pub.publishAsync(`${prefix}/s/W-1/telemetry`, first, { qos: 1 });
    await waitFor('a retried flush', async () => (await metric(app.httpPort, 'esp_ingest_flush_retries_total')) >= 2, 20_000);
    expect(await metric(app.httpPort, 'esp_ingest_unacknowledged_messages')).toBe(1);
    expect(pubacks).toEqual([]);
    // The MQTT.js work loop is not held: a second message is received while the first waits.
    const second = '{"ts":"2024-05-01T00:00:01Z","motor_current_a":41}';
    await pub.publishAsync(`${prefix}/s/W-1/telemetry`, second, { qos: 1 });
    await waitFor('second message received', async () => (await metric(app.httpPort, 'esp_ingest_messages_received_total')) === 2);
    expect(pubacks).toEqual([]);
    await locker.release();
    await waitFor('both PUBACKs', () => pubacks.length === 2);
    expect(pubacks).toEqual([first, second]);
    expect(await query(databaseUrl, 'SELECT count(*)::int AS n FROM esp_telemetry')).toEqual([{ n: 2 }]);
    expect(await metric(app.httpPort, 'esp_ingest_messages_acknowledged_total')).toBe(2);
  });

  it('on graceful stop, commits what is buffered and PUBACKs it before disconnecting', async () => {
    const broker = await startEmbeddedBroker(0);
    t.add(() => broker.close());
    const url = `mqtt://127.0.0.1:${broker.port}`;
    const { app, prefix, databaseUrl } = await start({
      MQTT_URL: url,
      MQTT_PROTOCOL_VERSION: '4',
      BATCH_FLUSH_INTERVAL_MS: '600000',
      BATCH_MAX_ROWS: '100000',
      BUFFER_MAX_ROWS: '100000',
    });
    let pubacks = 0;
    broker.aedes.on('ack', (packet, client) => {
      if (client?.id.startsWith('esp-ingest-') && packet && 'topic' in packet && packet.topic.startsWith(`${prefix}/`)) pubacks++;
    });
    const pub = await publisher(url);
    for (let i = 0; i < 20; i++) {
      await pub.publishAsync(`${prefix}/s/W-2/telemetry`, JSON.stringify({ ts: 1714521600000 + i * 1000, motor_current_a: 40 + i }), { qos: 1 });
    }
    await waitFor('20 buffered', async () => (await metric(app.httpPort, 'esp_ingest_rows_buffered')) === 20);
    expect(pubacks).toBe(0);
    expect(await app.stop()).toBe(true);
    await waitFor('20 PUBACKs at the broker', () => pubacks === 20, 5_000);
    expect(await query(databaseUrl, 'SELECT count(*)::int AS n FROM esp_telemetry')).toEqual([{ n: 20 }]);
  });
});
