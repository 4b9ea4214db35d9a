// Who may publish and subscribe where on the embedded broker: the rules a device identity and
// the service's own identity get, as pure decisions over a topic (no I/O). The hooks in
// embedded-broker.ts apply them; Mosquitto gets the same rules from mosquitto.acl.

/** Who a connection is, decided once at CONNECT. */
export type Identity =
  /** The service's own ingest client (its user name is BROKER_SERVICE_USERNAME). */
  | { readonly kind: 'service'; readonly name: string }
  /** A device speaking for one well, and for one site when its identity carries one. */
  | { readonly kind: 'device'; readonly wellId: string; readonly site: string | null }
  /** No authentication configured (loopback only): the pre-authentication behaviour. */
  | { readonly kind: 'anonymous' };

/** Why a PUBLISH is refused. Bounded: the `reason` label of the refusal counter. */
export type PublishRefusal = 'sys_topic' | 'empty_topic_level' | 'other_well' | 'other_site' | 'topic_not_allowed' | 'token_expired' | 'hook_error';

/** Why a SUBSCRIBE filter is refused (SUBACK 0x80). */
export type SubscribeRefusal = 'sys_topic' | 'other_well' | 'other_site' | 'wildcard_over_wells' | 'service_filter' | 'topic_not_allowed';

/** Where `{well_id}` and `{site}` sit in MQTT_TOPIC, and the service's subscription filter. */
export interface TopicRules {
  /** MQTT_TOPIC's levels, e.g. ['esp', '{site}', '{well_id}', 'telemetry']. */
  readonly levels: readonly string[];
  /** The filter the service subscribes to (`esp/+/+/telemetry`). */
  readonly serviceFilter: string;
  /**
   * The service's session marker topic (MQTT_SESSION_MARKER_TOPIC with its client id), which it
   * alone may publish and subscribe to; undefined when the marker is off.
   */
  readonly serviceMarker?: string;
}

/** TopicRules for a template such as `esp/{site}/{well_id}/telemetry`, and the service's marker topic. */
export function topicRules(template: string, serviceMarker?: string): TopicRules {
  const levels = template.split('/');
  return { levels, serviceFilter: levels.map((l) => (l === '{well_id}' || l === '{site}' ? '+' : l)).join('/'), ...(serviceMarker ? { serviceMarker } : {}) };
}

/**
 * Where the service's subscription canary publishes its probe and reads it back
 * (`esp-ingest/canary/<client id>`; ingress/canary.ts): one level below this prefix, no wildcard.
 */
export const CANARY_TOPIC_PREFIX = 'esp-ingest/canary/';

/** A canary probe topic: the prefix and one literal level. */
function isCanaryTopic(topic: string): boolean {
  const rest = topic.slice(CANARY_TOPIC_PREFIX.length);
  return topic.startsWith(CANARY_TOPIC_PREFIX) && rest !== '' && !/[/+#]/.test(rest);
}

/**
 * Decides a PUBLISH.
 * - Nobody publishes under `$SYS/` (aedes #597: a spoofed `$SYS/<id>/new/clients` disconnected the
 *   client with that id), nor to a topic with an empty level (see embedded-broker.ts).
 * - A device publishes only to MQTT_TOPIC with its own well id, and its own site when its identity
 *   has one; the service publishes only its session marker (MQTT_SESSION_MARKER_TOPIC) and its
 *   canary probe.
 * @returns the refusal, or undefined to accept.
 */
export function publishRefusal(identity: Identity, topic: string, rules: TopicRules): PublishRefusal | undefined {
  if (topic.startsWith('$')) return 'sys_topic';
  const parts = topic.split('/');
  if (parts.includes('')) return 'empty_topic_level';
  if (identity.kind === 'anonymous') return undefined;
  if (topic === rules.serviceMarker) return identity.kind === 'service' ? undefined : 'topic_not_allowed';
  if (identity.kind === 'service') return isCanaryTopic(topic) ? undefined : 'topic_not_allowed';
  if (parts.length !== rules.levels.length) return 'topic_not_allowed';
  let literalMismatch = false;
  let otherWell = false;
  let otherSite = false;
  rules.levels.forEach((level, i) => {
    const part = parts[i];
    if (level === '{well_id}') otherWell = part !== identity.wellId;
    else if (level === '{site}') otherSite = identity.site !== null && part !== identity.site;
    else if (part !== level) literalMismatch = true;
  });
  return literalMismatch ? 'topic_not_allowed' : otherWell ? 'other_well' : otherSite ? 'other_site' : undefined;
}

/**
 * Decides one SUBSCRIBE filter.
 * - `$SYS/…` and `$share/…` only for the service, and only its own filter and its canary topic
 *   (or their shared forms).
 * - The service's filter (which reads every well) and its session marker belong to the service alone.
 * - A device may subscribe below its own well only: the `{well_id}` level must be its id
 *   literally (a `+` or an earlier `#` would cover other wells), and so must `{site}` when its
 *   identity has a site.
 * @returns the refusal, or undefined to grant.
 */
export function subscribeRefusal(identity: Identity, filter: string, rules: TopicRules): SubscribeRefusal | undefined {
  if (identity.kind === 'anonymous') return filter.startsWith('$SYS') ? 'sys_topic' : undefined;
  if (filter === rules.serviceMarker) return identity.kind === 'service' ? undefined : 'topic_not_allowed';
  if (identity.kind === 'service') {
    const plain = filter.startsWith('$share/') ? filter.split('/').slice(2).join('/') : filter;
    return plain === rules.serviceFilter || isCanaryTopic(plain) ? undefined : 'topic_not_allowed';
  }
  if (filter.startsWith('$')) return 'sys_topic';
  if (filter === rules.serviceFilter) return 'service_filter';
  const parts = filter.split('/');
  for (let i = 0; i < rules.levels.length; i++) {
    const part = parts[i];
    const level = rules.levels[i];
    if (part === undefined) return 'topic_not_allowed';
    if (part === '#') return 'wildcard_over_wells';
    if (level === '{well_id}') {
      if (part === '+') return 'wildcard_over_wells';
      if (part !== identity.wellId) return 'other_well';
      return undefined;
    }
    if (level === '{site}' && identity.site !== null && part !== identity.site) return part === '+' ? 'wildcard_over_wells' : 'other_site';
    if (level !== '{site}' && part !== level && part !== '+') return 'topic_not_allowed';
  }
  return 'topic_not_allowed';
}
