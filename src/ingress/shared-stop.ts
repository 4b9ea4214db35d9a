// Leaving a shared subscription group on a graceful stop (a scale-down), so nothing stays parked
// in a departed member's session. Mosquitto deals a group's messages round-robin to every member
// with a session, offline ones included (mosquitto src/subs.c `subs__shared_process`; eclipse-
// mosquitto/mosquitto #2662), and keeps what it dealt until the session expires. So a member
// that leaves for good must: UNSUBSCRIBE the shared filter (no new share), keep taking what was
// already dealt to it until it stops coming, commit and PUBACK it, then DISCONNECT with Session
// Expiry Interval 0 [MQTT-3.14.2.2.2] so the broker ends the session instead of keeping it.
import type { MqttClient } from 'mqtt';

/**
 * UNSUBSCRIBEs `filter` and resolves at the UNSUBACK: true when the broker acknowledged it,
 * false when the client was not connected, the broker refused, or `signal` aborted first.
 */
export function unsubscribeShared(client: MqttClient, filter: string, signal: AbortSignal): Promise<boolean> {
  if (!client.connected || signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const abort = () => resolve(false);
    signal.addEventListener('abort', abort, { once: true });
    client.unsubscribe(filter, (err) => {
      signal.removeEventListener('abort', abort);
      resolve(!err);
    });
  });
}

export interface DrainUntilQuietOptions {
  /** Commits and acknowledges everything received so far. */
  readonly drain: () => Promise<void>;
  /** Messages received and not yet acknowledged (the held PUBACKs). */
  readonly held: () => number;
  /** How long nothing may arrive after a drain before the share is taken as empty, ms. */
  readonly quietMs: number;
  /** Shutdown's deadline: ends the wait at once. */
  readonly signal: AbortSignal;
}

/**
 * After the UNSUBACK the broker still sends what it had queued for this session, as PUBACKs free
 * in-flight slots. Drains, waits `quietMs`, and repeats while new messages came in meanwhile.
 * @throws whatever `drain` throws (shutdown's deadline aborted the sink).
 */
export async function drainUntilQuiet(o: DrainUntilQuietOptions): Promise<void> {
  for (;;) {
    await o.drain();
    if (o.signal.aborted) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, o.quietMs);
      o.signal.addEventListener('abort', done, { once: true });
      function done(): void {
        clearTimeout(timer);
        o.signal.removeEventListener('abort', done);
        resolve();
      }
    });
    if (o.held() === 0) return;
  }
}

/** MQTT 5 DISCONNECT properties that end the session at once [MQTT-3.14.2.2.2]. */
export const END_SESSION = { properties: { sessionExpiryInterval: 0 } } as const;
