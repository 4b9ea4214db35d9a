// Ingress: one MQTT.js client with a persistent session (stable client id, clean start off,
// session expiry) subscribed with QoS 1 to the filter from MQTT_TOPIC. Each PUBLISH goes to
// `onMessage` with an `ack` that releases its PUBACK after commit (see puback-gate.ts for the
// ack design and its trade-off). Reaches Mosquitto and the embedded aedes broker the same way.
import type { IClientOptions, MqttClient } from 'mqtt';
import type { Config } from '../config/config.ts';
import { EspError } from '../errors.ts';
import type { Logger } from '../log/logger.ts';
import { ErrorLogThrottle, warnThrottled } from '../log/throttle.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { brokerAddress } from './broker-url.ts';
import { connackRefusal, type FreshConnectOptions, readConnectFiles } from './connect-options.ts';
import { type Acknowledgement, PubackGate, type Releasable } from './puback-gate.ts';
import { SessionMarker } from './session-marker.ts';
import { END_SESSION, unsubscribeShared } from './shared-stop.ts';
import { TAKEOVER_SILENT_CLOSES, TAKEOVER_WINDOW_MS } from './takeover.ts';

/** Mosquitto's `$SYS` counters (mosquitto.conf(5), sys_interval) → the gauge each sets. */
const BROKER_STATS: Record<string, 'brokerDroppedMessages' | 'brokerStoredMessages'> = {
  '$SYS/broker/publish/messages/dropped': 'brokerDroppedMessages',
  '$SYS/broker/store/messages/count': 'brokerStoredMessages',
};

/**
 * Counts a PUBACK released after commit: sent (esp_ingest_messages_acknowledged_total) or dropped
 * with its connection (esp_ingest_pubacks_dropped_total); then sets
 * esp_ingest_unacknowledged_messages to `gate.held`.
 */
function countRelease(sent: boolean, metrics: Metrics, gate: { readonly held: number }): void {
  if (sent) metrics.messagesAcked.inc();
  else metrics.acksDropped.inc();
  metrics.unackedMessages.set(gate.held);
}

/** The acknowledgement of a message whose PUBACK `held.release()` sends; see countRelease. */
class CountedAck implements Acknowledgement {
  constructor(
    private readonly held: Releasable,
    private readonly metrics: Metrics,
    private readonly gate: { readonly held: number },
  ) {}

  acknowledge(): void {
    countRelease(this.held.release(), this.metrics, this.gate);
  }
}

/** The acknowledgement of `held` (undefined: QoS 0, nothing to send); see countRelease. */
export function countedAck(held: Releasable | undefined, metrics: Metrics, gate: { readonly held: number }): Acknowledgement {
  return held ? new CountedAck(held, metrics, gate) : NO_ACK;
}

/** The acknowledgement of a QoS 0 message: nothing to send. */
const NO_ACK: Acknowledgement = { acknowledge: () => undefined };

/**
 * What handleMessage calls back with for a message whose connection closed while it waited for
 * room: MQTT.js then makes no PUBACK (mqtt lib/handlers/publish) and goes on (its work loop drops
 * the error).
 */
const CONNECTION_CLOSED = new Error('the connection this message came on has closed: not acknowledged (the broker redelivers it)');

/** One received PUBLISH. */
export interface InboundMessage {
  readonly topic: string;
  readonly payload: Buffer;
  readonly qos: 0 | 1 | 2;
  /** Retain flag as delivered: set only on a replay of a retained message [MQTT-3.3.1-9]. */
  readonly retain: boolean;
  readonly receivedAtMs: number;
  /** Sends the PUBACK (QoS 1); once, after everything the message carries is committed. */
  readonly ack: Acknowledgement;
}

/**
 * Receives a message. Return a promise to apply backpressure: no further packet is processed
 * until it settles (used only when the in-memory buffer is at its hard cap).
 */
export type MessageSink = (msg: InboundMessage) => void | Promise<void>;

export interface IngressDeps {
  /** Given options only, never a URL string (see broker-url.ts). */
  readonly connect: (options: IClientOptions) => MqttClient;
  readonly config: Config['mqtt'];
  /** The MQTT topic filter to subscribe to (from MQTT_TOPIC; `$share/<group>/` is added here). */
  readonly filter: string;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly clock: () => number;
  /** Told once when the ingress hits an error it will not recover from (it stops reconnecting). */
  readonly onFatal: (err: EspError) => void;
  /**
   * Told when the subscription becomes active (undefined) or inactive (why, for /readyz): on
   * connect and subscribe, on close, when intake stops, on a refused connection, on a fatal error.
   */
  readonly onState?: (inactive: string | undefined) => void;
  /** Proves the subscription delivers (see canary.ts): shown the client, offered each PUBLISH first. */
  readonly canary?: { attach(client: MqttClient): void; take(topic: string, payload: Buffer): boolean };
  /** Cap of the reconnect backoff, ms (RETRY_MAX_DELAY_MS; default: no backoff beyond 1 s). */
  readonly retryMaxDelayMs?: number;
}

/** Where to connect, when it is known only at start (the embedded broker's port). */
export interface BrokerEndpoint {
  readonly url: string;
  readonly protocolVersion: 4 | 5;
}

/** MQTT.js's packet trace, off (see `log` in start). */
const noTrace = (): void => undefined;

/** First reconnect delay, ms; it doubles per failed attempt up to retryMaxDelayMs. */
const RECONNECT_FIRST_MS = 1_000;

export class MqttIngress {
  readonly #deps: IngressDeps;
  #client: MqttClient | undefined;
  #gate: PubackGate | undefined;
  #subscribed = false;
  #accepting = true;
  #connects = 0;
  #fatal: EspError | undefined;
  #closing = false;
  #reported: string | undefined | null = null;
  /** Left MQTT_SHARED_GROUP (UNSUBACK received): the session can end with the connection. */
  #leftGroup = false;
  /** The MQTT version of the connection (MQTT_PROTOCOL_VERSION, or 4 for the embedded broker). */
  #protocolVersion: 4 | 5 = 5;
  /** Why the last attempt failed (a refused CONNACK, a file, a socket error code); cleared on connect. */
  #lastFailure: string | undefined;
  /** Connection attempts failed in a row: the reconnect backoff. */
  #failures = 0;
  #files: FreshConnectOptions = {};

  constructor(deps: IngressDeps) {
    this.#deps = deps;
  }

  /** True while connected with the subscription active. */
  get ready(): boolean {
    return this.#subscribed && this.#client?.connected === true && this.#accepting;
  }

  /** Why not ready, for /readyz. */
  get notReadyReason(): string | undefined {
    if (this.#fatal) return this.#fatal.message;
    if (!this.#client?.connected) return `mqtt: not connected to the broker${this.#lastFailure ? `: ${this.#lastFailure}` : ''}`;
    if (!this.#subscribed) return 'mqtt: subscription not active';
    if (!this.#accepting) return 'mqtt: intake stopped (shutting down)';
    return undefined;
  }

  /**
   * Connects and subscribes in the background; reconnects forever. No-op when started.
   * @param endpoint the broker, when not MQTT_URL (the embedded broker's address).
   */
  start(onMessage: MessageSink, endpoint: BrokerEndpoint = this.#deps.config): void {
    if (this.#client) return;
    const { config: c, log, metrics } = this.#deps;
    this.#protocolVersion = endpoint.protocolVersion;
    // MQTT_USERNAME / MQTT_PASSWORD take precedence over credentials in MQTT_URL.
    const options: IClientOptions = {
      ...brokerAddress(endpoint.url),
      clientId: c.clientId,
      clean: false,
      protocolVersion: endpoint.protocolVersion,
      keepalive: c.keepaliveS,
      reconnectPeriod: RECONNECT_FIRST_MS,
      connectTimeout: 10_000,
      resubscribe: false,
      // A refused CONNACK would otherwise stop MQTT.js reconnecting for good (MQTT.js #1947).
      reconnectOnConnackError: true,
      // MQTT.js traces every packet through the `debug` package, whose disabled logger still
      // builds an argument array per call (a dozen calls per PUBLISH and its PUBACK): 13 % of the
      // service's allocations at full speed. Our own log says what an operator needs.
      log: noTrace,
      // MQTT.js otherwise has mqtt-packet pre-build a 2-byte Buffer for each of the 65,536 packet
      // ids (numbers.js): 6 MB of heap held for good, which V8 then multiplies when it sizes the
      // old generation. Without the cache a PUBACK allocates its id's two bytes.
      writeCache: false,
      ...(c.username !== undefined ? { username: c.username } : {}),
      ...(c.password !== undefined ? { password: c.password } : {}),
      ...(endpoint.protocolVersion === 5 ? { properties: { sessionExpiryInterval: c.sessionExpiryS, receiveMaximum: c.receiveMaximum } } : {}),
    };
    const received = [0, 1, 2].map((q) => metrics.messagesReceived.labels(String(q)));
    this.#refreshFiles(options);
    const marker = new SessionMarker(c.sessionMarkerTopic, c.clientId, endpoint.protocolVersion, log);
    const client = this.#deps.connect(options);
    this.#client = client;
    this.#deps.canary?.attach(client);
    const gate: PubackGate = new PubackGate(client, (sent) => countRelease(sent, metrics, gate));
    this.#gate = gate;
    const unacknowledged = metrics.unackedMessages;

    client.handleMessage = (packet, callback) => {
      const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
      const qos = packet.qos;
      // Every QoS 1 PUBACK goes through the gate, also those released at once below: one of a
      // message from a connection that has closed is then never sent (see PubackGate.hold).
      const held = qos === 1 && packet.messageId !== undefined ? gate.hold(packet.messageId) : undefined;
      // The canary's probe: PUBACKed at once, neither counted nor passed on.
      if (this.#deps.canary?.take(packet.topic, payload)) {
        held?.release();
        return callback();
      }
      // The broker's own statistics, not telemetry: exported, never decoded or stored.
      if (packet.topic.startsWith('$SYS/')) {
        this.#brokerStat(packet.topic, packet.payload);
        held?.release();
        callback();
        return;
      }
      if (packet.topic === marker.topic) {
        if (marker.received(payload))
          this.#takenOver(
            client,
            `another instance wrote its session marker on ${packet.topic} after the broker closed our connection without a reason ${TAKEOVER_SILENT_CLOSES} times within ${TAKEOVER_WINDOW_MS / 1000} s`,
          );
        held?.release();
        callback();
        return;
      }
      received[qos]?.inc();
      if (packet.retain) metrics.retainedReceived.inc();
      if (held) unacknowledged.set(gate.held);
      if (!this.#accepting) {
        // Intake stopped: never PUBACK; the broker redelivers it to the next session.
        callback();
        return;
      }
      const msg: InboundMessage = {
        topic: packet.topic,
        payload,
        qos,
        retain: packet.retain === true,
        receivedAtMs: this.#deps.clock(),
        // The held PUBACK is the acknowledgement itself: one object per message until commit.
        ack: held ?? NO_ACK,
      };
      const wait = onMessage(msg);
      if (wait)
        wait.then(
          // The buffer had room again; if the connection closed meanwhile, MQTT.js must not make
          // this message's PUBACK at all (it would queue it for the next connection).
          () => (held === undefined || gate.onCurrentConnection(held) ? callback() : callback(CONNECTION_CLOSED)),
          (err: Error) => callback(err),
        );
      else callback();
    };

    // Per connection: did the broker accept it, and did its end come with a reason (a DISCONNECT
    // packet, a socket error, our own keepalive timeout)? A silent end counts towards takeover.
    let accepted = false;
    let explained = false;
    let refused = false;
    // Before MQTT.js's own 'close' listener schedules the reconnect, so a takeover stops it and
    // the backoff applies to it.
    client.prependListener('close', () => {
      if (!accepted && !refused) this.#backoff(client);
      refused = false;
      const silent = accepted && !explained && !this.#closing && !this.#fatal;
      accepted = false;
      explained = false;
      if (silent && marker.silentClose(this.#deps.clock())) {
        this.#takenOver(
          client,
          `the broker closed our connection ${TAKEOVER_SILENT_CLOSES} times within ${TAKEOVER_WINDOW_MS / 1000} s without giving a reason${marker.topic ? `, and another instance's session marker was on ${marker.topic}` : ''}`,
        );
      }
    });
    // While the broker is unreachable MQTT.js retries (and fails) every reconnectPeriod: the first
    // error with its stack, then a line a minute, then the recovery.
    const outage = new ErrorLogThrottle(undefined, this.#deps.clock);
    // The first refusal of an outage gets its line even when a socket error opened the outage (a
    // broker reloading its password file may reset the connection first): the reason is the news.
    let refusalLogged = false;
    client.on('connect', (connack) => {
      accepted = true;
      refusalLogged = false;
      this.#connects++;
      this.#failures = 0;
      this.#lastFailure = undefined;
      if (!this.#fatal) client.options.reconnectPeriod = RECONNECT_FIRST_MS;
      const recovery = outage.ok();
      if (recovery)
        log.info({ errors: recovery.errors, outageS: Math.round(recovery.outageMs / 1000) }, `mqtt broker reachable again after ${recovery.errors} errors`);
      const first = this.#connects === 1;
      log.info({ event: 'mqtt_connected', sessionPresent: connack.sessionPresent, clientId: c.clientId }, 'mqtt connected');
      if (!connack.sessionPresent && !first) {
        metrics.sessionResets.inc();
        log.warn('broker did not keep our session (sessionPresent=0): subscribing again; messages published while no session existed were not queued for us');
      }
      if (first || !connack.sessionPresent) this.#subscribe(client);
      else this.#setSubscribed(true);
      marker.connected(client);
    });
    client.on('reconnect', () => {
      metrics.mqttReconnects.inc();
      this.#refreshFiles(client.options);
    });
    client.on('close', () => {
      unacknowledged.set(gate.held);
      this.#setSubscribed(false);
    });
    client.on('error', (err) => {
      explained = true;
      const code = (err as { code?: unknown }).code;
      if (!accepted && typeof code === 'number' && code > 0) {
        // A refused CONNACK: MQTT.js schedules the retry right after this event, with the
        // period set here. Never counted towards the takeover heuristic (not an accepted connection).
        refused = true;
        const refusal = connackRefusal(code, endpoint.protocolVersion);
        metrics.mqttConnectRefusals.inc({ reason: refusal.label });
        this.#lastFailure = `broker refused the connection: ${refusal.text}`;
        this.#report();
        this.#backoff(client);
        const err = { message: this.#lastFailure, code: refusal.label };
        const first = `mqtt broker refused our connection: ${refusal.text}; retrying with backoff`;
        if (!refusalLogged) {
          refusalLogged = true;
          outage.error();
          log.warn({ event: 'mqtt_refused', reason: refusal.label, err }, first);
        } else {
          warnThrottled(
            log,
            outage,
            err,
            { event: 'mqtt_refused', reason: refusal.label },
            first,
            (n) => `mqtt broker still refuses our connection: ${refusal.text} (${n} refusals since the last line)`,
          );
        }
        return;
      }
      // Socket and TLS errors by code only: their messages carry internal addresses.
      // System errors are E-codes (ECONNREFUSED); OpenSSL's verification codes are not.
      if (!accepted && typeof code === 'string') {
        this.#lastFailure = /^E[A-Z]+$/.test(code) ? code : `tls: ${code}`;
        this.#report();
      }
      warnThrottled(log, outage, err, {}, 'mqtt client error', (n) => `mqtt client error (still failing: ${n} errors since the last line)`);
    });
    client.on('disconnect', (packet) => {
      explained = true;
      // MQTT 5 reason 0x8E: another client connected with our client id [MQTT-3.1.4-3].
      if (packet.reasonCode === 0x8e) this.#takenOver(client, 'the broker sent DISCONNECT 0x8E (session taken over)');
      else log.warn({ reasonCode: packet.reasonCode }, 'broker sent DISCONNECT');
    });
  }

  /** Next attempt after a capped exponential backoff (1 s doubling to RETRY_MAX_DELAY_MS); none once fatal. */
  #backoff(client: MqttClient): void {
    if (this.#fatal || this.#closing) return;
    this.#failures++;
    const cap = Math.max(RECONNECT_FIRST_MS, this.#deps.retryMaxDelayMs ?? RECONNECT_FIRST_MS);
    client.options.reconnectPeriod = Math.min(cap, RECONNECT_FIRST_MS * 2 ** Math.min(this.#failures - 1, 20));
  }

  /** Reads the password and TLS files into `options` (before every CONNECT). */
  #refreshFiles(options: IClientOptions): void {
    const read = readConnectFiles(this.#deps.config, this.#files);
    this.#files = read.options;
    Object.assign(options, read.options);
    if (read.certificateExpiresAtMs !== undefined) this.#deps.metrics.mqttClientCertExpiry.set(read.certificateExpiresAtMs / 1000);
    if (read.problems.length > 0) {
      this.#lastFailure = read.problems.join('; ');
      this.#report();
      this.#deps.log.warn(
        { event: 'mqtt_files_unreadable', problems: read.problems },
        'could not read MQTT credential or TLS files; using what was read before',
      );
    }
  }

  /**
   * Another connection uses our client id. Reconnecting would kick it out and start a storm, so
   * this instance stops reconnecting and reports a fatal error; the other one keeps the session.
   */
  #takenOver(client: MqttClient, how: string): void {
    const c = this.#deps.config;
    this.#fatal = new EspError(
      'ESP_MQTT_CLIENT_ID_TAKEN',
      `${how}: another client connected with MQTT_CLIENT_ID "${c.clientId}" and took over the session; give each instance its own id (or use MQTT_SHARED_GROUP). Not reconnecting.`,
    );
    this.#deps.log.error({ err: this.#fatal }, 'session taken over');
    client.options.reconnectPeriod = 0;
    this.#report();
    this.#deps.onFatal(this.#fatal);
  }

  /** What it subscribes to: `$share/<MQTT_SHARED_GROUP>/<filter>` in a group, else the filter. */
  get subscriptionFilter(): string {
    const { config: c, filter } = this.#deps;
    return c.sharedGroup ? `$share/${c.sharedGroup}/${filter}` : filter;
  }

  #subscribe(client: MqttClient): void {
    const { config: c, log } = this.#deps;
    const filter = this.subscriptionFilter;
    // Retain handling 1: retained messages only for a new subscription [MQTT-3.3.1-10].
    const opts = this.#protocolVersion === 5 ? { qos: 1 as const, rh: 1 } : { qos: 1 as const };
    client.subscribe(filter, opts, (err, granted) => {
      const refused = granted?.find((g) => g.qos !== 0 && g.qos !== 1 && g.qos !== 2);
      if (err || refused) {
        this.#fatal = new EspError(
          'ESP_MQTT_SUBSCRIBE_REFUSED',
          `broker refused subscription to "${filter}": ${err?.message ?? `reason ${refused?.qos}`}; check the broker's ACL`,
          { cause: err },
        );
        log.error({ err: this.#fatal }, 'subscribe failed');
        this.#report();
        this.#deps.onFatal(this.#fatal);
        return;
      }
      if (granted?.[0] && granted[0].qos < 1) log.warn({ filter, qos: granted[0].qos }, 'broker granted QoS 0: messages can be lost; allow QoS 1');
      log.info({ event: 'subscribed', filter, qos: granted?.[0]?.qos }, 'subscribed');
      if (c.sharedGroup) this.#deps.metrics.sharedGroupMember.set({ group: c.sharedGroup }, 1);
      this.#subscribeBrokerStats(client);
      this.#setSubscribed(true);
    });
  }

  /**
   * Subscribes to the broker's drop and store counters (Mosquitto `$SYS/broker/...`, published
   * every sys_interval, retained). A broker that refuses (ACL) or lacks them costs a log line:
   * the gauges stay absent. QoS 0: a missed value is replaced by the next one.
   */
  #subscribeBrokerStats(client: MqttClient): void {
    const { config: c, log } = this.#deps;
    if (c.brokerStats !== 'mosquitto') return;
    client.subscribe(Object.keys(BROKER_STATS), { qos: 0 }, (err, granted) => {
      const refused = err !== null && err !== undefined ? [err.message] : (granted ?? []).filter((g) => g.qos !== 0).map((g) => `${g.topic}: reason ${g.qos}`);
      if (refused.length > 0)
        log.warn(
          { event: 'broker_stats_refused', refused },
          'broker refused the subscription to its $SYS drop counters (ACL?): broker-side drops are not exported; sequence gaps still show them',
        );
    });
  }

  #brokerStat(topic: string, payload: Buffer | string): void {
    const gauge = BROKER_STATS[topic];
    const value = Number(payload.toString().trim());
    if (gauge && Number.isFinite(value)) this.#deps.metrics[gauge].set(value);
  }

  #setSubscribed(on: boolean): void {
    this.#subscribed = on;
    this.#deps.metrics.mqttUp.set(on ? 1 : 0);
    this.#report();
  }

  /** Tells `onState` when the reason to be inactive (or none) changed. */
  #report(): void {
    const inactive = this.notReadyReason;
    if (inactive === this.#reported) return;
    this.#reported = inactive;
    this.#deps.onState?.(inactive);
  }

  /** Stops passing messages on; later ones are never PUBACKed (the broker keeps them). */
  stopIntake(): void {
    this.#accepting = false;
    this.#report();
  }

  /**
   * Graceful stop in MQTT_SHARED_GROUP (see shared-stop.ts): UNSUBSCRIBEs the shared filter, so
   * the broker deals this instance no new share; intake stays on for what it had already dealt.
   * @param signal shutdown's deadline: stops waiting for the UNSUBACK.
   * @returns true once the broker acknowledged; false outside a group, when not connected, or
   *   when `signal` aborted first.
   */
  async leaveSharedGroup(signal: AbortSignal): Promise<boolean> {
    const { config: c, log, metrics } = this.#deps;
    const client = this.#client;
    if (!c.sharedGroup || c.sharedStop === 'stay' || !client || this.#fatal) return false;
    this.#leftGroup = await unsubscribeShared(client, this.subscriptionFilter, signal);
    if (this.#leftGroup) {
      metrics.sharedGroupMember.set({ group: c.sharedGroup }, 0);
      log.info(
        { event: 'shared_group_left', group: c.sharedGroup },
        'left the shared subscription group: taking what the broker had already dealt us, then ending the session',
      );
    }
    return this.#leftGroup;
  }

  /** PUBACKs held now (received, not yet committed). */
  heldAcks(): number {
    return this.#gate?.held ?? 0;
  }

  /**
   * Disconnects after flushing what is queued on the socket (PUBACKs released before this call
   * are sent). Idempotent. The persistent session stays on the broker, unless this instance left
   * its shared group and holds no PUBACK: then (MQTT 5) the DISCONNECT ends the session.
   */
  async close(): Promise<void> {
    const client = this.#client;
    if (!client) return;
    this.#accepting = false;
    this.#closing = true;
    const endSession = this.#leftGroup && this.heldAcks() === 0 && client.options.protocolVersion === 5;
    await new Promise<void>((resolve) => client.end(false, endSession ? END_SESSION : {}, () => resolve()));
    this.#setSubscribed(false);
  }
}
