// A reading's channels packed with a shared layout (src/decode/channels.ts): the same set gives the
// same layout object, packing and unpacking keep every value and every gap, and decoding leaves
// nothing of one reading's channels in the next one's, however the first one ended.
import { describe, expect, it } from 'vitest';
import { DEFAULT_CATALOG } from '../../src/decode/catalog.ts';
import { channelLayout, channelValue, packChannels, unpackChannels } from '../../src/decode/channels.ts';
import { decodeMessage } from '../../src/decode/decode.ts';

describe('channel layouts', () => {
  it('are one object per channel set, whatever built it', () => {
    const a = packChannels([1, null, 2.5, null]);
    const b = packChannels([null, null, null, null]);
    const c = packChannels([7, null, -3, null]);
    expect(a.layout).toBe(c.layout);
    expect(a.layout).toBe(channelLayout(4, [0, 2]));
    expect(a.layout).not.toBe(b.layout);
    expect(a.layout.indexes).toEqual([0, 2]);
    expect([...a.layout.positions]).toEqual([0, -1, 1, -1]);
  });

  it('key sets by their indexes, not their count, on catalogs wider than a bit mask', () => {
    const wide = 40;
    const aligned = (set: number[]) => Array.from({ length: wide }, (_, i) => (set.includes(i) ? i : null));
    const low = packChannels(aligned([1, 35]));
    const high = packChannels(aligned([2, 35]));
    expect(low.layout).not.toBe(high.layout);
    expect(low.layout).toBe(packChannels(aligned([1, 35])).layout);
    expect(unpackChannels(high)).toEqual(aligned([2, 35]));
  });

  it('pack and unpack every value and every gap, -0 and subnormals included', () => {
    const aligned = [null, -0, 5e-324, null, 1e308, -1.5];
    const packed = packChannels(aligned);
    expect(packed.values).toEqual([-0, 5e-324, 1e308, -1.5]);
    expect(unpackChannels(packed)).toEqual(aligned);
    expect(aligned.map((_, i) => channelValue(packed, i))).toEqual(aligned);
    expect(channelValue(packed, 99)).toBeNull();
  });
});

describe('decoding into packed channels', () => {
  const opts = {
    catalog: DEFAULT_CATALOG,
    messageMaxBytes: 262_144,
    maxReadings: 10_000,
    unknownFields: 'keep' as const,
    missingTs: 'reject' as const,
    tsMinMs: Date.parse('2000-01-01T00:00:00Z'),
    tsMaxFutureMs: 300_000,
  };
  const source = { wellId: 'W-1', site: null, receivedAtMs: Date.parse('2024-05-01T00:01:00Z') };
  const ts = '2024-05-01T00:00:00Z';
  const col = (name: string) => DEFAULT_CATALOG.findIndex((c) => c.column === name);

  it('leaves nothing of a refused reading in the next one, wherever the refusal came', () => {
    // The first element carries two good channels, then one out of range; the second carries one
    // other channel only. The first one's values must not leak into the second.
    const payload = JSON.stringify([
      { ts, motor_current_a: 40, vsd_frequency_hz: 50, intake_pressure_kpa: -1 },
      { ts, intake_temperature_degc: 80 },
      { ts, vsd_frequency_hz: 51, motor_current_a: 41 },
    ]);
    const d = decodeMessage(Buffer.from(payload), source, opts);
    expect(d.rejections.map((r) => r.reason)).toEqual(['out_of_range']);
    const carried = (r: (typeof d.readings)[number]) =>
      Object.fromEntries(unpackChannels(r).flatMap((v, i) => (v === null ? [] : [[DEFAULT_CATALOG[i]!.column, v]])));
    expect(d.readings.map(carried)).toEqual([{ intake_temperature_degc: 80 }, { motor_current_a: 41, vsd_frequency_hz: 51 }]);
    expect(d.readings[1]!.layout.indexes).toEqual([col('motor_current_a'), col('vsd_frequency_hz')].sort((a, b) => a - b));
    // The payload's order does not matter: the same set, the same layout.
    const again = decodeMessage(Buffer.from(JSON.stringify({ ts, motor_current_a: 1, vsd_frequency_hz: 2 })), source, opts);
    expect(again.readings[0]!.layout).toBe(d.readings[1]!.layout);
  });
});
