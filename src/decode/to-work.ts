// From a received message to the sink's unit of work: topic → well id and site, payload →
// readings and rejections (each rejection keeps the raw bytes). Pure.
import type { TopicTemplate } from '../ingress/topic.ts';
import type { MessageWork } from '../sink/committer.ts';
import type { RejectRow } from '../sink/writer.ts';
import { decodeMessage, type DecodeOptions } from './decode.ts';

export interface Received {
  readonly topic: string;
  readonly payload: Uint8Array;
  readonly receivedAtMs: number;
}

/** @returns the work and the count of unknown fields dropped (policy `drop`). */
export function toWork(msg: Received, topic: TopicTemplate, opts: DecodeOptions): { work: MessageWork; droppedFields: number } {
  const where = msg.topic.includes('\u0000') ? undefined : topic.match(msg.topic);
  const reject = (r: Omit<RejectRow, 'receivedAtMs' | 'topic' | 'wellId' | 'payload'>): RejectRow => ({
    ...r,
    receivedAtMs: msg.receivedAtMs,
    topic: msg.topic.replace(/\u0000/g, '\uFFFD'),
    wellId: where?.wellId ?? null,
    payload: msg.payload,
  });
  const base = { topic: msg.topic, payload: msg.payload, wellId: where?.wellId ?? null };
  if (!where) {
    const detail = `topic "${msg.topic.slice(0, 200)}" does not match MQTT_TOPIC; no well id`;
    return { work: { ...base, readings: [], rejects: [reject({ reason: 'topic_mismatch', detail, index: null })] }, droppedFields: 0 };
  }
  const decoded = decodeMessage(msg.payload, { ...where, receivedAtMs: msg.receivedAtMs }, opts);
  return {
    work: { ...base, readings: decoded.readings, rejects: decoded.rejections.map((r) => reject(r)) },
    droppedFields: decoded.droppedFields,
  };
}
