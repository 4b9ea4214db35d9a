// The embedded broker bounds the packets a client may send: a device publishing a payload far
// beyond MESSAGE_MAX_BYTES (hundreds of MB held whole in memory otherwise; aedes has no such
// setting) has its connection closed before the body is read, and the broker serves others on.
import mqtt from 'mqtt';
import { afterAll, expect, it } from 'vitest';
import { startEmbeddedBroker } from '../../src/broker/embedded-broker.ts';
import { Teardown } from '../support/harness.ts';

const t = new Teardown();
afterAll(() => t.run());

it('closes the connection of a client whose PUBLISH exceeds the packet bound, before buffering it; others are served', async () => {
  const broker = await startEmbeddedBroker(0, '127.0.0.1', { maxPacketBytes: 64 * 1024 });
  t.add(() => broker.close());
  const url = `mqtt://127.0.0.1:${broker.port}`;
  const received: string[] = [];
  const listener = await mqtt.connectAsync(url, { clientId: 'listener', protocolVersion: 4 });
  t.add(() => listener.endAsync(true));
  await listener.subscribeAsync('esp/+/+/telemetry', { qos: 1 });
  listener.on('message', (topic) => received.push(topic));

  const flooder = await mqtt.connectAsync(url, { clientId: 'flooder', protocolVersion: 4, reconnectPeriod: 0 });
  t.add(() => flooder.endAsync(true));
  const closed = new Promise<void>((resolve) => flooder.once('close', () => resolve()));
  // 8 MB: the header alone announces it; the broker closes without waiting for the body.
  flooder.publish('esp/s/W-1/telemetry', Buffer.alloc(8 * 1024 * 1024, 0x20), { qos: 1 });
  await closed;

  const device = await mqtt.connectAsync(url, { clientId: 'device', protocolVersion: 4 });
  t.add(() => device.endAsync(true));
  await device.publishAsync('esp/s/W-2/telemetry', Buffer.alloc(60 * 1024, 0x20), { qos: 1 });
  await expect.poll(() => received).toEqual(['esp/s/W-2/telemetry']);
});
