// Subscription canary: proves, on the ingress's own session, that the broker delivers what it
// granted. Some brokers grant a subscription and then deliver nothing: aedes 1.2 and NATS 2.9's
// MQTT listener grant `$share/<group>/…` with QoS 1 and never deliver to it (moscajs/aedes #228;
// nats-io/nats-server #2386: "will not be a shared subscription"). So after every connect the
// canary subscribes, the same way as the ingress (`$share/<group>/` in a group), to a probe topic
// of its own, publishes a probe to it and expects it back within PROBE_TIMEOUT_MS; then again
// every PROBE_INTERVAL_MS. Until a probe came back, and whenever one does not, /readyz says
// `mqtt_subscription_deaf`. An MQTT 5 CONNACK saying shared subscriptions are unavailable
// (Shared Subscription Available = 0 [MQTT-3.2.2.3.15]) is fatal at once in a group.
import type { MqttClient } from 'mqtt';
import { CANARY_TOPIC_PREFIX } from '../broker/authorize.ts';
import type { Config } from '../config/config.ts';
import { EspError } from '../errors.ts';
import type { Logger } from '../log/logger.ts';

/** How long a probe may take to come back before the subscription counts as deaf, ms. */
export const PROBE_TIMEOUT_MS = 5_000;
/** How often a probe is sent once one came back, ms. */
export const PROBE_INTERVAL_MS = 30_000;

/** The canary's probe topic for a client id (outside any MQTT_TOPIC: it has no `{well_id}` level). */
export function probeTopic(clientId: string): string {
  return `${CANARY_TOPIC_PREFIX}${clientId}`;
}

export interface CanaryDeps {
  readonly config: Config['mqtt'];
  readonly log: Logger;
  /** Told `undefined` when a probe came back, else why the subscription counts as deaf. */
  readonly onState: (deaf: string | undefined) => void;
  /** Told once when the broker says it has no shared subscriptions while in a group. */
  readonly onFatal: (err: EspError) => void;
  readonly timeoutMs?: number;
  readonly intervalMs?: number;
}

export class SubscriptionCanary {
  readonly #deps: CanaryDeps;
  readonly #topic: string;
  readonly #filter: string;
  #client: MqttClient | undefined;
  #timer: NodeJS.Timeout | undefined;
  #waiting: string | undefined;
  #sequence = 0;
  #stopped = false;
  #reported: string | undefined | null = null;

  constructor(deps: CanaryDeps) {
    this.#deps = deps;
    this.#topic = probeTopic(deps.config.clientId);
    this.#filter = deps.config.sharedGroup ? `$share/${deps.config.sharedGroup}/${this.#topic}` : this.#topic;
    this.#report('mqtt: no probe has come back through the subscription yet');
  }

  /** Watches `client` (the ingress's own): probes after each connect. */
  attach(client: MqttClient): void {
    this.#client = client;
    client.on('connect', (connack) => {
      const { sharedGroup } = this.#deps.config;
      if (sharedGroup && connack.properties?.sharedSubscriptionAvailable === false) {
        this.stop();
        this.#deps.onFatal(
          new EspError(
            'ESP_MQTT_SHARED_UNAVAILABLE',
            `MQTT_SHARED_GROUP="${sharedGroup}" but the broker's CONNACK says shared subscriptions are unavailable: unset MQTT_SHARED_GROUP (one instance) or use a broker that has them (Mosquitto, EMQX, HiveMQ)`,
          ),
        );
        return;
      }
      client.subscribe(this.#filter, { qos: 1 }, (err) => {
        if (err) this.#report(`mqtt: the canary's subscription to ${this.#filter} was refused (${err.message})`);
        else this.#probe();
      });
    });
    client.on('close', () => this.#clearTimer());
  }

  /**
   * The ingress calls this for each PUBLISH before anything else.
   * @returns true when it was a probe (taken here: neither counted nor passed on).
   */
  take(topic: string, payload: Buffer): boolean {
    if (topic !== this.#topic) return false;
    if (payload.toString() === this.#waiting) {
      this.#waiting = undefined;
      this.#report(undefined);
      this.#schedule(this.#deps.intervalMs ?? PROBE_INTERVAL_MS);
    }
    return true;
  }

  /** Stops probing. Idempotent. */
  stop(): void {
    this.#stopped = true;
    this.#clearTimer();
  }

  #probe(): void {
    const client = this.#client;
    if (this.#stopped || !client?.connected) return;
    const nonce = `${Date.now()}-${++this.#sequence}`;
    this.#waiting = nonce;
    const timeoutMs = this.#deps.timeoutMs ?? PROBE_TIMEOUT_MS;
    client.publish(this.#topic, nonce, { qos: 1 }, () => undefined);
    this.#clearTimer();
    this.#timer = setTimeout(() => {
      if (this.#waiting !== nonce) return;
      this.#report(
        `mqtt: the broker granted the subscription but did not deliver our probe on ${this.#topic} within ${timeoutMs / 1000} s (a broker without shared subscriptions, such as aedes or NATS, grants $share/… and delivers nothing)`,
      );
      this.#probe();
    }, timeoutMs);
  }

  #schedule(ms: number): void {
    this.#clearTimer();
    this.#timer = setTimeout(() => this.#probe(), ms);
  }

  #clearTimer(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #report(deaf: string | undefined): void {
    if (deaf === this.#reported || this.#stopped) return;
    if (deaf && this.#reported === undefined)
      this.#deps.log.warn({ event: 'mqtt_subscription_deaf', detail: deaf }, 'subscription canary: a probe did not come back');
    this.#reported = deaf;
    this.#deps.onState(deaf);
  }
}
