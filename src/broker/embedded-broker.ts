// Embedded MQTT broker (aedes, MQTT 3.1.1) on a TCP port, so one machine needs no external
// broker. With BROKER=embedded the service takes its messages in-process (ingress/in-process.ts,
// devices' PUBACKs held by commit-gate.ts); `npm run broker` runs it alone. In-memory
// persistence: sessions and queued messages live as long as this process (use Mosquitto with
// persistence where a broker restart must not lose queued messages).
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Aedes } from 'aedes';

/** Why the embedded broker refused a PUBLISH (it then closes that publisher's connection). */
export type RefusedPublishReason = 'empty_topic_level' | 'sys_topic';

/**
 * A PUBLISH the embedded broker refuses, before acknowledging it (the publisher keeps it and
 * sends it again; nothing it published is lost), so it can never reach the subscriber:
 * - `empty_topic_level` (`esp//W-1/telemetry`): aedes 1.2 matches the empty level against a `+`
 *   filter, then fails to find the queued packet for a persistent subscriber ("no such packet")
 *   and closes the subscriber's connection; the message is lost and our held PUBACKs with it.
 *   The service could only have rejected it (`invalid_well_id`).
 * - `sys_topic`: clients may not publish under `$SYS/`, the broker's own tree (aedes #597: a
 *   spoofed `$SYS/<id>/new/clients` used to disconnect the client with that id).
 * @returns the reason, or undefined to accept.
 */
export function refusedPublishReason(topic: string): RefusedPublishReason | undefined {
  if (topic.startsWith('$SYS')) return 'sys_topic';
  if (topic.split('/').includes('')) return 'empty_topic_level';
  return undefined;
}

export interface EmbeddedBrokerOptions {
  /** Called for each refused PUBLISH (count it; log it without the payload). */
  readonly onPublishRefused?: (reason: RefusedPublishReason, topic: string, clientId: string) => void;
}

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
export async function startEmbeddedBroker(port: number, host = '127.0.0.1', options: EmbeddedBrokerOptions = {}): Promise<EmbeddedBroker> {
  // concurrency bounds messages in delivery at once; raised so a burst does not wait on it.
  const aedes = await Aedes.createBroker({
    concurrency: 1000,
    queueLimit: 10_000,
    authorizePublish: (client, packet, callback) => {
      const reason = refusedPublishReason(packet.topic);
      if (!reason) return callback(null);
      options.onPublishRefused?.(reason, packet.topic, client?.id ?? '');
      callback(new Error(`PUBLISH refused (${reason}): ${packet.topic}`));
    },
  });
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
