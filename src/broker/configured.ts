// The embedded broker as the settings describe it: authentication (password file, JWT), the TLS
// listener, and refusals counted by reason and logged at most once a minute per client (never
// with a payload, a password or a token). The composition root calls startConfiguredBroker.
import { readFileSync } from 'node:fs';
import type { Config } from '../config/config.ts';
import { embeddedBrokerUrl } from '../ingress/broker-url.ts';
import type { Logger } from '../log/logger.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { type Authenticator, createAuthenticator } from './broker-auth.ts';
import { type EmbeddedBroker, type RefusalReport, startEmbeddedBroker } from './embedded-broker.ts';
import { createJwtVerifier } from './jwt-auth.ts';

/** Least time between two refusal lines about one client, ms. */
export const REFUSAL_LOG_INTERVAL_MS = 60_000;
/** Clients remembered for that throttle; past this the memory is cleared (a flood cannot grow it). */
const THROTTLED_CLIENTS_MAX = 10_000;

/**
 * Counts every refusal and logs the first of each client per REFUSAL_LOG_INTERVAL_MS (with the
 * number suppressed since). Topics are logged, payloads never.
 */
export function refusalReport(metrics: Metrics, log: Logger, clock: () => number = Date.now): RefusalReport {
  const last = new Map<string, { atMs: number; suppressed: number }>();
  const due = (clientId: string): number | undefined => {
    const now = clock();
    const seen = last.get(clientId);
    if (seen && now - seen.atMs < REFUSAL_LOG_INTERVAL_MS) {
      seen.suppressed++;
      return undefined;
    }
    if (last.size >= THROTTLED_CLIENTS_MAX) last.clear();
    last.set(clientId, { atMs: now, suppressed: 0 });
    return seen?.suppressed ?? 0;
  };
  return {
    publish(reason, topic, clientId) {
      metrics.embeddedBrokerPublishesRefused.inc({ reason });
      const suppressed = due(clientId);
      if (suppressed !== undefined)
        log.warn({ event: 'publish_refused', reason, topic, clientId, suppressed }, `embedded broker refused a PUBLISH (${reason})`);
    },
    subscribe(reason, filter, clientId) {
      metrics.embeddedBrokerSubscriptionsRefused.inc({ reason });
      const suppressed = due(clientId);
      if (suppressed !== undefined)
        log.warn({ event: 'subscribe_refused', reason, filter, clientId, suppressed }, `embedded broker refused a subscription (${reason}): SUBACK 0x80`);
    },
    connect(reason, clientId) {
      metrics.embeddedBrokerConnectionsRefused.inc({ reason });
      const suppressed = due(clientId);
      if (suppressed !== undefined)
        log.warn({ event: 'connection_refused', reason, clientId, suppressed }, `embedded broker refused or closed a connection (${reason})`);
    },
    hookError(hook, err, clientId) {
      log.error({ event: 'broker_hook_error', hook, clientId, err }, `embedded broker ${hook} failed; that client was refused`);
    },
  };
}

/**
 * Starts the embedded broker from `config.broker`, with MQTT_TOPIC's rules and MQTT_CLIENT_ID
 * reserved for MQTT_USERNAME.
 * @returns the broker and the URL the service reaches it on (mqtts:// with a TLS listener).
 * @throws Error naming the setting when a key, certificate or password file cannot be used.
 */
export async function startConfiguredBroker(
  config: Config,
  deps: { readonly metrics: Metrics; readonly log: Logger; readonly clock?: () => number },
): Promise<{ broker: EmbeddedBroker; url: string }> {
  const b = config.broker;
  const clock = deps.clock ?? Date.now;
  let auth: Authenticator | undefined;
  if (b.passwordFile || b.jwt) {
    auth = await createAuthenticator({
      passwordFile: b.passwordFile,
      jwt: b.jwt ? await createJwtVerifier(b.jwt) : undefined,
      serviceUsername: config.mqtt.username ?? '',
      serviceClientId: config.mqtt.clientId,
      onPasswordFileLoad: (r) =>
        'error' in r
          ? deps.log.error(
              { event: 'password_file_reload_failed', error: r.error },
              'BROKER_PASSWORD_FILE could not be read again; the previous users stay in force',
            )
          : deps.log.info({ event: 'password_file_loaded', users: r.users, problems: r.problems }, `password file loaded: ${r.users} users`),
    });
  } else {
    deps.log.warn(
      { event: 'broker_anonymous' },
      'embedded broker without authentication (BROKER_PASSWORD_FILE / BROKER_JWT_*): any local client may publish as any well',
    );
  }
  const tls = b.tls
    ? { key: readFileSync(b.tls.keyFile), cert: readFileSync(b.tls.certFile), ...(b.tls.caFile ? { ca: readFileSync(b.tls.caFile) } : {}) }
    : undefined;
  const broker = await startEmbeddedBroker(b.port, b.host, {
    ...(auth ? { auth } : {}),
    ...(tls ? { tls } : {}),
    topicTemplate: config.mqtt.topicTemplate,
    // The largest message the service accepts, plus room for topic and header (as mosquitto.conf).
    maxPacketBytes: config.decode.messageMaxBytes + 8 * 1024,
    ...(config.mqtt.sessionMarkerTopic === 'off' ? {} : { serviceMarkerTopic: config.mqtt.sessionMarkerTopic.replaceAll('{client_id}', config.mqtt.clientId) }),
    report: refusalReport(deps.metrics, deps.log, clock),
    clock,
  });
  const url = embeddedBrokerUrl(b.host, broker.port);
  return { broker, url: tls ? url.replace(/^mqtt:/, 'mqtts:') : url };
}
