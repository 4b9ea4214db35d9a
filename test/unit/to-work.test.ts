// Unit tests for toWork: a received message → the sink's unit of work.
import { describe, expect, it } from 'vitest';
import { DEFAULT_CATALOG } from '../../src/decode/catalog.ts';
import type { DecodeOptions } from '../../src/decode/decode.ts';
import { cachedTopics, type Received, toWork } from '../../src/decode/to-work.ts';
import { parseTopicTemplate } from '../../src/decode/topic.ts';

const TOPIC = parseTopicTemplate('esp/{site}/{well_id}/telemetry');
const OPTS: DecodeOptions = {
  catalog: DEFAULT_CATALOG,
  unknownFields: 'drop',
  messageMaxBytes: 4096,
  tsMinMs: Date.parse('2000-01-01T00:00:00Z'),
  tsMaxFutureMs: 86_400_000,
};
const RECEIVED_AT_MS = Date.parse('2024-06-01T00:00:00Z');
const msg = (topic: string, payload: string): Received => ({ topic, payload: new TextEncoder().encode(payload), receivedAtMs: RECEIVED_AT_MS });

describe('toWork', () => {
  it('takes well id and site from the topic and decodes the payload', () => {
    const m = msg('esp/north/W-1/telemetry', '{"ts":"2024-05-01T12:00:00Z","motor_current_a":3,"junk":1}');
    const { work, droppedFields } = toWork(m, TOPIC, OPTS);
    expect(droppedFields).toBe(1);
    expect(work.wellId).toBe('W-1');
    expect(work.topic).toBe(m.topic);
    // The payload is not kept past decoding: a held message carries its readings only.
    expect(Object.values(work)).not.toContain(m.payload);
    expect(work.rejects).toEqual([]);
    expect(work.readings).toHaveLength(1);
    expect(work.readings[0]).toMatchObject({ wellId: 'W-1', site: 'north' });
  });

  it('turns each decode rejection of an array element into a reject row carrying that element', () => {
    const m = msg('esp/north/W-1/telemetry', '[{"ts":"2024-05-01T12:00:00Z","motor_current_a":3},{"ts":"x","motor_current_a":1}]');
    const { work } = toWork(m, TOPIC, OPTS);
    expect(work.readings).toHaveLength(1);
    expect(work.rejects).toHaveLength(1);
    expect(work.rejects[0]).toMatchObject({
      reason: 'invalid_ts',
      index: 1,
      wellId: 'W-1',
      topic: m.topic,
      receivedAtMs: RECEIVED_AT_MS,
    });
    expect(Buffer.from(work.rejects[0]!.payload).toString()).toBe('{"ts":"x","motor_current_a":1}');
  });

  it.each([['a topic the template does not match', 'other/north/W-1/telemetry']])('rejects %s as topic_mismatch without decoding', (_what, topic) => {
    const m = msg(topic, '{"ts":"2024-05-01T12:00:00Z","motor_current_a":3}');
    const { work, droppedFields } = toWork(m, TOPIC, OPTS);
    expect(droppedFields).toBe(0);
    expect(work.readings).toEqual([]);
    expect(work.wellId).toBeNull();
    expect(work.rejects).toHaveLength(1);
    expect(work.rejects[0]).toMatchObject({ reason: 'topic_mismatch', index: null, wellId: null, topic });
  });

  it('rejects a topic holding U+0000 and stores it with U+FFFD in the reject row', () => {
    const m = msg('esp/north/W\u00001/telemetry', '{"ts":"2024-05-01T12:00:00Z","motor_current_a":3}');
    const { work } = toWork(m, TOPIC, OPTS);
    expect(work.readings).toEqual([]);
    expect(work.rejects[0]?.reason).toBe('invalid_well_id');
    expect(work.rejects[0]?.detail).toBe('topic level well_id contains U+0000 at 1; allowed: A-Za-z0-9._- (WELL_ID_CHARS)');
    expect(work.rejects[0]?.topic).toBe('esp/north/W\uFFFD1/telemetry');
    expect(work.rejects[0]?.topic).not.toContain('\u0000');
  });
});

describe('toWork: retained replays', () => {
  const retained = (payload: string): Received => ({ ...msg('esp/north/W-1/telemetry', payload), retain: true });

  it.each([['stamp' as const], ['reject' as const]])(
    'refuses a retained reading without ts as retained_without_ts under MISSING_TS=%s, never stamping it',
    (missingTs) => {
      const { work } = toWork(retained('[{"motor_current_a":3},{"ts":"2024-05-01T12:00:00Z","motor_current_a":4}]'), TOPIC, { ...OPTS, missingTs });
      expect(work.retain).toBe(true);
      expect(work.readings.map((r) => r.tsUs)).toEqual([Date.parse('2024-05-01T12:00:00Z') * 1000]);
      expect(work.rejects.map((r) => [r.reason, r.index, r.detail])).toEqual([
        ['retained_without_ts', 0, 'ts: missing, and the message is a retained replay (never stamped with the receive time)'],
      ]);
    },
  );

  it('stamps the same reading when it is live (not retained) under MISSING_TS=stamp', () => {
    const { work } = toWork(msg('esp/north/W-1/telemetry', '{"motor_current_a":3}'), TOPIC, { ...OPTS, missingTs: 'stamp' });
    expect(work.retain).toBeUndefined();
    expect(work.readings.map((r) => r.tsUs)).toEqual([RECEIVED_AT_MS * 1000]);
  });
});

describe('toWork topic cache', () => {
  it("remembers a well's topic but not an overlong one (MQTT allows 65,535 bytes: 10,000 of them would hold over 600 MB)", () => {
    const template = parseTopicTemplate('cache/{well_id}/telemetry');
    const payload = '{"ts":"2024-05-01T12:00:00Z","motor_current_a":3}';
    toWork(msg('cache/W-1/telemetry', payload), template, OPTS);
    expect(cachedTopics(template)).toBe(1);
    const long = toWork(msg(`cache/${'x'.repeat(60_000)}/telemetry`, payload), template, OPTS);
    expect(long.work.rejects[0]?.reason).toBe('invalid_well_id');
    expect(cachedTopics(template)).toBe(1);
  });
});
