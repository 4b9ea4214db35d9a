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

/** Longest well id or site accepted from a topic level, in characters. */
export const MAX_ID_CHARS = 128;

/**
 * Characters a well id or site may hold by default (WELL_ID_CHARS): ASCII letters, digits, `.`,
 * `_` and `-`. An allow-list, not a list of bad characters: a zero-width space, a line separator,
 * a Cyrillic look-alike, a space or a percent-encoded `/` each make a second, visually identical
 * (or path-like) well, and no deny-list keeps up with Unicode.
 */
export const DEFAULT_ID_CHARS = 'A-Za-z0-9._-';

// Characters no setting may allow: the topic separator and wildcards [MQTT-4.7.1-1], controls,
// spaces, invisible and bidi formatting characters (Trojan Source, CVE-2021-42574), line and
// paragraph separators, U+FFFD (invalid UTF-8 on the wire) and `%` (percent-encoding).
const NEVER_ALLOWED = [
  '/',
  '+',
  '#',
  '%',
  ' ',
  '\u0000',
  '\t',
  '\u007f',
  '\u0085',
  '\u00a0',
  '\u200b',
  '\u200e',
  '\u202e',
  '\u2028',
  '\u2066',
  '\ufeff',
  '\ufffd',
];

const outsideCache = new Map<string, RegExp>();

/** The first character outside the set, Unicode-aware (a surrogate pair is one character). */
function outside(chars: string): RegExp {
  let re = outsideCache.get(chars);
  if (!re) {
    re = new RegExp(`[^${chars}]`, 'u');
    outsideCache.set(chars, re);
  }
  return re;
}

/**
 * Why a WELL_ID_CHARS value cannot be used, or undefined when it can.
 * @param chars the body of a regular-expression character class (`A-Za-z0-9._-`), Unicode mode.
 */
export function idCharsProblem(chars: string): string | undefined {
  let re: RegExp;
  try {
    re = new RegExp(`^[${chars}]$`, 'u');
  } catch (err) {
    return `is not a valid character class body: ${(err as Error).message}`;
  }
  const allowed = NEVER_ALLOWED.filter((c) => re.test(c));
  if (allowed.length > 0) return `must not allow ${allowed.map(codePoint).join(', ')} (topic separators, wildcards, spaces, controls or invisible characters)`;
  return undefined;
}

/** `U+200B` for a character. */
function codePoint(c: string): string {
  return `U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
}

/**
 * Why a well id or site taken from a topic level cannot be used, or undefined when it can.
 * Accepted: 1 to MAX_ID_CHARS characters, each in `chars` (WELL_ID_CHARS, default
 * DEFAULT_ID_CHARS). The answer names the first refused character's code point and position.
 */
export function idProblem(id: string, chars: string = DEFAULT_ID_CHARS): string | undefined {
  if (id === '') return 'is empty';
  if (id.length > MAX_ID_CHARS && [...id].length > MAX_ID_CHARS) return `is longer than ${MAX_ID_CHARS} characters`;
  const m = outside(chars).exec(id);
  if (m) {
    const shown = /^[\u0021-\u007e]$/.test(m[0]) ? ` "${m[0]}"` : '';
    return `contains ${codePoint(m[0])}${shown} at ${m.index}; allowed: ${chars} (WELL_ID_CHARS)`;
  }
  return undefined;
}
