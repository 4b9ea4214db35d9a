// Session-takeover detection for brokers that do not say so. An MQTT 5 broker may tell the
// client whose session another connection with the same client id took over (DISCONNECT 0x8E,
// [MQTT-3.1.4-3]); Mosquitto 2.0.11 (Debian 12's) and every MQTT 3.1.1 broker just close the
// socket. Two instances with one id then kick each other out once per reconnect period, forever
// (MQTT.js #1585, #684). The signature: the broker closes a connection it had accepted, with no
// DISCONNECT and no socket error, again and again. Pure: the caller passes the clock.

/** Default policy: this many silent closes within the window means another client has our id. */
export const TAKEOVER_SILENT_CLOSES = 3;
export const TAKEOVER_WINDOW_MS = 60_000;

/** Counts silent closes in a sliding window. */
export class TakeoverDetector {
  readonly #closes: number[] = [];
  readonly #threshold: number;
  readonly #windowMs: number;

  constructor(threshold = TAKEOVER_SILENT_CLOSES, windowMs = TAKEOVER_WINDOW_MS) {
    this.#threshold = threshold;
    this.#windowMs = windowMs;
  }

  /**
   * Records that the broker closed an accepted connection without a reason.
   * @param nowMs clock reading, ms.
   * @returns true when `threshold` such closes fell within the last `windowMs` (this one included).
   */
  silentClose(nowMs: number): boolean {
    this.#closes.push(nowMs);
    while (this.#closes.length > 0 && nowMs - this.#closes[0]! >= this.#windowMs) this.#closes.shift();
    return this.#closes.length >= this.#threshold;
  }
}
