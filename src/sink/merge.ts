// Merges readings that share a (well_id, ts) key inside one batch, so the staged rows are unique.
// First arrival wins per channel; later readings only fill channels still empty. Pure.
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
  const byKey = new Map<string, Reading>();
  let duplicates = 0;
  let conflicts = 0;
  for (const r of readings) {
    const key = `${r.tsUs}\u0000${r.wellId}`;
    const first = byKey.get(key);
    if (!first) {
      byKey.set(key, r);
      continue;
    }
    duplicates++;
    const values = first.values.slice();
    r.values.forEach((v, i) => {
      if (v === null) return;
      const kept = values[i];
      if (kept === null || kept === undefined) values[i] = v;
      else if (kept !== v) conflicts++;
    });
    const extra = r.extra === null ? first.extra : { ...r.extra, ...first.extra };
    byKey.set(key, { ...first, seq: first.seq ?? r.seq, values, extra });
  }
  return { rows: [...byKey.values()], duplicates, conflicts };
}
