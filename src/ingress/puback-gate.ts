// PUBACK gate: holds each QoS 1 PUBACK until the batch holding the message has committed.
//
// Why here: MQTT.js processes incoming packets one at a time and writes the PUBACK when
// `handleMessage` calls back (mqtt src/lib/handlers/publish.ts, work loop in client.ts).
// Holding that callback until commit would stall every packet behind it, PINGRESP included
// (MQTT.js #1935: keepalive timeouts). So `handleMessage` calls back at once and this gate
// intercepts the PUBACK packet on its way out (`_sendPacket`, MQTT.js 5 internal, pinned by the
// lockfile and covered by the ingress integration tests), releasing it after commit. Thousands
// of messages can then be in flight (MQTT 5 Receive Maximum) while the loop keeps running.
//
// A held PUBACK belongs to one connection: if the connection closes first, it is dropped, and
// the broker redelivers the message on the resumed session [MQTT-4.4.0-1]; the sink stores it
// once (dedupe on (well_id, ts)). PUBACKs are released in arrival order because batches commit
// in arrival order [MQTT-4.6.0-2].
import type { MqttClient } from 'mqtt';

type SendPacket = (packet: { cmd: string; messageId?: number }, cb?: (err?: Error) => void, ...rest: unknown[]) => void;

interface Held {
  readonly epoch: number;
  /** The PUBACK packet once MQTT.js produced it. */
  packet?: { cmd: string; messageId?: number };
  released: boolean;
}

export interface GateStats {
  held: number;
  droppedOnClose: number;
}

/** Installs itself on one MqttClient; `hold()` before the message's handleMessage returns. */
export class PubackGate {
  readonly #held = new Map<number, Held>();
  readonly #send: SendPacket;
  readonly #client: MqttClient;
  #epoch = 0;
  #dropped = 0;

  constructor(client: MqttClient) {
    const internal = client as unknown as { _sendPacket: SendPacket };
    this.#client = client;
    this.#send = internal._sendPacket.bind(client);
    internal._sendPacket = (packet, cb, ...rest) => {
      const entry = packet.cmd === 'puback' && packet.messageId !== undefined ? this.#held.get(packet.messageId) : undefined;
      if (!entry || entry.epoch !== this.#epoch) {
        this.#send(packet, cb, ...rest);
        return;
      }
      if (entry.released) {
        this.#held.delete(packet.messageId!);
        this.#send(packet, cb, ...rest);
        return;
      }
      entry.packet = packet;
      cb?.(); // let the MQTT.js work loop go on to the next packet
    };
    client.on('close', () => {
      this.#dropped += this.#held.size;
      this.#held.clear();
      this.#epoch++;
    });
  }

  /**
   * Holds the PUBACK of `messageId` on the current connection.
   * @returns release(): sends the PUBACK if the connection is still the one the message came
   *   on; returns false when it was dropped instead (the broker will redeliver).
   */
  hold(messageId: number): () => boolean {
    const entry: Held = { epoch: this.#epoch, released: false };
    this.#held.set(messageId, entry);
    return () => {
      if (entry.epoch !== this.#epoch || this.#held.get(messageId) !== entry) return false;
      if (!entry.packet) {
        entry.released = true;
        return true;
      }
      this.#held.delete(messageId);
      if (!this.#client.connected) return false;
      this.#send(entry.packet);
      return true;
    };
  }

  stats(): GateStats {
    return { held: this.#held.size, droppedOnClose: this.#dropped };
  }
}
