// Payloads shaped to break a decoder: deep nesting anywhere, many refused elements. Each must
// end as a rejection (never a throw), and what is stored for them must stay linear in size.
import { describe, expect, it } from 'vitest';
import { DEFAULT_CATALOG } from '../../src/decode/catalog.ts';
import { toWork } from '../../src/decode/to-work.ts';
import { parseTopicTemplate } from '../../src/decode/topic.ts';

const topic = parseTopicTemplate('esp/{site}/{well_id}/telemetry');
const opts = {
  catalog: DEFAULT_CATALOG,
  unknownFields: 'keep' as const,
  messageMaxBytes: 256 * 1024,
  tsMinMs: Date.parse('2000-01-01T00:00:00Z'),
  tsMaxFutureMs: 300_000,
};
const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
const work = (payload: string) =>
  toWork({ topic: 'esp/s/W-1/telemetry', payload: Buffer.from(payload), receivedAtMs: Date.parse('2024-05-01T00:01:00Z') }, topic, opts).work;

describe('pathological payloads', () => {
  it.each([
    ['nested 100,000 deep in an unknown field', `{"ts":"2024-05-01T00:00:40Z","motor_current_a":1,"x":${deep(100_000)}}`],
    ['nested 100,000 deep in ts', `{"ts":${deep(100_000)},"motor_current_a":1}`],
    ['nested 100,000 deep in seq', `{"ts":"2024-05-01T00:00:40Z","seq":${deep(100_000)},"motor_current_a":1}`],
    ['nested 100,000 deep in a channel', `{"ts":"2024-05-01T00:00:40Z","motor_current_a":${deep(100_000)}}`],
    ['nested 100,000 deep as an array element', `[${deep(100_000)}]`],
  ])('%s is rejected, not thrown', (_name, payload) => {
    const w = work(payload);
    expect(w.readings).toEqual([]);
    expect(w.rejects).toHaveLength(1);
    expect(w.rejects[0]!.detail.length).toBeLessThan(1000);
  });

  it('stores each refused element of an array as its own JSON, so rejects grow linearly', () => {
    const payload = JSON.stringify(Array.from({ length: 3000 }, () => ({})));
    const w = work(payload);
    expect(w.rejects).toHaveLength(3000);
    const stored = w.rejects.reduce((n, r) => n + r.payload.byteLength, 0);
    expect(stored).toBeLessThanOrEqual(payload.length);
    expect(w.rejects.map((r) => r.index)).toEqual(Array.from({ length: 3000 }, (_, i) => i));
    expect(Buffer.from(w.rejects[7]!.payload).toString()).toBe('{}');
  });

  it('keeps the raw bytes of a whole-message rejection', () => {
    const raw = Buffer.from([0x7b, 0xff, 0xfe]);
    const w = toWork({ topic: 'esp/s/W-1/telemetry', payload: raw, receivedAtMs: 0 }, topic, opts).work;
    expect(w.rejects[0]!.reason).toBe('invalid_utf8');
    expect(Buffer.compare(Buffer.from(w.rejects[0]!.payload), raw)).toBe(0);
  });
});
