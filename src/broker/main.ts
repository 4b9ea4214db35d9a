// `npm run broker`: the embedded aedes broker on BROKER_PORT (default 1883) until SIGTERM/SIGINT.
// Anonymous (any client may publish as any well), so it listens on a loopback address only; run
// the service with BROKER=embedded and BROKER_PASSWORD_FILE for an authenticated one.
import { isLoopback } from '../config/loopback.ts';
import { startEmbeddedBroker } from './embedded-broker.ts';

const port = Number(process.env.BROKER_PORT ?? 1883);
const host = process.env.BROKER_HOST ?? '127.0.0.1';
if (!isLoopback(host)) {
  process.stderr.write(`broker: BROKER_HOST ${host} is not a loopback address; this broker takes anonymous clients and listens on 127.0.0.1 or ::1 only\n`);
  process.exit(2);
}
const broker = await startEmbeddedBroker(port, host);
process.stdout.write(`embedded MQTT broker (aedes, MQTT 3.1.1, anonymous) listening on ${host}:${broker.port}\n`);
const stop = () => void broker.close().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
