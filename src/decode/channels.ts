// A reading's channel values, packed: only the channels it carries, in catalog order, with a
// layout that says which ones. Devices send the same set of channels message after message, so a
// layout is made once per set and shared by every reading that has it. A reading of 5 of the
// catalog's 22 channels then holds 5 unboxed doubles, not 22 slots and a boxed number per value
// (held until commit, for every buffered reading). Pure.

/** Which catalog channels a reading carries. Shared: never mutate one. */
export interface ChannelLayout {
  /** Catalog indices of the channels carried, ascending. */
  readonly indexes: readonly number[];
  /** By catalog index: that channel's position in the reading's `values`, or -1 when not carried. */
  readonly positions: Int16Array;
}

/** A reading's channels: the layout, and the values of its `indexes` in that order (finite numbers). */
export interface PackedChannels {
  readonly layout: ChannelLayout;
  readonly values: number[];
}

/** Layouts remembered per catalog length; past it the cache starts afresh (a client sending every subset gains nothing). */
const LAYOUT_CACHE_MAX = 4_096;
/** Keyed by a bit mask of the indexes when the catalog has at most this many channels, else by their text. */
const MASK_BITS = 30;
const layouts = new Map<number, Map<number | string, ChannelLayout>>();

/**
 * The layout of `indexes` (catalog indices, ascending, each below `channelCount`), the same
 * object for the same set while it stays cached.
 */
export function channelLayout(channelCount: number, indexes: readonly number[]): ChannelLayout {
  let cache = layouts.get(channelCount);
  if (!cache) {
    cache = new Map();
    layouts.set(channelCount, cache);
  }
  const key = layoutKey(channelCount, indexes);
  const known = cache.get(key);
  if (known) return known;
  const positions = new Int16Array(channelCount).fill(-1);
  for (const [k, ci] of indexes.entries()) positions[ci] = k;
  const layout: ChannelLayout = { indexes: [...indexes], positions };
  if (cache.size >= LAYOUT_CACHE_MAX) cache.clear();
  cache.set(key, layout);
  return layout;
}

function layoutKey(channelCount: number, indexes: readonly number[]): number | string {
  if (channelCount > MASK_BITS) return indexes.join(',');
  let mask = 0;
  for (const ci of indexes) mask |= 1 << ci;
  return mask;
}

/** The value of catalog channel `ci` in `r`, or null when `r` does not carry it. */
export function channelValue(r: PackedChannels, ci: number): number | null {
  const p = r.layout.positions[ci];
  return p === undefined || p < 0 ? null : r.values[p]!;
}

/** Packs catalog-aligned values (null or undefined: not carried). */
export function packChannels(aligned: readonly (number | null | undefined)[]): PackedChannels {
  const indexes: number[] = [];
  for (const [ci, v] of aligned.entries()) if (v !== null && v !== undefined) indexes.push(ci);
  const values = new Array<number>(indexes.length);
  for (const [k, ci] of indexes.entries()) values[k] = aligned[ci]!;
  return { layout: channelLayout(aligned.length, indexes), values };
}

/** The values of `r` aligned with the catalog: one per channel, null where `r` carries none. */
export function unpackChannels(r: PackedChannels): (number | null)[] {
  const aligned = new Array<number | null>(r.layout.positions.length).fill(null);
  for (const [k, ci] of r.layout.indexes.entries()) aligned[ci] = r.values[k]!;
  return aligned;
}
