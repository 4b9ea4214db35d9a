// Merges readings that share a (well_id, ts) key inside one batch, so the staged rows are unique.
// First arrival wins per channel; later readings only fill channels still empty. Pure.
import { packChannels, unpackChannels } from '../decode/channels.ts';
import type { Reading } from '../decode/decode.ts';

export interface Merged {
  /** One reading per key, in first-arrival order. */
  readonly rows: Reading[];
  /** Readings whose key an earlier reading of the batch already had. */
  readonly duplicates: number;
  /** Channel values that disagreed with the value kept (same key, same channel). */
  readonly conflicts: number;
}

/** @param readings in arrival order. Input objects are not mutated. */
export function mergeByKey(readings: readonly Reading[]): Merged {
  // The usual batch: each well's readings in rising device time, so no key can repeat. Checked
  // with one lookup per reading; only otherwise is every key indexed.
  if (risingPerWell(readings)) return { rows: readings.slice(), duplicates: 0, conflicts: 0 };
  return mergeIndexed(readings);
}

/** True when every well's readings have strictly rising device times (then no key repeats). */
function risingPerWell(readings: readonly Reading[]): boolean {
  const last = new Map<string, number>();
  let well: string | undefined;
  let lastTs = 0;
  for (const r of readings) {
    if (r.wellId !== well) {
      if (well !== undefined) last.set(well, lastTs);
      well = r.wellId;
      const seen = last.get(well);
      if (seen !== undefined && r.tsUs <= seen) return false;
    } else if (r.tsUs <= lastTs) return false;
    lastTs = r.tsUs;
  }
  return true;
}

function mergeIndexed(readings: readonly Reading[]): Merged {
  // Keyed per well, then by device time (a number): no key string built per reading.
  const byWell = new Map<string, Map<number, number>>();
  const rows: Reading[] = [];
  let duplicates = 0;
  let conflicts = 0;
  for (const r of readings) {
    let byTs = byWell.get(r.wellId);
    if (!byTs) {
      byTs = new Map();
      byWell.set(r.wellId, byTs);
    }
    const at = byTs.get(r.tsUs);
    if (at === undefined) {
      byTs.set(r.tsUs, rows.length);
      rows.push(r);
      continue;
    }
    duplicates++;
    const first = rows[at]!;
    const values = unpackChannels(first);
    for (const [k, ci] of r.layout.indexes.entries()) {
      const v = r.values[k]!;
      const kept = values[ci];
      if (kept === null || kept === undefined) values[ci] = v;
      else if (kept !== v) conflicts++;
    }
    const extra = r.extra === null ? first.extra : { ...r.extra, ...first.extra };
    rows[at] = { ...first, seq: first.seq ?? r.seq, ...packChannels(values), extra };
  }
  return { rows, duplicates, conflicts };
}
