// Unit tests for brokerAddress (ingress/broker-url.ts): MQTT_URL into MQTT.js connect options.
import { describe, expect, it } from 'vitest';
import { brokerAddress } from '../../src/ingress/broker-url.ts';

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
