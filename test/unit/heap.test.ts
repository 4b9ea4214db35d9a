// The start-up check of V8's heap limit against BUFFER_MAX_BYTES (src/config/heap.ts).
import { getHeapStatistics } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { heapShortfall } from '../../src/config/heap.ts';

const MiB = 2 ** 20;

describe('heapShortfall', () => {
  it('accepts the documented cap (--max-old-space-size=128 --max-semi-space-size=16: 176 MiB) with the default 16 MiB buffer', () => {
    expect(heapShortfall(176 * MiB, 16 * MiB)).toBeUndefined();
  });

  it('names the limit, the need and the NODE_OPTIONS that fits a larger buffer', () => {
    expect(heapShortfall(176 * MiB, 64 * MiB)).toBe(
      `V8's heap limit (176 MiB) is below the 368 MiB that BUFFER_MAX_BYTES (64 MiB) may need decoded: a full buffer could end the process (JavaScript heap out of memory); set NODE_OPTIONS="--max-old-space-size=320 --max-semi-space-size=16", or lower BUFFER_MAX_BYTES`,
    );
    // The advice fits: that old space plus three 16 MiB semi-spaces is the need.
    expect(heapShortfall((320 + 48) * MiB, 64 * MiB)).toBeUndefined();
  });

  it('finds no shortfall with V8 left to size its heap by the machine (this process)', () => {
    expect(heapShortfall(getHeapStatistics().heap_size_limit, 16 * MiB)).toBeUndefined();
  });
});
