// Embedded MQTT broker (aedes, MQTT 3.1.1) on a TCP or TLS port, so one machine needs no
// external broker. With BROKER=embedded the service takes its messages in-process
// (ingress/in-process.ts, devices' PUBACKs held by commit-gate.ts); `npm run broker` runs it alone.
// It authenticates clients (Mosquitto password file and/or JWT, see broker-auth.ts), authorizes
// every PUBLISH and SUBSCRIBE (authorize.ts), and keeps the service's client id and its
// all-wells subscription for the service alone. In-memory persistence: sessions and queued
// messages live as long as this process.

import type { AddressInfo } from 'node:net';
import { createServer, type Server } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { Aedes, type Client } from 'aedes';
import { type Identity, type PublishRefusal, publishRefusal, type SubscribeRefusal, subscribeRefusal, topicRules } from './authorize.ts';
import type { Authenticator, ConnectRefusal } from './broker-auth.ts';

/**
 * A refused PUBLISH, for the refusal counter and a throttled log line. Every refusal (`$SYS/…`,
 * another well's topic, an expired token, an empty topic level…) is acknowledged and dropped, so
 * a device whose session holds the message does not resend it on every reconnect and loop
 * forever, stranding the good readings behind it (aedes #210; MQTT 3.1.1 has no negative PUBACK).
 * Never stored, never delivered, never retained. An empty topic level (`esp//W-1/telemetry`) must
 * never reach aedes' delivery: aedes 1.2 matches the empty level against a `+` filter, then fails
 * to find the queued packet for a persistent subscriber ("no such packet") and closes that
 * subscriber's connection.
 */
export type RefusedPublishReason = PublishRefusal;

/** Reports refusals (count them; log them throttled and without payloads). */
export interface RefusalReport {
  publish(reason: RefusedPublishReason, topic: string, clientId: string): void;
  subscribe(reason: SubscribeRefusal, filter: string, clientId: string): void;
  connect(reason: ConnectRefusal, clientId: string): void;
  /** A hook threw or rejected: the client was refused, the broker keeps running. */
  hookError(hook: string, err: unknown, clientId: string): void;
}

export interface EmbeddedBrokerOptions {
  /** Undefined: anonymous clients, allowed only on a loopback address (config checks it). */
  readonly auth?: Authenticator;
  /** MQTT_TOPIC: where the well id and site sit in a topic. Default `esp/{site}/{well_id}/telemetry`. */
  readonly topicTemplate?: string;
  /** The service's session marker topic, its client id filled in (see authorize.ts). */
  readonly serviceMarkerTopic?: string;
  /** TLS listener: PEM key, certificate and, to require client certificates, a CA. */
  readonly tls?: { readonly key: Buffer; readonly cert: Buffer; readonly ca?: Buffer };
  readonly report?: Partial<RefusalReport>;
  /** ms since the epoch (token expiry). */
  readonly clock?: () => number;
  /**
   * Largest MQTT packet a client may send, bytes (the Remaining Length of its fixed header,
   * [MQTT-2.2.3]); a larger one closes that connection before its body is read. Default 270,336:
   * MESSAGE_MAX_BYTES' default plus 8 KiB for topic and header, as mosquitto.conf's
   * max_packet_size.
   */
  readonly maxPacketBytes?: number;
}

/** Default packet bound: the default MESSAGE_MAX_BYTES (256 KiB) plus 8 KiB. */
export const DEFAULT_MAX_PACKET_BYTES = 256 * 1024 + 8 * 1024;

/**
 * Bounds the packets one aedes client may send: mqtt-packet's parser reads the Remaining Length
 * first (`_parseLength`), then buffers the whole body before parsing it, so without a bound one
 * PUBLISH of hundreds of MB is held in memory whole (aedes has no such setting). Past the bound,
 * the parser errors and aedes closes the connection.
 * @returns false when the parser no longer has the shape this relies on (checked at start).
 */
export function boundPacketSize(client: unknown, maxBytes: number): boolean {
  const parser = (client as { _parser?: { _parseLength?: () => boolean; packet?: { length?: number }; _emitError?: (e: Error) => void } })._parser;
  const parseLength = parser?._parseLength;
  if (!parser || typeof parseLength !== 'function' || typeof parser._emitError !== 'function') return false;
  parser._parseLength = function boundedParseLength(this: typeof parser) {
    const done = parseLength.call(this);
    const length = this.packet?.length ?? 0;
    if (done && length > maxBytes) {
      this._emitError?.(new Error(`packet of ${length} bytes exceeds the ${maxBytes}-byte bound`));
      return false;
    }
    return done;
  };
  return true;
}

export interface EmbeddedBroker {
  readonly port: number;
  /** The aedes instance (events such as `ack` show what the subscriber acknowledged). */
  readonly aedes: Aedes;
  /** Closes the listener and every client connection. Idempotent. */
  close(): Promise<void>;
}

/** The compatibility entry point: the refusal of an anonymous client's PUBLISH, or undefined. */
export function refusedPublishReason(topic: string): RefusedPublishReason | undefined {
  return publishRefusal({ kind: 'anonymous' }, topic, topicRules('esp/{site}/{well_id}/telemetry'));
}

/**
 * Calls back exactly once whatever the hook does (aedes #106: a second call throws inside
 * fastseries), and turns a throw or a rejection into `onError` (which refuses that client).
 */
function guarded<A extends unknown[]>(body: (...args: A) => Promise<void>, onError: (err: unknown, ...args: A) => void): (...args: A) => void {
  return (...args: A) => {
    try {
      body(...args).catch((err: unknown) => onError(err, ...args));
    } catch (err) {
      onError(err, ...args);
    }
  };
}

function once<F extends (...a: never[]) => void>(fn: F): F {
  let called = false;
  return ((...a: Parameters<F>) => {
    if (called) return;
    called = true;
    fn(...a);
  }) as F;
}

const ANONYMOUS: Identity = { kind: 'anonymous' };

/**
 * @param port 0 for an ephemeral port (see `.port`).
 * @param host defaults to 127.0.0.1.
 */
export async function startEmbeddedBroker(port: number, host = '127.0.0.1', options: EmbeddedBrokerOptions = {}): Promise<EmbeddedBroker> {
  const rules = topicRules(options.topicTemplate ?? 'esp/{site}/{well_id}/telemetry', options.serviceMarkerTopic);
  const clock = options.clock ?? Date.now;
  const report = options.report ?? {};
  const auth = options.auth;
  const identities = new WeakMap<Client, Identity>();
  const expiryTimers = new Map<Client, NodeJS.Timeout>();
  const expiresAtMs = new WeakMap<Client, number>();
  /** PUBLISH packets acknowledged but refused: aedes.publish drops them (see below). */
  const dropped = new WeakSet<object>();
  const identityOf = (client: Client | null): Identity =>
    (client ? (identities.get(client) ?? (auth ? undefined : ANONYMOUS)) : undefined) ?? { kind: 'device', wellId: '\u0000', site: '\u0000' };

  // concurrency bounds messages in delivery at once; raised so a burst does not wait on it.
  const aedes = await Aedes.createBroker({
    concurrency: 1000,
    queueLimit: 10_000,
    authenticate: (client, username, password, callback) => {
      const done = once(callback);
      const refuse = (reason: ConnectRefusal, code: 4 | 5) => {
        report.connect?.(reason, client.id);
        done(Object.assign(new Error(`connection refused: ${reason}`), { returnCode: code }), false);
      };
      guarded(
        async () => {
          if (!auth) {
            identities.set(client, ANONYMOUS);
            return done(null, true);
          }
          const result = await auth.authenticate(client.id, username, password, clock());
          if (!result.ok) return refuse(result.reason, result.reason === 'bad_credentials' ? 4 : 5);
          identities.set(client, result.identity);
          if (result.expiresAtMs !== undefined) {
            expiresAtMs.set(client, result.expiresAtMs);
            // Enforced during the session, not only at CONNECT (emqx/emqx #8799).
            const timer = setTimeout(
              () => {
                report.connect?.('token_expired', client.id);
                client.close();
              },
              Math.min(Math.max(0, result.expiresAtMs - clock()), 2 ** 31 - 1),
            );
            timer.unref();
            expiryTimers.set(client, timer);
          }
          done(null, true);
        },
        (err) => {
          report.hookError?.('authenticate', err, client.id);
          refuse('hook_error', 5);
        },
      )();
    },
    authorizePublish: (client, packet, callback) => {
      const done = once(callback);
      guarded(
        async () => {
          if (!client) return done(null); // the broker's own $SYS messages
          const expired = (expiresAtMs.get(client) ?? Infinity) <= clock();
          const reason = expired ? 'token_expired' : publishRefusal(identityOf(client), packet.topic, rules);
          if (!reason) return done(null);
          report.publish?.(reason, packet.topic, client.id);
          // Acknowledged and dropped (aedes #210): enqueuePublish PUBACKs it, publish() drops it.
          packet.retain = false;
          dropped.add(packet);
          done(null);
          if (expired) setImmediate(() => client.close());
        },
        (err) => {
          report.hookError?.('authorizePublish', err, client?.id ?? '');
          done(new Error('PUBLISH refused: authorization failed'));
        },
      )();
    },
    authorizeSubscribe: (client, sub, callback) => {
      const done = once(callback);
      guarded(
        async () => {
          const reason = subscribeRefusal(identityOf(client), sub.topic, rules);
          if (!reason) return done(null, sub);
          report.subscribe?.(reason, sub.topic, client.id);
          // null negates this one filter (SUBACK 0x80) without closing the connection (aedes #48).
          done(null, null);
        },
        (err) => {
          report.hookError?.('authorizeSubscribe', err, client.id);
          done(null, null);
        },
      )();
    },
  });
  // aedes' typings show publish(packet, done); the client's PUBLISH path calls it as
  // publish(packet, client, done) (lib/handlers/publish.js). Refused packets end here, after
  // their PUBACK: delivered to nobody, queued for nobody, retained nowhere.
  const publish = (aedes.publish as (...a: unknown[]) => void).bind(aedes);
  (aedes as { publish: (...a: unknown[]) => void }).publish = (packet: unknown, ...rest: unknown[]) => {
    if (typeof packet === 'object' && packet !== null && dropped.has(packet)) {
      const done = rest.find((a): a is () => void => typeof a === 'function');
      return done?.();
    }
    return publish(packet, ...rest);
  };
  aedes.on('clientDisconnect', (client) => {
    clearTimeout(expiryTimers.get(client));
    expiryTimers.delete(client);
  });

  const maxPacketBytes = options.maxPacketBytes ?? DEFAULT_MAX_PACKET_BYTES;
  const handle = (conn: Parameters<typeof aedes.handle>[0]) => {
    const client = aedes.handle(conn);
    if (!boundPacketSize(client, maxPacketBytes)) conn.destroy(new Error('mqtt-packet parser has an unexpected shape: cannot bound packet sizes'));
  };
  const server: Server = options.tls
    ? createTlsServer(
        { key: options.tls.key, cert: options.tls.cert, ...(options.tls.ca ? { ca: options.tls.ca, requestCert: true, rejectUnauthorized: true } : {}) },
        handle,
      )
    : createServer(handle);
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
        for (const timer of expiryTimers.values()) clearTimeout(timer);
        expiryTimers.clear();
        auth?.close();
        server.close();
        aedes.close(() => resolve());
      })),
  };
}
