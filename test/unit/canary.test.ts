// The subscription canary's decisions, driven through an unconnected MQTT.js client's events:
// not ready until its own probe comes back; a probe of another client or an old nonce does not
// count; in a shared group, an MQTT 5 CONNACK saying shared subscriptions are unavailable is
// fatal [MQTT-3.2.2.3.15].
import { MqttClient } from 'mqtt';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.ts';
import type { EspError } from '../../src/errors.ts';
import { probeTopic, SubscriptionCanary } from '../../src/ingress/canary.ts';

function canary(env: Record<string, string> = {}) {
  const config = loadConfig({ DATABASE_URL: 'postgres://u@127.0.0.1/db', MQTT_CLIENT_ID: 'ingest-a', ...env }).mqtt;
  const states: (string | undefined)[] = [];
  const fatal: EspError[] = [];
  const c = new SubscriptionCanary({ config, log: pino({ level: 'silent' }), onState: (s) => states.push(s), onFatal: (e) => fatal.push(e) });
  const client = new MqttClient(
    () => {
      throw new Error('never connected');
    },
    { manualConnect: true, protocolVersion: 5 },
  );
  return { c, client, states, fatal };
}

describe('SubscriptionCanary', () => {
  it('starts deaf, and takes only its own probe topic', () => {
    const { c, states } = canary();
    expect(states).toEqual(['mqtt: no probe has come back through the subscription yet']);
    expect(c.take('esp/3w/W-1/telemetry', Buffer.from('{}'))).toBe(false);
    expect(c.take(probeTopic('ingest-b'), Buffer.from('x'))).toBe(false);
    // Its own topic is always taken (never stored), but an unexpected nonce proves nothing.
    expect(c.take(probeTopic('ingest-a'), Buffer.from('stale'))).toBe(true);
    expect(states).toHaveLength(1);
    c.stop();
  });

  it('in a shared group, a CONNACK without shared subscriptions is fatal with one clear message', () => {
    const { c, client, fatal } = canary({ MQTT_SHARED_GROUP: 'ingest' });
    c.attach(client);
    client.emit('connect', { cmd: 'connack', sessionPresent: false, returnCode: 0, properties: { sharedSubscriptionAvailable: false } });
    expect(fatal.map((e) => e.code)).toEqual(['ESP_MQTT_SHARED_UNAVAILABLE']);
    expect(fatal[0]!.message).toMatch(/^MQTT_SHARED_GROUP="ingest" but the broker's CONNACK says shared subscriptions are unavailable/);
  });

  it('without a group, the same CONNACK is not an error', () => {
    const { c, client, fatal } = canary();
    c.attach(client);
    client.emit('connect', { cmd: 'connack', sessionPresent: false, returnCode: 0, properties: { sharedSubscriptionAvailable: false } });
    expect(fatal).toEqual([]);
    c.stop();
  });
});
