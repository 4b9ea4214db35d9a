// Production entry point (`npm start`): config from the environment, start, stop on
// SIGTERM/SIGINT. Exit codes: 0 clean stop; 1 shutdown deadline passed or fatal error;
// 2 invalid configuration.
import { getHeapStatistics } from 'node:v8';
import { type App, startApp } from './app.ts';
import { type Config, loadConfig } from './config/config.ts';
import { unreadableFiles } from './config/files.ts';
import { heapShortfall } from './config/heap.ts';
import { ConfigError, EspError } from './errors.ts';
import { embeddedBrokerUrl } from './ingress/broker-url.ts';
import { createLogger, redactConfig, redactUrl } from './log/logger.ts';

let config: Config;
try {
  config = loadConfig(process.env);
  // The files the settings name must be readable now (the schema itself never touches a file).
  const unreadable = unreadableFiles(config);
  if (unreadable.length > 0) throw new ConfigError(unreadable);
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`esp-ingest: ${err.code} ${err.message}\n(see .env.example for every variable, its default and unit)\n`);
    process.exit(2);
  }
  throw err;
}
const log = createLogger(config.log.level, config.log.format);
// With BROKER=embedded, MQTT_URL is not used: show where the embedded broker will listen (port 0:
// chosen at start, see `embedded_broker_listening`).
const mqttShown = config.broker.mode === 'embedded' ? embeddedBrokerUrl(config.broker.host, config.broker.port) : redactUrl(config.mqtt.url);
log.info(
  {
    event: 'starting',
    pid: process.pid,
    node: process.version,
    database: redactUrl(config.databaseUrl),
    broker: config.broker.mode,
    mqtt: mqttShown,
    topic: config.mqtt.topicTemplate,
    clientId: config.mqtt.clientId,
  },
  'starting esp-ingest',
);
log.info({ event: 'config_loaded', config: redactConfig(config) }, 'configuration loaded');
const heap = heapShortfall(getHeapStatistics().heap_size_limit, config.batch.bufferMaxBytes);
if (heap) log.warn({ heapLimitBytes: getHeapStatistics().heap_size_limit, bufferMaxBytes: config.batch.bufferMaxBytes }, heap);

// Signals are handled from the start: while start-up still waits for the database, SIGTERM
// aborts the start (nothing has been received yet, so nothing can be lost); what had started is
// stopped and the process exits 0.
let app: App | undefined;
let signals = 0;
const starting = new AbortController();
const onSignal = (sig: string) => {
  signals++;
  if (!app && signals === 1) {
    log.warn({ event: 'signal', signal: sig }, 'signal during start-up: stopping the start');
    starting.abort();
    return;
  }
  if (!app || signals > 1) {
    log.warn({ event: 'signal', signal: sig }, 'second signal: exiting now without waiting');
    process.exit(1);
  }
  log.info({ event: 'signal', signal: sig }, `${sig}: stopping`);
  void app.stop().then((clean) => process.exit(clean ? 0 : 1));
};
process.on('SIGTERM', () => onSignal('SIGTERM'));
process.on('SIGINT', () => onSignal('SIGINT'));

try {
  app = await startApp({ config, log, signal: starting.signal });
  const started = app;
  // A signal that came after the database step: the start completed, so stop it gracefully now.
  if (starting.signal.aborted) void started.stop().then((clean) => process.exit(clean ? 0 : 1));
  void started.fatal.then(async (err) => {
    log.fatal({ event: 'fatal', err }, 'fatal: stopping');
    await started.stop();
    process.exit(1);
  });
} catch (err) {
  if (starting.signal.aborted) {
    log.info({ event: 'stopped', clean: true }, 'stopped during start-up');
    process.exit(0);
  }
  log.fatal({ event: 'start_failed', err, code: err instanceof EspError ? err.code : undefined }, 'start-up failed');
  process.exitCode = 1;
  setTimeout(() => process.exit(1), 100).unref();
}
