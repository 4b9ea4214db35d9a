// Which batcher lane a message goes to: backfill when its oldest reading is older than
// BACKFILL_AFTER (a well sending its buffer after an outage), else live. Pure apart from the
// clock it is given.
import type { MessageWork } from '../decode/work.ts';
import type { LaneOptions } from './batcher.ts';

/**
 * @param backfillAfterS BACKFILL_AFTER in seconds, or null (off: one lane).
 * @param bufferMaxRows BUFFER_MAX_ROWS; the backfill lane may hold half of it.
 * @param clock ms since the Unix epoch.
 * @returns the batcher's lane options, or undefined when off.
 */
export function backfillLanes(
  backfillAfterS: number | null,
  bufferMaxRows: number,
  clock: () => number,
  onBackfillCommitted: (rows: number) => void,
): LaneOptions<MessageWork> | undefined {
  if (backfillAfterS === null) return undefined;
  return {
    isBackfill: ({ data }) => {
      const horizonUs = (clock() - backfillAfterS * 1000) * 1000;
      for (const r of data.readings) if (r.tsUs < horizonUs) return true;
      return false;
    },
    keyOf: ({ data }) => data.wellId,
    backfillMaxRows: Math.max(1, Math.floor(bufferMaxRows / 2)),
    onBackfillCommitted,
  };
}
