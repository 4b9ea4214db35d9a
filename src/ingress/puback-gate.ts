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
import { createRequire } from 'node:module';
import { MqttClient } from 'mqtt';

interface Packet {
  cmd: string;
  messageId?: number;
  reasonCode?: number;
  properties?: unknown;
}
type SendPacket = (packet: Packet, cb?: (err?: Error) => void, ...rest: unknown[]) => void;

/** A PUBACK to release; `release()` sends it (see PubackGate.hold). */
export interface Releasable {
  release(): boolean;
}

/**
 * A message's acknowledgement, its PUBACK for QoS 1. An object, not a closure: one is held per
 * message until commit, and a closure with its context weighs about twice a small object.
 */
export interface Acknowledgement {
  acknowledge(): void;
}

/**
 * MQTT.js's PUBACK was `{ cmd: 'puback', messageId, reasonCode: 0 }` and nothing more (mqtt
 * lib/handlers/publish, for a message its default customHandleAcks accepted): rebuilt when
 * released, so that no packet object is held per message.
 */
const PLAIN_PUBACK = Symbol('plain PUBACK');

/** `{ cmd, messageId, reasonCode: 0 }` and no other field (for…in: no array built). */
function isPlainPuback(packet: Packet): boolean {
  if (packet.reasonCode !== 0) return false;
  for (const key in packet) if (key !== 'cmd' && key !== 'messageId' && key !== 'reasonCode') return false;
  return true;
}

/** The epoch of a message handled after its connection closed: never the gate's. */
const CLOSED_EPOCH = -1;

/** One held PUBACK: a single object per in-flight message, also its acknowledgement. */
class Held implements Releasable, Acknowledgement {
  /** The PUBACK once MQTT.js produced it. */
  packet: Packet | typeof PLAIN_PUBACK | undefined;
  released = false;
  constructor(
    private readonly gate: { release(entry: Held): boolean; acknowledge(entry: Held): void },
    readonly epoch: number,
    readonly messageId: number,
  ) {}

  release(): boolean {
    return this.gate.release(this);
  }

  /** Releases the PUBACK and tells the gate's `onRelease` whether it was sent. */
  acknowledge(): void {
    this.gate.acknowledge(this);
  }
}

export interface GateStats {
  held: number;
  droppedOnClose: number;
}

/** Installs itself on one MqttClient; `hold()` before the message's handleMessage returns. */
export class PubackGate {
  /**
   * Held PUBACKs by packet id (1-65,535 [MQTT-2.2.1]): one array for the connection's life, not a
   * Map entry per message nor the Map's rehashes as thousands come and go.
   */
  readonly #held: (Held | undefined)[] = new Array<Held | undefined>(65_536).fill(undefined);
  #heldCount = 0;
  readonly #send: SendPacket;
  readonly #client: MqttClient;
  readonly #onRelease: ((sent: boolean) => void) | undefined;
  #epoch = 0;
  #dropped = 0;

  /**
   * @param onRelease told of each PUBACK an `acknowledge()` released: sent, or dropped with the
   *   connection it belonged to (the broker redelivers the message).
   */
  constructor(client: MqttClient, onRelease?: (sent: boolean) => void) {
    const internal = client as unknown as { _sendPacket: SendPacket };
    this.#client = client;
    this.#onRelease = onRelease;
    this.#send = internal._sendPacket.bind(client);
    internal._sendPacket = (packet, cb, ...rest) => {
      const entry = packet.cmd === 'puback' && packet.messageId !== undefined ? this.#held[packet.messageId] : undefined;
      if (!entry) {
        this.#send(packet, cb, ...rest);
        return;
      }
      if (entry.epoch !== this.#epoch) {
        // Its message came on a connection that has closed, and MQTT.js made the PUBACK only now
        // (a message handled after the close, or whose handleMessage called back after it). Never
        // sent: MQTT.js would send it on the next connection, where the same packet id may name
        // a message not committed. The broker redelivers this one [MQTT-4.4.0-1].
        this.#held[entry.messageId] = undefined;
        cb?.();
        return;
      }
      if (entry.released) {
        this.#forget(entry);
        this.#send(packet, cb, ...rest);
        return;
      }
      entry.packet = isPlainPuback(packet) ? PLAIN_PUBACK : packet;
      cb?.(); // let the MQTT.js work loop go on to the next packet
    };
    // The entries stay, under a past epoch, until their id is held again: a PUBACK MQTT.js still
    // makes for one of them is dropped (above).
    client.on('close', () => {
      this.#dropped += this.#heldCount;
      this.#heldCount = 0;
      this.#epoch++;
    });
  }

  #forget(entry: Held): void {
    this.#held[entry.messageId] = undefined;
    this.#heldCount--;
  }

  /**
   * Holds the PUBACK of `messageId`, a QoS 1 message MQTT.js is handling: every one, whatever
   * becomes of the message (release one that needs no commit at once). A message handled once its
   * connection has closed is held as of that closed connection: its PUBACK is never sent.
   * @returns its release(): sends the PUBACK if the connection is still the one the message came
   *   on; returns false when it was dropped instead (the broker will redeliver).
   */
  hold(messageId: number): Releasable & Acknowledgement {
    const live = this.#client.connected;
    const entry = new Held(this.#releaser, live ? this.#epoch : CLOSED_EPOCH, messageId);
    const previous = this.#held[messageId];
    const counted = previous !== undefined && previous.epoch === this.#epoch;
    if (live && !counted) this.#heldCount++;
    else if (!live && counted) this.#heldCount--;
    this.#held[messageId] = entry;
    return entry;
  }

  /** The message `held` came on the connection that is open now (false once it closed). */
  onCurrentConnection(held: Releasable & Acknowledgement): boolean {
    return (held as Held).epoch === this.#epoch;
  }

  readonly #releaser = {
    release: (entry: Held): boolean => {
      if (entry.epoch !== this.#epoch || this.#held[entry.messageId] !== entry) return false;
      if (!entry.packet) {
        entry.released = true;
        return true;
      }
      this.#forget(entry);
      if (!this.#client.connected) return false;
      this.#send(entry.packet === PLAIN_PUBACK ? { cmd: 'puback', messageId: entry.messageId, reasonCode: 0 } : entry.packet);
      return true;
    },
    acknowledge: (entry: Held): void => {
      const sent = this.#releaser.release(entry);
      this.#onRelease?.(sent);
    },
  };

  /** PUBACKs held now. */
  get held(): number {
    return this.#heldCount;
  }

  stats(): GateStats {
    return { held: this.#heldCount, droppedOnClose: this.#dropped };
  }
}

/** MQTT.js's handler for an incoming PUBLISH (mqtt `lib/handlers/publish`, default export). */
export type PublishHandler = (client: MqttClient, packet: Record<string, unknown>, done: () => void) => void;

/** The installed MQTT.js's PUBLISH handler, or why it cannot be loaded. */
function installedPublishHandler(): PublishHandler | string {
  try {
    const handler = (createRequire(import.meta.url)('mqtt/lib/handlers/publish') as { default?: unknown }).default;
    return typeof handler === 'function' ? (handler as PublishHandler) : 'mqtt/lib/handlers/publish has no default export function';
  } catch (err) {
    return `mqtt/lib/handlers/publish could not be loaded (${(err as Error).message})`;
  }
}

/**
 * Runs MQTT.js's own QoS 1 PUBLISH handler (mqtt `lib/handlers/publish`) on an unconnected
 * client with the gate installed, and checks that the PUBACK it produces is held: it must pass
 * through `_sendPacket`, after `handleMessage` called back. An `npm update mqtt` that moves the
 * PUBACK elsewhere would otherwise make PUBACKs go out before commit, silently.
 * @param handlePublish the handler to check (tests give others); the installed one by default.
 * @returns what is wrong, or undefined when the installed MQTT.js has the shape the gate needs.
 */
export function pubackGateProblem(handlePublish: PublishHandler | string = installedPublishHandler()): string | undefined {
  if (typeof handlePublish === 'string') return handlePublish;
  const client = new MqttClient(
    () => {
      throw new Error('never connected');
    },
    { manualConnect: true, protocolVersion: 4 },
  );
  const internal = client as unknown as { _sendPacket?: unknown; connected: boolean };
  if (typeof internal._sendPacket !== 'function') return 'MqttClient has no _sendPacket method';
  const sent: { cmd: string }[] = [];
  internal._sendPacket = (packet: { cmd: string }, cb?: () => void) => {
    sent.push(packet);
    cb?.();
  };
  // As if connected: what it sends only reaches `sent`.
  internal.connected = true;
  const gate = new PubackGate(client);
  const held = gate.hold(1);
  let handled = false;
  handlePublish(
    client,
    { cmd: 'publish', qos: 1, messageId: 1, topic: 'esp/self-check', payload: Buffer.alloc(0), retain: false, dup: false },
    () => (handled = true),
  );
  if (!handled) return 'the QoS 1 PUBLISH handler did not complete synchronously';
  if (sent.some((p) => p.cmd === 'puback')) return 'a PUBACK left through _sendPacket while the gate held it';
  // Released, a PUBACK the gate caught goes out; none goes out when nothing was caught (MQTT.js
  // would send it whenever it likes).
  held.release();
  if (!sent.some((p) => p.cmd === 'puback')) return 'the PUBACK never reached _sendPacket';
  return undefined;
}
