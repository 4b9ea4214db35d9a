// Topic template: one setting (MQTT_TOPIC) gives both the subscription filter and where the
// well id and site sit in a topic. Pure; no I/O.
import { EspError } from '../errors.ts';

/** A parsed `MQTT_TOPIC` such as `esp/{site}/{well_id}/telemetry`. */
export interface TopicTemplate {
  /** Subscription filter: each `{name}` level becomes `+` [MQTT-4.7.1-2]. */
  readonly filter: string;
  /** Returns `{ wellId, site }` for a matching topic, or undefined when it does not match. */
  match(topic: string): { wellId: string; site: string | null } | undefined;
}

const PLACEHOLDER = /^\{(well_id|site)\}$/;

/**
 * @param template levels separated by `/`; `{well_id}` required once, `{site}` optional once;
 *   other levels are literal and may not contain `+`, `#` or braces.
 * @throws EspError ESP_TOPIC_TEMPLATE_INVALID saying which level is wrong.
 */
export function parseTopicTemplate(template: string): TopicTemplate {
  const levels = template.split('/');
  const fail = (why: string): never => {
    throw new EspError('ESP_TOPIC_TEMPLATE_INVALID', `topic template "${template}": ${why}`);
  };
  let wellIdx = -1;
  let siteIdx = -1;
  levels.forEach((level, i) => {
    const m = PLACEHOLDER.exec(level);
    if (m) {
      if (m[1] === 'well_id') {
        if (wellIdx >= 0) fail('{well_id} appears twice');
        wellIdx = i;
      } else {
        if (siteIdx >= 0) fail('{site} appears twice');
        siteIdx = i;
      }
    } else if (/[+#{}]/.test(level)) {
      fail(`level ${i + 1} "${level}" may not contain + # { } (use {well_id} or {site} for a whole level)`);
    }
  });
  if (wellIdx < 0) fail('it must contain a {well_id} level');
  const filter = levels.map((l) => (PLACEHOLDER.test(l) ? '+' : l)).join('/');
  return {
    filter,
    match(topic) {
      const parts = topic.split('/');
      if (parts.length !== levels.length) return undefined;
      for (let i = 0; i < levels.length; i++) {
        if (i !== wellIdx && i !== siteIdx && parts[i] !== levels[i]) return undefined;
      }
      const wellId = parts[wellIdx] ?? '';
      return { wellId, site: siteIdx >= 0 ? (parts[siteIdx] ?? null) : null };
    },
  };
}

/** Longest well id or site accepted from a topic level, in code points. */
export const MAX_ID_CHARS = 128;

// C0 and C1 controls and DEL; bidi embeddings, overrides and isolates (U+202A-E, U+2066-9, the
// Trojan Source set, CVE-2021-42574) and the bidi marks; MQTT wildcards; U+FFFD, which is what an
// invalid UTF-8 sequence in the topic decodes to; lone surrogates. Matched on UTF-16 code units.
const BAD_ID_CHAR = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u061c\u202a-\u202e\u2066-\u2069+#\ufffd]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * Why a well id or site taken from a topic level cannot be used, or undefined when it can.
 * Refused: empty, longer than MAX_ID_CHARS code points, control characters, bidi controls,
 * `+` / `#`, U+FFFD (invalid UTF-8 on the wire) and lone surrogates.
 */
export function idProblem(id: string): string | undefined {
  if (id === '') return 'is empty';
  if (id.length > MAX_ID_CHARS && [...id].length > MAX_ID_CHARS) return `is longer than ${MAX_ID_CHARS} characters`;
  const m = BAD_ID_CHAR.exec(id);
  if (m) return `contains U+${m[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')} at ${m.index}`;
  return undefined;
}
