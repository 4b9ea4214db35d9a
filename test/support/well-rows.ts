// The shipped real well data (data/wells/) as COPY text for esp_telemetry, through the project's
// own decoder and COPY encoders, so the licensed tests load what the service would store.
import { loadWells } from '../../dev/wells.ts';
import type { Channel } from '../../src/decode/catalog.ts';
import { decodeMessage, type Reading } from '../../src/decode/decode.ts';
import { copyFloat, copyInt, copyJson, copyText, copyTimestampUs } from '../../src/sink/copy-encode.ts';

/** Decoded readings of every shipped well (29,718 rows of 3W data, 2017–2018 device times). */
export function wellReadings(catalog: readonly Channel[]): Reading[] {
  const opts = { catalog, unknownFields: 'keep', messageMaxBytes: 64 * 1024 * 1024, tsMinMs: 0, tsMaxFutureMs: 0, maxReadings: 1_000_000 } as const;
  return loadWells().flatMap((w) => {
    const decoded = decodeMessage(Buffer.from(JSON.stringify(w.readings)), { wellId: w.wellId, site: 'offshore', receivedAtMs: Date.now() }, opts);
    if (decoded.rejections.length > 0) throw new Error(`well ${w.wellId}: ${decoded.rejections[0]!.detail}`);
    return decoded.readings;
  });
}

/** `COPY esp_telemetry (…)` target and text for `readings`, as the writer's fast path sends them. */
export function copyOf(catalog: readonly Channel[], readings: readonly Reading[]): { target: string; text: string } {
  const target = `esp_telemetry (ts, well_id, site, seq, extra, ${catalog.map((c) => c.column).join(', ')})`;
  const text = readings
    .map((r) => [copyTimestampUs(r.tsUs), copyText(r.wellId), copyText(r.site), copyInt(r.seq), copyJson(r.extra), ...r.values.map(copyFloat)].join('\t'))
    .join('\n');
  return { target, text: `${text}\n` };
}
