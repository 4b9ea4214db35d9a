// The heap the service needs for its configured buffers, against the heap V8 was given. An
// operator may cap V8's heap (NODE_OPTIONS, README "Bounded memory"): V8 otherwise sizes it by the
// machine's memory and lets garbage grow to several times the live data before collecting it. A
// cap is safe only while the buffers fit in it, which this checks at start.

/**
 * V8 heap (v8.getHeapStatistics().heap_size_limit: old space plus three semi-spaces) the service
 * needs besides its buffers: code, modules, MQTT.js's and pg's state, the messages in flight
 * (measured: a heap snapshot with 11,000 messages held until commit is 27 MB, 20 MB of it the
 * process's own), with the young generation and room to spare.
 */
export const HEAP_BASE_BYTES = 112 * 2 ** 20;

/** Heap a payload byte may take once decoded (JSON text → objects, numbers, strings), at most. */
export const DECODED_BYTES_PER_PAYLOAD_BYTE = 4;

/**
 * Why the heap V8 allows is too small for BUFFER_MAX_BYTES, with the setting that fixes it; or
 * undefined when it fits.
 * @param heapLimitBytes v8.getHeapStatistics().heap_size_limit.
 */
export function heapShortfall(heapLimitBytes: number, bufferMaxBytes: number): string | undefined {
  const need = HEAP_BASE_BYTES + DECODED_BYTES_PER_PAYLOAD_BYTE * bufferMaxBytes;
  if (heapLimitBytes >= need) return undefined;
  const mib = (b: number) => Math.ceil(b / 2 ** 20);
  // heap_size_limit is the old space plus three 16 MiB semi-spaces (--max-semi-space-size=16, README "Bounded memory").
  return `V8's heap limit (${mib(heapLimitBytes)} MiB) is below the ${mib(need)} MiB that BUFFER_MAX_BYTES (${mib(bufferMaxBytes)} MiB) may need decoded: a full buffer could end the process (JavaScript heap out of memory); set NODE_OPTIONS="--max-old-space-size=${mib(need) - 48} --max-semi-space-size=16", or lower BUFFER_MAX_BYTES`;
}
