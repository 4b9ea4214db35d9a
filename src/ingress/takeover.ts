// Session-takeover detection for brokers that do not say so. An MQTT 5 broker may tell the
// client whose session another connection with the same client id took over (DISCONNECT 0x8E,
// [MQTT-3.1.4-3]); Mosquitto 2.0.11 (Debian 12's) and every MQTT 3.1.1 broker just close the
// socket. Two instances with one id then kick each other out once per reconnect period, forever
// (MQTT.js #1585, #684). The signature: the broker closes a connection it had accepted, with no
// DISCONNECT and no socket error, again and again. But a load balancer or NAT dropping idle flows
// closes connections the same way. What tells them apart is a session marker: each instance
// writes a retained message with its own random token on a topic of its client id after every
// connect, and reads the topic's retained message back when it subscribes. Only a holder of our
// client id writes there, so a token that is not ours means another instance with our id
// connected; our own token back means the closes were the network's. Pure: the caller passes the
// clock and the events.

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

/**
 * Judges silent closes with the session marker (see the file comment). A silent close counts
 * towards takeover when the connection it ended saw a foreign token, or the next connection
 * sees one before our own marker comes back; when our marker comes back first, the close was the
 * network's and does not count. Until our marker has come back once (a broker or ACL that refuses
 * the topic), every silent close counts, as TakeoverDetector alone would.
 */
export class SessionMarkerJudge {
  readonly #detector: TakeoverDetector;
  #markerWorks = false;
  #foreignOnThisConnection = false;
  #ownOnThisConnection = false;
  /** Silent closes waiting for the next connection's marker to say whose they were. */
  #pending: number[] = [];

  constructor(detector = new TakeoverDetector()) {
    this.#detector = detector;
  }

  /** A new connection was accepted (CONNACK). */
  connected(): void {
    this.#foreignOnThisConnection = false;
    this.#ownOnThisConnection = false;
  }

  /**
   * A marker arrived on this connection.
   * @param own the token is this instance's.
   * @returns true when this settles a takeover.
   */
  marker(own: boolean): boolean {
    if (own) {
      this.#markerWorks = true;
      this.#ownOnThisConnection = true;
      // Our marker came back before any other: the closes waiting were the network's.
      if (!this.#foreignOnThisConnection) this.#pending = [];
      return false;
    }
    if (this.#ownOnThisConnection) return false;
    this.#foreignOnThisConnection = true;
    const pending = this.#pending;
    this.#pending = [];
    return pending.map((at) => this.#detector.silentClose(at)).some(Boolean);
  }

  /**
   * The broker closed an accepted connection without a reason.
   * @returns true when this settles a takeover.
   */
  silentClose(nowMs: number): boolean {
    if (!this.#markerWorks || this.#foreignOnThisConnection) return this.#detector.silentClose(nowMs);
    this.#pending.push(nowMs);
    return false;
  }
}
