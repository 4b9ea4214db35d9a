// Unit tests for brokerAddress (ingress/broker-url.ts): MQTT_URL into MQTT.js connect options.
import { describe, expect, it } from 'vitest';
import { brokerAddress, embeddedBrokerUrl } from '../../src/ingress/broker-url.ts';

describe('brokerAddress', () => {
  it.each([
    ['mqtt://127.0.0.1:1883', { protocol: 'mqtt', hostname: '127.0.0.1', port: 1883 }],
    ['mqtts://broker.example', { protocol: 'mqtts', hostname: 'broker.example' }],
    ['tcp://[::1]:18830', { protocol: 'tcp', hostname: '::1', port: 18830 }],
    ['ws://broker:8080/mqtt?x=1', { protocol: 'ws', hostname: 'broker', port: 8080, path: '/mqtt?x=1' }],
    ['mqtt://broker:1883/ignored', { protocol: 'mqtt', hostname: 'broker', port: 1883 }],
    ['mqtt://u:Mq%231@127.0.0.1:18830', { protocol: 'mqtt', hostname: '127.0.0.1', port: 18830, username: 'u', password: 'Mq#1' }],
    ['mqtt://us%40er:a:b@h', { protocol: 'mqtt', hostname: 'h', username: 'us@er', password: 'a:b' }],
  ])('%s', (url, expected) => {
    expect(brokerAddress(url)).toEqual(expected);
  });
});

describe('embeddedBrokerUrl', () => {
  it.each([
    ['127.0.0.1', 'mqtt://127.0.0.1:1883'],
    ['0.0.0.0', 'mqtt://127.0.0.1:1883'],
    ['::', 'mqtt://[::1]:1883'],
    ['::1', 'mqtt://[::1]:1883'],
    ['fe80::2', 'mqtt://[fe80::2]:1883'],
    ['broker.local', 'mqtt://broker.local:1883'],
  ])('%s → %s', (host, url) => {
    expect(embeddedBrokerUrl(host, 1883)).toBe(url);
    expect(() => brokerAddress(url)).not.toThrow();
  });
});
