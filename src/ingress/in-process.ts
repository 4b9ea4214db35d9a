// In-process ingress for BROKER=embedded: takes each PUBLISH that matches MQTT_TOPIC from the
// embedded aedes broker's `published` hook, with an `ack` that releases the device's own PUBACK
// (held by broker/commit-gate.ts) after commit. No loopback MQTT client, no second hop: the
// device's PUBACK means the readings are in TimescaleDB (or in rejected_messages).
//
// Other subscribers of the embedded broker still get every message as aedes delivers it; a
// PUBLISH outside MQTT_TOPIC is PUBACKed at once. QoS 0 has no PUBACK; QoS 2 keeps aedes' own
// PUBREC (sent once the message is handed over, before commit).
import type { Aedes, AedesPublishPacket, Client } from 'aedes';
import { CommitGate } from '../broker/commit-gate.ts';
import type { TopicTemplate } from '../decode/topic.ts';
import type { Logger } from '../log/logger.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { countedAck, type InboundMessage, type MessageSink } from './mqtt-ingress.ts';

export interface InProcessIngressDeps {
  readonly aedes: Aedes;
  readonly topic: TopicTemplate;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly clock: () => number;
  /** Told when intake becomes active (undefined) or inactive (why, for /readyz). */
  readonly onState?: (inactive: string | undefined) => void;
}

export class InProcessIngress {
  readonly #deps: InProcessIngressDeps;
  #gate: CommitGate | undefined;
  #accepting = false;

  constructor(deps: InProcessIngressDeps) {
    this.#deps = deps;
  }

  /** Takes messages from the broker from now on. No-op when started. */
  start(onMessage: MessageSink): void {
    if (this.#gate) return;
    const { aedes, topic, metrics, clock } = this.#deps;
    const gate = new CommitGate(aedes);
    this.#gate = gate;
    const received = [0, 1, 2].map((q) => metrics.messagesReceived.labels(String(q)));
    const unacknowledged = metrics.unackedMessages;
    const previous = aedes.published.bind(aedes);
    // A PUBLISH the broker acknowledged but dropped (refused by authorization: the embedded
    // broker's aedes.publish ends it before the `published` hook) gets its PUBACK released here,
    // when aedes.publish calls back without the hook having seen it.
    const seen = new WeakSet<object>();
    const publish = (aedes.publish as (...a: unknown[]) => void).bind(aedes);
    (aedes as unknown as { publish: (...a: unknown[]) => void }).publish = (packet: unknown, client: unknown, done: unknown) => {
      if (typeof packet !== 'object' || packet === null || typeof client !== 'object' || client === null || typeof done !== 'function')
        return publish(packet, client, done);
      return publish(packet, client, (err?: Error | null) => {
        if (!seen.has(packet)) gate.claim(client as Client, (packet as { messageId?: number }).messageId)?.();
        (done as (err?: Error | null) => void)(err);
      });
    };
    aedes.published = (packet: AedesPublishPacket, client: Client | null, done: (err?: Error | null) => void) => {
      seen.add(packet);
      // Messages the broker publishes itself ($SYS, wills of clients without a session) and
      // those outside MQTT_TOPIC are not ours.
      const release = client ? gate.claim(client, packet.messageId) : undefined;
      if (!client || topic.match(packet.topic) === undefined) {
        release?.();
        previous(packet, client as Client, done);
        return;
      }
      received[packet.qos]?.inc();
      if (!this.#accepting) {
        // Stopping: never PUBACK; the device sends it again to the next process.
        previous(packet, client, done);
        return;
      }
      unacknowledged.set(gate.held);
      const msg: InboundMessage = {
        topic: packet.topic,
        payload: Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload),
        qos: packet.qos,
        // A live PUBLISH, never a replay of a retained one: subscribers get it with retain 0 [MQTT-3.3.1-9].
        retain: false,
        receivedAtMs: clock(),
        ack: countedAck(release && { release }, metrics, gate),
      };
      // A promise means the buffer is full: this device's next packets wait (aedes reads its
      // socket again only when this callback ran), the others go on until they publish too.
      const wait = onMessage(msg);
      if (wait)
        wait.then(
          () => previous(packet, client, done),
          (err: Error) => done(err),
        );
      else previous(packet, client, done);
    };
    this.#accepting = true;
    metrics.mqttUp.set(1);
    this.#deps.onState?.(undefined);
  }

  /** Stops passing messages on; later ones are never PUBACKed (devices send them again). */
  stopIntake(): void {
    if (!this.#accepting) return;
    this.#accepting = false;
    this.#deps.metrics.mqttUp.set(0);
    this.#deps.onState?.('mqtt: intake stopped (shutting down)');
  }

  /** PUBACKs held now (received, not yet committed). */
  heldAcks(): number {
    return this.#gate?.held ?? 0;
  }

  /**
   * Stops intake, then ends every device connection once what was written to it (the PUBACKs
   * released so far) has left, waiting up to `timeoutMs`: closing the broker destroys its sockets
   * and would discard them. Idempotent.
   */
  async close(timeoutMs = 2000): Promise<void> {
    this.stopIntake();
    const clients = (this.#deps.aedes as unknown as { clients: Record<string, Client> }).clients;
    const ended = Object.values(clients).map((c) => {
      const conn = c.conn as unknown as { writableFinished?: boolean; destroyed?: boolean; end(): void; once(e: 'finish' | 'close', f: () => void): void };
      return new Promise<void>((resolve) => {
        if (conn.destroyed || conn.writableFinished) return resolve();
        conn.once('finish', resolve);
        conn.once('close', resolve);
        conn.end();
      });
    });
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(ended), new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
  }
}
