// Unit tests for the embedded broker's authorization rules (pure): who may publish and subscribe where.
import { describe, expect, it } from 'vitest';
import { type Identity, publishRefusal, subscribeRefusal, topicRules } from '../../src/broker/authorize.ts';

const rules = topicRules('esp/{site}/{well_id}/telemetry');
const w1: Identity = { kind: 'device', wellId: 'W-1', site: null };
const w1AtA: Identity = { kind: 'device', wellId: 'W-1', site: 'site-a' };
const service: Identity = { kind: 'service', name: 'esp-ingest' };

describe('publishRefusal', () => {
  it.each([
    [w1, 'esp/site-a/W-1/telemetry', undefined],
    [w1, 'esp/any-site/W-1/telemetry', undefined],
    [w1, 'esp/site-a/W-2/telemetry', 'other_well'],
    [w1, 'esp/site-a/W-1/telemetry/x', 'topic_not_allowed'],
    [w1, 'other/site-a/W-1/telemetry', 'topic_not_allowed'],
    [w1, 'esp/site-a/W-1/command', 'topic_not_allowed'],
    [w1, '$SYS/fake/new/clients', 'sys_topic'],
    [w1, 'esp//W-1/telemetry', 'empty_topic_level'],
    [w1AtA, 'esp/site-a/W-1/telemetry', undefined],
    [w1AtA, 'esp/site-b/W-1/telemetry', 'other_site'],
    [w1AtA, 'esp/site-b/W-2/telemetry', 'other_well'],
    [service, 'esp/site-a/W-1/telemetry', 'topic_not_allowed'],
    [service, 'esp-ingest/canary/esp-ingest-a', undefined],
    [service, 'esp-ingest/canary/a/b', 'topic_not_allowed'],
    [w1, 'esp-ingest/canary/esp-ingest-a', 'topic_not_allowed'],
    [{ kind: 'anonymous' } as Identity, 'esp/s/W-9/telemetry', undefined],
    [{ kind: 'anonymous' } as Identity, '$SYS/x', 'sys_topic'],
  ])('%o publishing %s → %s', (identity, topic, reason) => {
    expect(publishRefusal(identity, topic, rules)).toBe(reason);
  });
});

describe('subscribeRefusal', () => {
  it.each([
    [service, 'esp/+/+/telemetry', undefined],
    [service, '$share/g/esp/+/+/telemetry', undefined],
    [service, 'esp-ingest/canary/esp-ingest-a', undefined],
    [service, '$share/g/esp-ingest/canary/esp-ingest-a', undefined],
    [service, 'esp-ingest/canary/+', 'topic_not_allowed'],
    [service, '#', 'topic_not_allowed'],
    [service, '$SYS/#', 'topic_not_allowed'],
    [w1, 'esp/+/+/telemetry', 'service_filter'],
    [w1, '#', 'wildcard_over_wells'],
    [w1, 'esp/#', 'wildcard_over_wells'],
    [w1, 'esp/+/#', 'wildcard_over_wells'],
    [w1, '$SYS/#', 'sys_topic'],
    [w1, '$share/g/esp/+/+/telemetry', 'sys_topic'],
    [w1, 'esp/site-a/W-2/telemetry', 'other_well'],
    [w1, 'esp/+/W-2/#', 'other_well'],
    [w1, 'esp/+/W-1/#', undefined],
    [w1, 'esp/site-a/W-1/telemetry', undefined],
    [w1AtA, 'esp/site-b/W-1/telemetry', 'other_site'],
    [w1AtA, 'esp/+/W-1/telemetry', 'wildcard_over_wells'],
    [w1, 'esp/site-a', 'topic_not_allowed'],
  ])('%o subscribing %s → %s', (identity, filter, reason) => {
    expect(subscribeRefusal(identity, filter, rules)).toBe(reason);
  });
});

describe('the service session marker', () => {
  const rules = topicRules('esp/{site}/{well_id}/telemetry', 'esp-ingest/session/esp-ingest');
  const service: Identity = { kind: 'service', name: 'esp-ingest' };
  const wellDevice: Identity = { kind: 'device', wellId: 'W-1', site: null };

  it('the service may publish and read its own marker, and only that', () => {
    expect(publishRefusal(service, 'esp-ingest/session/esp-ingest', rules)).toBeUndefined();
    expect(subscribeRefusal(service, 'esp-ingest/session/esp-ingest', rules)).toBeUndefined();
    expect(publishRefusal(service, 'esp-ingest/session/other', rules)).toBe('topic_not_allowed');
  });

  it('a device can neither write nor read the marker (it could fake or watch a takeover)', () => {
    expect(publishRefusal(wellDevice, 'esp-ingest/session/esp-ingest', rules)).toBe('topic_not_allowed');
    expect(subscribeRefusal(wellDevice, 'esp-ingest/session/esp-ingest', rules)).toBe('topic_not_allowed');
  });
});
