// Brokers that grant a shared subscription and deliver nothing: aedes 1.2 and NATS 2.9's MQTT
// listener answer SUBSCRIBE `$share/ingest/…` with QoS 1, then deliver none of the messages
// (moscajs/aedes #228, nats-io/nats-server #2386). The service must never report ready while
// deaf: its canary publishes a probe to its own topic, never gets it back, and /readyz answers
// 503 `mqtt_subscription_deaf`. On Mosquitto the same group works, and the probe is not counted
// as a message.

import mqtt from 'mqtt';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { startApp } from '../../src/app.ts';
import { startEmbeddedBroker } from '../../src/broker/embedded-broker.ts';
import { loadConfig } from '../../src/config/config.ts';
import { freshDatabase, metric, PrivateMosquitto, readyz, startService, Teardown, waitFor } from '../support/harness.ts';
import { PrivateNats } from '../support/private-nats.ts';

const t = new Teardown();
afterAll(() => t.run());

async function startGroupMember(url: string, protocol: '4' | '5') {
  const prefix = `t${Math.random().toString(36).slice(2, 10)}`;
  const config = loadConfig({
    DATABASE_URL: await freshDatabase(t),
    MQTT_URL: url,
    MQTT_PROTOCOL_VERSION: protocol,
    MQTT_SHARED_GROUP: 'ingest',
    MQTT_TOPIC: `${prefix}/{site}/{well_id}/telemetry`,
    MQTT_CLIENT_ID: `esp-ingest-${prefix}`,
    HTTP_PORT: '0',
    HTTP_HOST: '127.0.0.1',
  });
  const app = await startApp({ config, log: pino({ level: 'silent' }) });
  t.add(() => app.stop());
  return { app, prefix };
}

/** Publishes 20 readings of one well at QoS 1 (the broker PUBACKs them). */
async function publish20(url: string, prefix: string): Promise<void> {
  const pub = await mqtt.connectAsync(url, { clientId: `pub-${prefix}`, protocolVersion: 4 });
  for (let i = 0; i < 20; i++)
    await pub.publishAsync(`${prefix}/s/W-1/telemetry`, JSON.stringify({ ts: 1714521600000 + i * 1000, motor_current_a: 40 }), { qos: 1 });
  await pub.endAsync();
}

describe.concurrent('a shared group on a broker without shared subscriptions', () => {
  it.each([
    {
      broker: 'aedes 1.2',
      start: async () => {
        const b = await startEmbeddedBroker(0);
        t.add(() => b.close());
        return `mqtt://127.0.0.1:${b.port}`;
      },
    },
    {
      broker: "NATS 2.9's MQTT listener",
      start: async () => {
        const n = new PrivateNats();
        t.add(() => n.destroy());
        await n.start();
        return n.mqttUrl;
      },
    },
  ])('$broker: subscribed, deaf, never ready', async ({ start }) => {
    const url = await start();
    const { app, prefix } = await startGroupMember(url, '4');
    await waitFor('subscribed', async () => (await metric(app.httpPort, 'esp_ingest_mqtt_up')) === 1, 15_000);
    await publish20(url, prefix);
    // Until the canary's probe has timed out, poll /readyz: it must never say ready.
    let last = await readyz(app.httpPort);
    await waitFor(
      'the canary reports the probe lost',
      async () => {
        last = await readyz(app.httpPort);
        expect(last.status).toBe(503);
        return String((last.body as { details?: Record<string, string> }).details?.mqtt_subscription_deaf ?? '').includes('did not deliver our probe');
      },
      15_000,
      100,
    );
    expect(last.body.reasons).toEqual(['mqtt_subscription_deaf']);
    expect(await metric(app.httpPort, 'esp_ingest_messages_received_total')).toBe(0);
    expect(await metric(app.httpPort, 'esp_ingest_ready')).toBe(0);
  });
});

it('on Mosquitto the group is ready once the probe came back, and the probe is not counted as a message', async () => {
  const broker = new PrivateMosquitto();
  await broker.start();
  t.add(() => broker.destroy());
  const { app, prefix } = await startGroupMember(broker.url, '5');
  await waitFor('ready', async () => (await readyz(app.httpPort)).status === 200, 15_000);
  expect(await metric(app.httpPort, 'esp_ingest_messages_received_total')).toBe(0);
  await publish20(broker.url, prefix);
  await waitFor('20 committed', async () => (await metric(app.httpPort, 'esp_ingest_readings_committed_total')) === 20, 10_000);
  expect(await metric(app.httpPort, 'esp_ingest_messages_received_total')).toBe(20);
});

it('MQTT_SHARED_GROUP with BROKER=embedded: refused at start, exit 2, one line saying why', async () => {
  const svc = await startService(
    t,
    { DATABASE_URL: 'postgres://u@127.0.0.1:1/never', BROKER: 'embedded', BROKER_PORT: '0', MQTT_SHARED_GROUP: 'ingest' },
    { waitReady: false },
  );
  expect(await svc.exited).toBe(2);
  const lines = svc
    .output()
    .split('\n')
    .filter((l) => l.includes('MQTT_SHARED_GROUP'));
  expect(lines).toHaveLength(1);
  expect(lines[0]).toContain('MQTT_SHARED_GROUP ("ingest") needs a broker with shared subscriptions: the embedded broker (BROKER=embedded) has none');
});
