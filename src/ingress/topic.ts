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
      if (wellId === '') return undefined;
      return { wellId, site: siteIdx >= 0 ? (parts[siteIdx] ?? null) : null };
    },
  };
}
