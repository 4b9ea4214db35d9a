// Session marker: after every connect, this instance reads back the retained message on a topic
// of its client id (MQTT_SESSION_MARKER_TOPIC), then writes its own random token there, retained.
// A token not ours means another instance with our client id connected in between: evidence of a
// session takeover. Our own token back means the connection's earlier end was the network's (a
// load balancer, a NAT). The judging is pure (takeover.ts SessionMarkerJudge); this file does the
// MQTT side.
import { randomUUID } from 'node:crypto';
import type { MqttClient } from 'mqtt';
import type { Logger } from '../log/logger.ts';
import { SessionMarkerJudge } from './takeover.ts';

export class SessionMarker {
  /** The topic, or undefined when MQTT_SESSION_MARKER_TOPIC is `off`. */
  readonly topic: string | undefined;
  readonly #token = randomUUID();
  readonly #judge = new SessionMarkerJudge();
  readonly #log: Logger;
  readonly #protocolVersion: 4 | 5;
  #warned = false;

  /** @param template MQTT_SESSION_MARKER_TOPIC with `{client_id}`, or `off`. */
  constructor(template: string, clientId: string, protocolVersion: 4 | 5, log: Logger) {
    this.topic = template === 'off' ? undefined : template.replaceAll('{client_id}', clientId);
    this.#protocolVersion = protocolVersion;
    this.#log = log;
  }

  /**
   * On each accepted connection: subscribe to the marker topic with retain handling 0, so the
   * broker sends its retained message on every SUBSCRIBE, even one repeating an existing
   * subscription ([MQTT-3.3.1-9], [MQTT-3.8.4-3]); then publish ours (after the SUBACK, so ours
   * comes back after the one already there). A refusal (ACL) costs a warning once; the judge then
   * counts every silent close, as without a marker.
   */
  connected(client: MqttClient): void {
    this.#judge.connected();
    const topic = this.topic;
    if (!topic) return;
    const opts = this.#protocolVersion === 5 ? { qos: 1 as const, rh: 0 } : { qos: 1 as const };
    client.subscribe(topic, opts, (err, granted) => {
      if (err || granted?.some((g) => g.qos !== 0 && g.qos !== 1)) return this.#refused(`subscribe: ${err?.message ?? `reason ${granted?.[0]?.qos}`}`);
      const body = JSON.stringify({ token: this.#token, connectedAt: new Date().toISOString() });
      client.publish(topic, body, { qos: 1, retain: true }, (perr) => {
        if (perr) this.#refused(`publish: ${perr.message}`);
      });
    });
  }

  /**
   * A message on the marker topic.
   * @returns true when it settles a session takeover.
   */
  received(payload: Buffer): boolean {
    let token: unknown;
    try {
      token = (JSON.parse(payload.toString()) as { token?: unknown }).token;
    } catch {
      return false;
    }
    if (typeof token !== 'string') return false;
    return this.#judge.marker(token === this.#token);
  }

  /**
   * The broker closed an accepted connection without a reason.
   * @returns true when this settles a session takeover.
   */
  silentClose(nowMs: number): boolean {
    return this.#judge.silentClose(nowMs);
  }

  #refused(what: string): void {
    if (this.#warned) return;
    this.#warned = true;
    this.#log.warn(
      { event: 'session_marker_refused', topic: this.topic, detail: what },
      'broker refused the session marker topic (ACL?): repeated silent closes will be taken for a session takeover, as a flaky network cannot be told apart; allow this client readwrite on the topic',
    );
  }
}
