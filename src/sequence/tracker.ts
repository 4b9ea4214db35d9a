// Sequence tracking, the pure part: a well's `seq` readings in device-time order → gaps (readings
// the device sent that never arrived), wraps and reboots. No I/O: the state comes from and goes
// back to the database (sequence/store.ts), where every instance sees the same truth.

/** Counter width of a device's `seq`: 8, 16 or 32 bits, or `auto` (inferred per well, see modulus). */
export type SeqWidth = 8 | 16 | 32 | 'auto';

/** What is known of a well's sequence: its newest reading and the highest seq it ever sent. */
export interface SeqState {
  readonly lastSeq: number;
  /** Device time of the reading with `lastSeq`, microseconds since the Unix epoch. */
  readonly lastTsUs: number;
  /** Highest seq seen from the well (the `auto` width is inferred from it). */
  readonly maxSeq: number;
}

/** Readings missing between two received ones: seqs after `afterSeq` up to before `beforeSeq`. */
export interface SeqGap {
  readonly afterSeq: number;
  readonly beforeSeq: number;
  readonly afterTsUs: number;
  readonly beforeTsUs: number;
  /** Count of seqs between the two, modulo the counter width. */
  readonly missing: number;
}

export interface SeqOutcome {
  /** Undefined only when no reading carried a seq and there was no state. */
  readonly state: SeqState | undefined;
  readonly gaps: SeqGap[];
  readonly wraps: number;
  readonly reboots: number;
}

/** A seq this low that is not the successor means the device restarted its counter (0- or 1-based). */
export const BOOT_SEQ_MAX = 1;

/**
 * The counter's modulus: 2^bits, or for `auto` the smallest of 2^8, 2^16, 2^32 above the highest
 * seq the well has sent (a counter that has never passed 255 is taken for an 8-bit one). A seq
 * beyond the configured width makes the width `auto` for that reading. Past 2^32: no wrap.
 */
export function modulus(width: SeqWidth, maxSeq: number): number {
  if (width !== 'auto' && maxSeq < 2 ** width) return 2 ** width;
  return maxSeq < 2 ** 8 ? 2 ** 8 : maxSeq < 2 ** 16 ? 2 ** 16 : maxSeq < 2 ** 32 ? 2 ** 32 : Number.MAX_SAFE_INTEGER;
}

/**
 * Advances a well's sequence state over new readings.
 *
 * Each reading newer than `state.lastTsUs` (device time) is compared with the previous one, with
 * serial-number arithmetic modulo the counter width (RFC 1982 §3): the successor is no gap (across
 * the top, a wrap); a step forward by d < modulus/2 is a gap of d − 1 (across the top: a wrap with
 * a gap); a fall back to 0 or 1 that is not the successor, or any step backward, with a later
 * device time, is a reboot (no gap). A reading not newer than the state (out of order, a
 * redelivery, a retained replay) neither opens nor closes a gap: it was counted, or passed over,
 * when the newer one arrived. The same seq again with a later time is neither.
 * @param readings seq (null: none) and device time in microseconds, any order.
 */
export function trackSequence(
  state: SeqState | undefined,
  readings: readonly { readonly seq: number | null; readonly tsUs: number }[],
  width: SeqWidth,
): SeqOutcome {
  const ordered = readings.filter((r): r is { seq: number; tsUs: number } => r.seq !== null);
  // A well's readings mostly arrive in device-time order: sorted only when they did not.
  for (let i = 1; i < ordered.length; i++) {
    if (ordered[i]!.tsUs < ordered[i - 1]!.tsUs) {
      ordered.sort((a, b) => a.tsUs - b.tsUs);
      break;
    }
  }
  const gaps: SeqGap[] = [];
  let wraps = 0;
  let reboots = 0;
  // The state in locals, one object at the end (and `state` itself when nothing advanced it).
  let known = state !== undefined;
  let lastSeq = state?.lastSeq ?? 0;
  let lastTsUs = state?.lastTsUs ?? 0;
  let maxSeq = state?.maxSeq ?? 0;
  let advanced = false;
  for (const r of ordered) {
    if (!known) {
      known = true;
      advanced = true;
      lastSeq = r.seq;
      lastTsUs = r.tsUs;
      maxSeq = r.seq;
      continue;
    }
    if (r.tsUs <= lastTsUs) continue;
    const m = modulus(width, Math.max(maxSeq, r.seq));
    const step = (((r.seq - lastSeq) % m) + m) % m;
    if (step === 0) {
      // Same seq, later time: a device re-sending its last reading; nothing missing.
    } else if (step === 1) {
      if (r.seq < lastSeq) wraps++;
    } else if (r.seq <= BOOT_SEQ_MAX || step >= m / 2) {
      reboots++;
    } else {
      if (r.seq < lastSeq) wraps++;
      gaps.push({ afterSeq: lastSeq, beforeSeq: r.seq, afterTsUs: lastTsUs, beforeTsUs: r.tsUs, missing: step - 1 });
    }
    lastSeq = r.seq;
    lastTsUs = r.tsUs;
    maxSeq = Math.max(maxSeq, r.seq);
    advanced = true;
  }
  return { state: advanced ? { lastSeq, lastTsUs, maxSeq } : state, gaps, wraps, reboots };
}
