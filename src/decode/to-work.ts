// From a received message to the sink's unit of work: topic → well id and site, payload →
// readings and rejections (each rejection keeps the raw bytes). Pure.

import { type DecodeOptions, decodeMessage, type Reading, type Rejection } from './decode.ts';
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
  const { where, problem, wellProblem, topic: seenTopic } = resolveTopic(topic, opts.wellIdChars, msg.topic);
  const wellId = where?.wellId ?? null;
  if (!where) {
    const detail = problem
      ? `topic level ${wellProblem ? 'well_id' : 'site'} ${problem}`
      : `topic "${msg.topic.slice(0, 200)}" does not match MQTT_TOPIC; no well id`;
    const reason = problem ? 'invalid_well_id' : 'topic_mismatch';
    const rejects = [rejectRow(msg, wellId, { reason, detail, index: null })];
    return { work: messageWork(msg, seenTopic, wellId, [], rejects), droppedFields: 0, coercedValues: 0 };
  }
  // A retained replay is never stamped with the receive time: each replay would store another row
  // of the same old reading, stamped with a new time. Without `ts` it has a reason of its own.
  const replay = msg.retain === true && opts.missingTs === 'stamp';
  const decoded = decodeMessage(
    msg.payload,
    { wellId: where.wellId, site: where.site, receivedAtMs: msg.receivedAtMs },
    replay ? { ...opts, missingTs: 'reject' } : opts,
  );
  const rejections = msg.retain ? decoded.rejections.map(asRetainedWithoutTs) : decoded.rejections;
  const rejects = rejections.length === 0 ? NO_REJECTS : rejections.map((r) => rejectRow(msg, wellId, r));
  return { work: messageWork(msg, seenTopic, wellId, decoded.readings, rejects), droppedFields: decoded.droppedFields, coercedValues: decoded.coercedValues };
}

/** Shared by every message without a rejection (never written to: the sink only reads it). */
const NO_REJECTS: RejectRow[] = [];

/** @param topic the message's topic as first seen (one string per topic held, not one per message). */
function messageWork(msg: Received, topic: string, wellId: string | null, readings: Reading[], rejects: RejectRow[]): MessageWork {
  return msg.retain ? { topic, wellId, readings, rejects, retain: true } : { topic, wellId, readings, rejects };
}

function rejectRow(msg: Received, wellId: string | null, r: Rejection): RejectRow {
  return {
    reason: r.reason,
    detail: r.detail,
    index: r.index,
    receivedAtMs: msg.receivedAtMs,
    topic: pgText(msg.topic),
    wellId,
    // A refused element of an array keeps its own JSON, not the whole message: storing the whole
    // payload once per refused element would grow with the square of the message size.
    payload: r.index === null ? msg.payload : (elementBytes(r.item) ?? msg.payload),
  };
}

/** A topic's well id and site, or why it has none. */
interface ResolvedTopic {
  /** Undefined when the topic does not match, or an id in it is refused. */
  readonly where: { readonly wellId: string; readonly site: string | null } | undefined;
  readonly problem: string | undefined;
  /** The refused id is the well id (else the site). */
  readonly wellProblem: boolean;
  /** The topic, the string first seen: messages held share it instead of each keeping its own. */
  readonly topic: string;
}

/** Topics resolved, per template and WELL_ID_CHARS: a well publishes on one topic, again and again. */
const topicCache = new WeakMap<TopicTemplate, Map<string | undefined, Map<string, ResolvedTopic>>>();
/** Topics remembered per template; past it the cache starts afresh (a client inventing topics gains nothing). */
const TOPIC_CACHE_MAX = 10_000;
/**
 * Longest topic remembered, in UTF-16 units: a well's topic is its template's text and ids of at
 * most MAX_ID_CHARS. MQTT allows 65,535-byte topics; 10,000 of them kept would hold over 600 MB.
 */
const TOPIC_CACHE_KEY_MAX = 1_024;

/** Topics remembered for `template` (under every WELL_ID_CHARS); for tests. */
export function cachedTopics(template: TopicTemplate): number {
  let n = 0;
  for (const cache of topicCache.get(template)?.values() ?? []) n += cache.size;
  return n;
}

function resolveTopic(template: TopicTemplate, chars: string | undefined, topic: string): ResolvedTopic {
  let byChars = topicCache.get(template);
  if (!byChars) {
    byChars = new Map();
    topicCache.set(template, byChars);
  }
  let cache = byChars.get(chars);
  if (!cache) {
    cache = new Map();
    byChars.set(chars, cache);
  }
  let resolved = cache.get(topic);
  if (resolved) return resolved;
  const matched = template.match(topic);
  const wellProblem = matched && idProblem(matched.wellId, chars);
  const problem = matched ? (wellProblem ?? (matched.site === null ? undefined : idProblem(matched.site, chars))) : undefined;
  resolved = { where: problem ? undefined : matched, problem, wellProblem: wellProblem !== undefined, topic };
  if (topic.length > TOPIC_CACHE_KEY_MAX) return resolved;
  if (cache.size >= TOPIC_CACHE_MAX) cache.clear();
  cache.set(topic, resolved);
  return resolved;
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
  return { readings: [], rejects: [reject], topic, wellId: null };
}
