// Integration-test harness: one import for what the integration tests use (fresh databases on
// the test TimescaleDB, a private Mosquitto, the service as a child process or in-process,
// polling, a teardown registry). No mocks: real servers only. Each part lives in its own module
// here, which the dev tools (dev/) import directly.
import mqtt from 'mqtt';
import { pino } from 'pino';
import { type App, startApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config/config.ts';
import { freshDatabase } from './database.ts';
import { readyz, ServiceProcess, scrapeMetric } from './service-process.ts';
import type { Teardown } from './teardown.ts';
import { waitFor } from './wait.ts';

export { freshDatabase, lockTelemetryTable, migratedDatabase, PLAIN_PG_URL, query, serverUrl } from './database.ts';
export { PrivateMosquitto, privateMosquitto } from './mosquitto.ts';
export { freePort } from './net.ts';
export { ROOT } from './root.ts';
export { BUNDLE_ARGS, readyz, ServiceProcess } from './service-process.ts';
export { Teardown } from './teardown.ts';
export { waitFor } from './wait.ts';

/** Sum of one metric's samples on a service's /metrics (see scrapeMetric). */
export const metric = scrapeMetric;

/**
 * Starts the service as a child process (ServiceProcess) and registers a SIGKILL of it at
 * teardown; unless `waitReady` is false, resolves once /readyz is 200.
 */
export async function startService(t: Teardown, env: Record<string, string>, opts: { waitReady?: boolean } = {}): Promise<ServiceProcess> {
  const svc = new ServiceProcess(env);
  t.add(() => svc.stop('SIGKILL'));
  await svc.start(opts);
  return svc;
}

/**
 * The service in-process (startApp, silent log) on topics `<prefix>/{site}/{well_id}/telemetry`
 * with client id `esp-ingest-<prefix>`, HTTP on an ephemeral port and 50 ms flushes; `env`
 * overrides (it must give DATABASE_URL). Resolves once /readyz is 200; stopped at teardown.
 */
export async function startInProcess(t: Teardown, prefix: string, env: Record<string, string>): Promise<App> {
  const config = loadConfig({
    MQTT_TOPIC: `${prefix}/{site}/{well_id}/telemetry`,
    MQTT_CLIENT_ID: `esp-ingest-${prefix}`,
    HTTP_PORT: '0',
    HTTP_HOST: '127.0.0.1',
    BATCH_FLUSH_INTERVAL_MS: '50',
    ...env,
  });
  const app = await startApp({ config, log: pino({ level: 'silent' }) });
  t.add(() => app.stop());
  await waitFor('ready', async () => (await readyz(app.httpPort)).status === 200, 20_000);
  return app;
}

export interface InProcessRun {
  readonly app: App;
  readonly databaseUrl: string;
  /** The service reads `<prefix>/{site}/{well_id}/telemetry`. */
  readonly prefix: string;
  /** A clean-session MQTT 5 client on the service's broker, for the test's publishes. */
  readonly pub: mqtt.MqttClient;
}

/**
 * A fresh database, the service in-process on it (startInProcess) reading `mqttUrl` under a
 * topic prefix of its own, and a publisher on the same broker; all ended at teardown.
 */
export async function startInProcessWithPublisher(t: Teardown, mqttUrl: string, env: Record<string, string> = {}): Promise<InProcessRun> {
  const databaseUrl = await freshDatabase(t);
  const prefix = `t${Math.random().toString(36).slice(2, 10)}`;
  const app = await startInProcess(t, prefix, { DATABASE_URL: databaseUrl, MQTT_URL: mqttUrl, ...env });
  const pub = await mqtt.connectAsync(mqttUrl, { clientId: `pub-${prefix}`, clean: true, protocolVersion: 5 });
  t.add(() => pub.endAsync());
  return { app, databaseUrl, prefix, pub };
}
