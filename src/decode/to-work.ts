// From a received message to the sink's unit of work: topic → well id and site, payload →
// readings and rejections (each rejection keeps the raw bytes). Pure.

import { type DecodeOptions, decodeMessage, type Rejection } from './decode.ts';
import { idProblem, type TopicTemplate } from './topic.ts';
import { type MessageWork, pgText, type RejectRow } from './work.ts';

export interface Received {
  readonly topic: string;
  readonly payload: Uint8Array;
  readonly receivedAtMs: number;
  /** The retain flag of the PUBLISH as delivered (a replay of a retained message). */
  readonly retain?: boolean;
}

/**
 * @returns the work, the count of unknown fields dropped (policy `drop`) and of channel values
 *   coerced from numeric strings.
 */
export function toWork(msg: Received, topic: TopicTemplate, opts: DecodeOptions): { work: MessageWork; droppedFields: number; coercedValues: number } {
  const matched = topic.match(msg.topic);
  const chars = opts.wellIdChars;
  const wellProblem = matched && idProblem(matched.wellId, chars);
  const problem = matched && (wellProblem ?? (matched.site === null ? undefined : idProblem(matched.site, chars)));
  const where = problem ? undefined : matched;
  const reject = (r: Omit<RejectRow, 'receivedAtMs' | 'topic' | 'wellId' | 'payload'> & { item?: unknown }): RejectRow => ({
    reason: r.reason,
    detail: r.detail,
    index: r.index,
    receivedAtMs: msg.receivedAtMs,
    topic: pgText(msg.topic),
    wellId: where?.wellId ?? null,
    // A refused element of an array keeps its own JSON, not the whole message: storing the whole
    // payload once per refused element would grow with the square of the message size.
    payload: r.index === null ? msg.payload : (elementBytes(r.item) ?? msg.payload),
  });
  const base = { topic: msg.topic, payload: msg.payload, wellId: where?.wellId ?? null, ...(msg.retain ? { retain: true } : {}) };
  if (!where) {
    const detail = problem
      ? `topic level ${wellProblem ? 'well_id' : 'site'} ${problem}`
      : `topic "${msg.topic.slice(0, 200)}" does not match MQTT_TOPIC; no well id`;
    const reason = problem ? 'invalid_well_id' : 'topic_mismatch';
    return { work: { ...base, readings: [], rejects: [reject({ reason, detail, index: null })] }, droppedFields: 0, coercedValues: 0 };
  }
  // A retained replay is never stamped with the receive time: each replay would store another row
  // of the same old reading, stamped with a new time. Without `ts` it has a reason of its own.
  const replay = msg.retain === true && opts.missingTs === 'stamp';
  const decoded = decodeMessage(msg.payload, { ...where, receivedAtMs: msg.receivedAtMs }, replay ? { ...opts, missingTs: 'reject' } : opts);
  const rejections = msg.retain ? decoded.rejections.map(asRetainedWithoutTs) : decoded.rejections;
  return {
    work: { ...base, readings: decoded.readings, rejects: rejections.map((r) => reject(r)) },
    droppedFields: decoded.droppedFields,
    coercedValues: decoded.coercedValues,
  };
}

/** `missing_ts` of a retained message becomes `retained_without_ts`, whatever MISSING_TS says. */
function asRetainedWithoutTs(r: Rejection): Rejection {
  if (r.reason !== 'missing_ts') return r;
  return { ...r, reason: 'retained_without_ts', detail: 'ts: missing, and the message is a retained replay (never stamped with the receive time)' };
}

/** The element re-serialised as JSON, or undefined when it cannot be (too deeply nested). */
function elementBytes(item: unknown): Uint8Array | undefined {
  try {
    const text = JSON.stringify(item);
    return text === undefined ? undefined : Buffer.from(text);
  } catch {
    return undefined;
  }
}

/**
 * The work for a message that decoding threw on (a payload shape nobody foresaw): the whole
 * message rejected as `invalid_json` with the error's text, so it is recorded once instead of
 * crashing the process on every redelivery.
 */
export function undecodable(msg: Received, err: unknown): MessageWork {
  const detail = `payload could not be decoded: ${(err as Error).message}`.slice(0, 500);
  const topic = pgText(msg.topic);
  const reject: RejectRow = { receivedAtMs: msg.receivedAtMs, topic, wellId: null, reason: 'invalid_json', detail, index: null, payload: msg.payload };
  return { readings: [], rejects: [reject], topic, payload: msg.payload, wellId: null };
}
