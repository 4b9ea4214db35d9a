// Commit gate for the embedded broker: holds the PUBACK aedes owes a device until the service has
// committed what the message carries, so a device's PUBACK means "in TimescaleDB".
//
// Why here: aedes 1.2 answers a QoS 1 PUBLISH by writing the PUBACK first and only then
// publishing the message (lib/handlers/publish.js `enqueuePublish`). Holding the handler's
// callback instead would stall the device: aedes parses one socket read at a time and reads the
// next only when every packet of the last one is done (lib/client.js `enqueue`/`nextBatch`), so
// its later PUBLISHes and PINGREQ would wait for the commit. The PUBACK is written through
// mqtt-packet's `writeToStream(packet, client.conn)` (lib/write.js), looked up on the module
// object at each call: the gate wraps that function for connections of its own aedes instance,
// keeps the PUBACK and reports success, so aedes goes on (publish, next packet) at once. The
// PUBACK is written when the commit releases it, on the same connection; if that connection
// ended first, it is dropped and the device sends the message again [MQTT-4.4.0-1].
import { createRequire } from 'node:module';
import type { Aedes, Client } from 'aedes';

interface AckPacket {
  readonly cmd: string;
  readonly messageId?: number;
}
type WriteToStream = (packet: AckPacket, stream: unknown, opts?: unknown) => boolean;

/** mqtt-packet as aedes resolves it (its module object: aedes reads `writeToStream` per call). */
function aedesMqttPacket(): { writeToStream: WriteToStream } {
  const fromAedes = createRequire(createRequire(import.meta.url).resolve('aedes'));
  return fromAedes('mqtt-packet') as { writeToStream: WriteToStream };
}

interface Held {
  readonly packet: AckPacket;
  claimed: boolean;
}

const gates = new WeakMap<object, CommitGate>();
let unwrapped: WriteToStream | undefined;

/** Wraps mqtt-packet's writeToStream once per process; only gated brokers' PUBACKs are diverted. */
function install(): WriteToStream {
  if (unwrapped) return unwrapped;
  const mod = aedesMqttPacket();
  const original = mod.writeToStream;
  mod.writeToStream = function gatedWriteToStream(packet, stream, opts) {
    if (packet.cmd === 'puback' && packet.messageId !== undefined) {
      const client = (stream as { client?: Client & { broker?: object } }).client;
      const gate = client?.broker ? gates.get(client.broker) : undefined;
      if (gate && client && gate.intercept(client, packet)) return true;
    }
    return original(packet, stream, opts);
  };
  unwrapped = original;
  return original;
}

/** Holds the embedded broker's PUBACKs per connection until released. */
export class CommitGate {
  readonly #held = new Map<Client, Map<number, Held>>();
  readonly #write: WriteToStream;
  #count = 0;
  #dropped = 0;

  /** Installs itself on `aedes` (one gate per broker). */
  constructor(aedes: Aedes) {
    this.#write = install();
    gates.set(aedes, this);
    aedes.on('clientDisconnect', (client) => this.#forget(client));
    aedes.on('clientError', (client) => this.#forget(client));
  }

  /** Keeps a PUBACK; a second one for a message id still held (a DUP resend) is dropped. */
  intercept(client: Client, packet: AckPacket): boolean {
    let perClient = this.#held.get(client);
    if (!perClient) {
      perClient = new Map();
      this.#held.set(client, perClient);
    }
    if (perClient.has(packet.messageId!)) return true;
    perClient.set(packet.messageId!, { packet, claimed: false });
    this.#count++;
    return true;
  }

  /**
   * Takes the held PUBACK of `messageId` from `client` (once: a DUP copy of a message still held
   * gets undefined and needs no PUBACK of its own).
   * @returns release(): writes the PUBACK when the connection is still open; false when it was
   *   dropped instead (the device sends the message again). Undefined when nothing is held.
   */
  claim(client: Client, messageId: number | undefined): (() => boolean) | undefined {
    if (messageId === undefined) return undefined;
    const entry = this.#held.get(client)?.get(messageId);
    if (!entry || entry.claimed) return undefined;
    entry.claimed = true;
    return () => {
      const perClient = this.#held.get(client);
      if (perClient?.get(messageId) !== entry) return false;
      perClient.delete(messageId);
      this.#count--;
      if (!client.connected) {
        this.#dropped++;
        return false;
      }
      this.#write(entry.packet, client.conn);
      return true;
    };
  }

  /** PUBACKs held now, over all devices. */
  get held(): number {
    return this.#count;
  }

  /** PUBACKs dropped because their connection ended first. */
  get dropped(): number {
    return this.#dropped;
  }

  #forget(client: Client): void {
    const perClient = this.#held.get(client);
    if (!perClient) return;
    this.#count -= perClient.size;
    this.#dropped += perClient.size;
    this.#held.delete(client);
  }
}

/**
 * Runs a real aedes broker of the installed version on an in-memory connection: CONNECT, then a
 * QoS 1 PUBLISH. Checks that the gate caught its PUBACK (nothing but the CONNACK left), that the
 * `published` hook then saw the device's own message id, and that releasing writes the PUBACK.
 * An `npm update aedes` that moved the PUBACK elsewhere would otherwise make devices' PUBACKs go
 * out before commit, silently.
 * @param createBroker the broker to check (tests give others); the installed aedes by default.
 * @returns what is wrong, or undefined when the installed aedes has the shape the gate needs.
 */
export async function commitGateProblem(createBroker?: () => Promise<Aedes>, timeoutMs = 2000): Promise<string | undefined> {
  const { Aedes: AedesClass } = await import('aedes');
  const { Duplex } = await import('node:stream');
  const mqttPacket = createRequire(createRequire(import.meta.url).resolve('aedes'))('mqtt-packet') as {
    generate(p: object): Buffer;
    parser(): { on(e: 'packet', f: (p: AckPacket) => void): void; parse(b: Buffer): void };
  };
  const aedes = await (createBroker ?? (() => AedesClass.createBroker()))();
  const sent: string[] = [];
  const parser = mqttPacket.parser();
  parser.on('packet', (p) => sent.push(p.cmd));
  const conn = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      parser.parse(chunk);
      cb();
    },
  });
  try {
    const gate = new CommitGate(aedes);
    const published = new Promise<(() => boolean) | string>((resolve) => {
      aedes.published = (packet, client, done) => {
        done(null);
        if (packet.topic !== 'esp-ingest/self-check') return;
        if (packet.messageId !== 7) return resolve(`the published hook saw message id ${String(packet.messageId)}, not the device's 7`);
        resolve(gate.claim(client, packet.messageId) ?? 'the PUBACK was not held by the time the published hook ran');
      };
    });
    aedes.handle(conn as never);
    conn.push(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'esp-ingest-self-check', keepalive: 0 }));
    conn.push(
      mqttPacket.generate({ cmd: 'publish', topic: 'esp-ingest/self-check', payload: Buffer.from('{}'), qos: 1, messageId: 7, retain: false, dup: false }),
    );
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      published,
      new Promise<string>((resolve) => (timer = setTimeout(() => resolve(`no QoS 1 PUBLISH reached the published hook within ${timeoutMs} ms`), timeoutMs))),
    ]);
    clearTimeout(timer);
    if (typeof outcome === 'string') return outcome;
    if (sent.includes('puback')) return 'a PUBACK reached the device before release';
    if (!outcome()) return 'releasing the held PUBACK did not write it';
    await new Promise((resolve) => setImmediate(resolve));
    if (!sent.includes('puback')) return 'the released PUBACK never reached the device';
    return undefined;
  } catch (err) {
    return `aedes could not be run in-process (${(err as Error).message})`;
  } finally {
    conn.destroy();
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
  }
}
