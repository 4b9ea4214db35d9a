// Broker ceiling helper for `npm run bench`: a bare MQTT.js subscriber (QoS 1, persistent
// session, PUBACK on receipt, no decoding, no database). Prints "ready" once subscribed, then
// "done <ms>" when it has received the expected number of readings (JSON array lengths summed).
import mqtt from 'mqtt';
import { brokerAddress } from '../src/ingress/broker-url.ts';

const [url, filter, expectedArg, perMessageArg] = process.argv.slice(2);
const expected = Number(expectedArg);
const perMessage = Number(perMessageArg);
const client = await mqtt.connectAsync({
  ...brokerAddress(url!),
  clientId: `esp-bench-ceiling-${process.pid}`,
  clean: false,
  protocolVersion: 5,
  properties: { sessionExpiryInterval: 60, receiveMaximum: 4096 },
});
await client.subscribeAsync(filter!, { qos: 1 });
let readings = 0;
let first = 0;
client.on('message', (_topic, payload) => {
  if (first === 0) first = performance.now();
  // Count readings as the service would see them, without validating them.
  readings += perMessage === 1 ? 1 : (JSON.parse(payload.toString()) as unknown[]).length;
  if (readings >= expected) {
    process.stdout.write(`done ${performance.now()}\n`);
    void client.endAsync().then(() => process.exit(0));
  }
});
process.stdout.write('ready\n');
