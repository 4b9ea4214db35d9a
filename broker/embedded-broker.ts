// Embedded MQTT broker (aedes, MQTT 3.1.1) on a TCP port, so one machine needs no external
// broker. The ingress reaches it over TCP exactly as it reaches Mosquitto. In-memory
// persistence: sessions and queued messages live as long as this process (use Mosquitto with
// persistence where a broker restart must not lose queued messages).
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Aedes } from 'aedes';

export interface EmbeddedBroker {
  readonly port: number;
  /** The aedes instance (events such as `ack` show what the subscriber acknowledged). */
  readonly aedes: Aedes;
  /** Closes the listener and every client connection. Idempotent. */
  close(): Promise<void>;
}

/**
 * @param port 0 for an ephemeral port (see `.port`).
 * @param host defaults to 127.0.0.1: the embedded broker has no authentication.
 */
export async function startEmbeddedBroker(port: number, host = '127.0.0.1'): Promise<EmbeddedBroker> {
  // concurrency bounds messages in delivery at once; raised so a burst does not wait on it.
  const aedes = await Aedes.createBroker({ concurrency: 1000, queueLimit: 10_000 });
  const server: Server = createServer(aedes.handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  let closed: Promise<void> | undefined;
  return {
    port: (server.address() as AddressInfo).port,
    aedes,
    close: () =>
      (closed ??= new Promise<void>((resolve) => {
        server.close();
        aedes.close(() => resolve());
      })),
  };
}
