// BROKER=embedded: a device's PUBACK is its readings' commit. While the database holds the
// write, the device gets no PUBACK, yet nothing else waits: its PINGREQs are answered, its next
// message is received, and a PUBLISH outside MQTT_TOPIC is PUBACKed at once. Real aedes, real
// TimescaleDB, MQTT.js devices.

import mqtt from 'mqtt';
import { afterAll, expect, it } from 'vitest';
import { freshDatabase, lockTelemetryTable, metric, query, startInProcess, Teardown, waitFor } from '../support/harness.ts';

const t = new Teardown();
afterAll(() => t.run());

it("holds the device's PUBACK until commit without stalling its keepalive, its next messages or other devices", async () => {
  const databaseUrl = await freshDatabase(t);
  const prefix = `t${Math.random().toString(36).slice(2, 10)}`;
  const app = await startInProcess(t, prefix, {
    DATABASE_URL: databaseUrl,
    BROKER: 'embedded',
    BROKER_PORT: '0',
    DB_LOCK_TIMEOUT_MS: '300',
    RETRY_MAX_DELAY_MS: '200',
  });
  const locker = await lockTelemetryTable(t, databaseUrl);
  const device = await mqtt.connectAsync(app.mqttUrl, { clientId: `dev-${prefix}`, clean: false, protocolVersion: 4, keepalive: 1 });
  t.add(() => device.endAsync());
  let pingresps = 0;
  device.on('packetreceive', (p) => void (p.cmd === 'pingresp' && pingresps++));
  const pubacked: string[] = [];
  const send = (ts: string) =>
    device.publish(`${prefix}/s/W-1/telemetry`, JSON.stringify({ ts, motor_current_a: 40 }), { qos: 1 }, (err) => void (err ?? pubacked.push(ts)));

  send('2024-05-01T00:00:00Z');
  await waitFor('a retried flush', async () => (await metric(app.httpPort, 'esp_ingest_flush_retries_total')) >= 2, 20_000);
  send('2024-05-01T00:00:01Z');
  await waitFor('second message received while the first waits', async () => (await metric(app.httpPort, 'esp_ingest_messages_received_total')) === 2);
  const before = pingresps;
  await waitFor('a PINGRESP while the PUBACKs are held', () => pingresps > before, 5_000);
  const other = await mqtt.connectAsync(app.mqttUrl, { clientId: `other-${prefix}`, protocolVersion: 4 });
  t.add(() => other.endAsync());
  await other.publishAsync('not-telemetry/status', 'up', { qos: 1 });
  expect(pubacked).toEqual([]);
  expect(await metric(app.httpPort, 'esp_ingest_unacknowledged_messages')).toBe(2);

  await locker.release();
  await waitFor('both PUBACKs', () => pubacked.length === 2, 10_000);
  expect(pubacked).toEqual(['2024-05-01T00:00:00Z', '2024-05-01T00:00:01Z']);
  expect(await query(databaseUrl, 'SELECT count(*)::int AS n FROM esp_telemetry')).toEqual([{ n: 2 }]);
  expect(await metric(app.httpPort, 'esp_ingest_messages_acknowledged_total')).toBe(2);
  expect(await app.stop()).toBe(true);
});

it('on graceful stop, commits what devices sent and PUBACKs it before the broker closes', async () => {
  const databaseUrl = await freshDatabase(t);
  const prefix = `t${Math.random().toString(36).slice(2, 10)}`;
  const app = await startInProcess(t, prefix, {
    DATABASE_URL: databaseUrl,
    BROKER: 'embedded',
    BROKER_PORT: '0',
    BATCH_FLUSH_INTERVAL_MS: '600000',
    BATCH_MAX_ROWS: '100000',
    BUFFER_MAX_ROWS: '100000',
  });
  const device = await mqtt.connectAsync(app.mqttUrl, { clientId: `dev-${prefix}`, clean: false, protocolVersion: 4, reconnectPeriod: 0 });
  let pubacks = 0;
  for (let i = 0; i < 20; i++)
    device.publish(
      `${prefix}/s/W-2/telemetry`,
      JSON.stringify({ ts: 1714521600000 + i * 1000, motor_current_a: 40 + i }),
      { qos: 1 },
      (err) => void (err ?? pubacks++),
    );
  await waitFor('20 buffered', async () => (await metric(app.httpPort, 'esp_ingest_rows_buffered')) === 20);
  expect(pubacks).toBe(0);
  expect(await app.stop()).toBe(true);
  await waitFor('20 PUBACKs at the device', () => pubacks === 20, 5_000);
  expect(await query(databaseUrl, 'SELECT count(*)::int AS n FROM esp_telemetry')).toEqual([{ n: 20 }]);
  device.end(true);
});
