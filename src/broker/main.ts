// `npm run broker`: the embedded aedes broker on BROKER_PORT (default 1883) until SIGTERM/SIGINT.
import { startEmbeddedBroker } from './embedded-broker.ts';

const port = Number(process.env.BROKER_PORT ?? 1883);
const host = process.env.BROKER_HOST ?? '127.0.0.1';
const broker = await startEmbeddedBroker(port, host);
process.stdout.write(`embedded MQTT broker (aedes, MQTT 3.1.1) listening on ${host}:${broker.port}\n`);
const stop = () => void broker.close().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
