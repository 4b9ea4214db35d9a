// Admission: between ingress and batcher. A message is decoded and buffered while the batcher
// has room; when it is full (database slow or down), messages wait here as received, undecoded,
// up to `maxWaiting`; only past that does intake pause, which stalls the MQTT connection.
// With MQTT 5 the broker never has more than Receive Maximum messages unacknowledged to us
// [MQTT-3.3.4-9], so with maxWaiting = MQTT_RECEIVE_MAXIMUM the connection is never stalled and
// PINGRESPs keep being read (a stalled MQTT.js work loop times out its keepalive: MQTT.js #1935).

export class Admission<M> {
  readonly #admit: (m: M) => Promise<void> | undefined;
  readonly #maxWaiting: number;
  readonly #onWaiting: (waiting: number) => void;
  #waiting: M[] = [];
  #head = 0;
  #blocked: Promise<void> | undefined;
  #resumeIntake: (() => void)[] = [];

  /**
   * @param admit decodes and buffers one message; returns a promise while the buffer is full.
   *   A throw (the batcher gave up at shutdown) drops the message unacknowledged: the broker
   *   redelivers it.
   * @param maxWaiting messages held undecoded before intake pauses.
   * @param onWaiting told how many wait, whenever that changes (esp_ingest_messages_waiting).
   */
  constructor(admit: (m: M) => Promise<void> | undefined, maxWaiting: number, onWaiting: (waiting: number) => void = () => undefined) {
    this.#admit = admit;
    this.#maxWaiting = maxWaiting;
    this.#onWaiting = onWaiting;
  }

  /** Messages waiting undecoded for room in the buffer. */
  get waiting(): number {
    return this.#waiting.length - this.#head;
  }

  /** Takes a message; returns a promise when intake must pause until it settles. */
  offer(m: M): Promise<void> | undefined {
    if (!this.#blocked && this.waiting === 0) {
      this.#admitOne(m);
      return undefined;
    }
    this.#waiting.push(m);
    this.#onWaiting(this.waiting);
    if (this.waiting < this.#maxWaiting) return undefined;
    return new Promise<void>((resolve) => this.#resumeIntake.push(resolve));
  }

  #admitOne(m: M): void {
    let wait: Promise<void> | undefined;
    try {
      wait = this.#admit(m);
    } catch {
      return;
    }
    if (!wait) return;
    this.#blocked = wait;
    void wait.then(() => {
      this.#blocked = undefined;
      this.#drain();
    });
  }

  #drain(): void {
    const before = this.waiting;
    while (!this.#blocked && this.waiting > 0) {
      const m = this.#waiting[this.#head]!;
      this.#head++;
      this.#admitOne(m);
    }
    if (this.waiting !== before) this.#onWaiting(this.waiting);
    if (this.#head > 1024 && this.#head * 2 > this.#waiting.length) {
      this.#waiting = this.#waiting.slice(this.#head);
      this.#head = 0;
    }
    if (this.waiting < this.#maxWaiting && this.#resumeIntake.length > 0) {
      const resume = this.#resumeIntake;
      this.#resumeIntake = [];
      for (const r of resume) r();
    }
  }
}
