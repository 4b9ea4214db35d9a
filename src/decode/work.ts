// Decode's output, the unit the later stages carry: one MQTT message as readings to store and
// rejections to record, each rejection with the raw bytes it came from.
import type { Reading, RejectReason } from './decode.ts';

/** A rejection ready to store in `rejected_messages`: where it came from and the raw bytes. */
export interface RejectRow {
  /** Receive time, milliseconds since the Unix epoch. */
  readonly receivedAtMs: number;
  /** The MQTT topic, NUL replaced by U+FFFD (PostgreSQL text cannot hold NUL). */
  readonly topic: string;
  /** The topic's well id, or null when the topic gave none (or an invalid one). */
  readonly wellId: string | null;
  readonly reason: RejectReason;
  /** A sentence for the operator, at most 500 characters. */
  readonly detail: string;
  /** Position of the refused element in a JSON array payload; null for the whole message. */
  readonly index: number | null;
  /** The refused bytes: the element's JSON for an array element, else the whole payload. */
  readonly payload: Uint8Array;
}

/**
 * What one message carries to the sink. Not its payload: a message held until commit keeps only
 * its decoded readings (and the raw bytes of what the decoder refused, in `rejects`), so that a
 * buffer of small messages does not also hold their bytes and the socket reads those came in.
 */
export interface MessageWork {
  readonly readings: Reading[];
  readonly rejects: RejectRow[];
  /** The message's topic, for a rejection the database makes (poison message). */
  readonly topic: string;
  readonly wellId: string | null;
  /**
   * The broker sent it with the retain flag: a replay of the topic's retained message (on a new
   * subscription, [MQTT-3.3.1-6], [MQTT-3.3.1-9]), not a live reading. It never advances the
   * well's freshness.
   */
  readonly retain?: boolean;
}

/** `text` as PostgreSQL text can hold it: NUL (which it refuses, SQLSTATE 22021) becomes U+FFFD. */
export function pgText(text: string): string {
  return text.includes('\u0000') ? text.replace(/\u0000/g, '\uFFFD') : text;
}
