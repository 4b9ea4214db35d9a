// The shipped real well data (data/wells/) as COPY text for esp_telemetry, through the project's
// own decoder and COPY text, so the licensed tests load what the service would store.

import type { Channel } from '../../src/decode/catalog.ts';
import { decodeMessage, type Reading } from '../../src/decode/decode.ts';
import { readingLines, writerSql } from '../../src/sink/writer-sql.ts';
import { loadWells } from './wells.ts';

/** Decoded readings of every shipped well (29,718 rows of 3W data, 2017–2018 device times). */
export function wellReadings(catalog: readonly Channel[]): Reading[] {
  const opts = { catalog, unknownFields: 'keep', messageMaxBytes: 64 * 1024 * 1024, tsMinMs: 0, tsMaxFutureMs: 0, maxReadings: 1_000_000 } as const;
  return loadWells().flatMap((w) => {
    const decoded = decodeMessage(Buffer.from(JSON.stringify(w.readings)), { wellId: w.wellId, site: 'offshore', receivedAtMs: Date.now() }, opts);
    if (decoded.rejections.length > 0) throw new Error(`well ${w.wellId}: ${decoded.rejections[0]!.detail}`);
    return decoded.readings;
  });
}

/** `COPY esp_telemetry (…)` target and text for `readings`, as the writer's fast path sends them (sink/writer-sql.ts). */
export function copyOf(catalog: readonly Channel[], readings: readonly Reading[]): { target: string; text: string } {
  return { target: writerSql(catalog).telemetryCopyTarget, text: [...readingLines(readings, catalog.length)].join('') };
}
