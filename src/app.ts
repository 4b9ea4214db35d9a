// Composition root: builds every component and shows the start order (database side first)
// and the stop order (MQTT intake first, last flush under a deadline, then disconnect).
import mqtt from 'mqtt';
import pg from 'pg';
import type { Config } from './config/config.ts';
import { startEmbeddedBroker, type EmbeddedBroker } from '../broker/embedded-broker.ts';
import { Admission } from './batch/admission.ts';
import { Batcher } from './batch/batcher.ts';
import { DEFAULT_CATALOG, catalogProblems, type Channel } from './decode/catalog.ts';
import { toWork } from './decode/to-work.ts';
import { EspError } from './errors.ts';
import { Sidecar } from './http/sidecar.ts';
import { MqttIngress, type InboundMessage } from './ingress/mqtt-ingress.ts';
import { parseTopicTemplate } from './ingress/topic.ts';
import type { Logger } from './log/logger.ts';
import { createMetrics, type Metrics } from './metrics/metrics.ts';
import { Committer, backoffMs, type MessageWork } from './sink/committer.ts';
import { migrate } from './sink/migrate.ts';
import { classifyDbError } from './sink/sqlstate.ts';
import { FEATURES, FEATURE_STATES, STORAGE_MODES, type StorageReport } from './sink/storage/report.ts';
import { TelemetryWriter } from './sink/writer.ts';

export interface AppDeps {
  readonly config: Config;
  readonly log: Logger;
  readonly metrics?: Metrics;
  readonly catalog?: readonly Channel[];
  readonly clock?: () => number;
  readonly connectMqtt?: typeof mqtt.connect;
}

export interface App {
  /** Port the sidecar listens on (resolved when HTTP_PORT is 0). */
  readonly httpPort: number;
  /** The broker the ingress connects to (the embedded one's, with BROKER=embedded). */
  readonly mqttUrl: string;
  readonly metrics: Metrics;
  /**
   * Graceful stop: intake off, last flush and its PUBACKs within SHUTDOWN_DEADLINE_MS,
   * disconnect, close. Idempotent.
   * @returns true when everything received was committed and acknowledged in time; false when
   *   the deadline passed (what was not committed was not acknowledged; the broker keeps it).
   */
  stop(): Promise<boolean>;
  /** Resolves when the app hits an error it cannot recover from without a person. */
  readonly fatal: Promise<EspError>;
}

/**
 * Starts the service. Resolves once the sidecar listens and the schema is migrated; MQTT
 * connects in the background (see /readyz).
 * @throws EspError on a bad catalog, or a migration the database refuses.
 */
export async function startApp(deps: AppDeps): Promise<App> {
  const { config, log } = deps;
  const clock = deps.clock ?? Date.now;
  const metrics = deps.metrics ?? createMetrics();
  const catalog = deps.catalog ?? DEFAULT_CATALOG;
  const problems = catalogProblems(catalog);
  if (problems.length > 0) throw new EspError('ESP_CATALOG_INVALID', `channel catalog invalid:\n  - ${problems.join('\n  - ')}`);
  const topic = parseTopicTemplate(config.mqtt.topicTemplate);
  const abort = new AbortController();
  let fatalResolve: (e: EspError) => void = () => undefined;
  const fatal = new Promise<EspError>((r) => (fatalResolve = r));

  // State behind /readyz.
  let dbReason: string | undefined = 'database: not checked yet';
  let migrated = false;
  let storage: StorageReport | undefined;
  let sinkReason: string | undefined;
  const setDb = (up: boolean, reason?: string) => {
    dbReason = up ? undefined : (reason ?? 'database: unreachable');
    metrics.dbUp.set(up && !sinkReason ? 1 : 0);
  };
  const onSinkState = (ok: boolean, reason?: string) => {
    sinkReason = ok ? undefined : `database: batch write failed, retrying: ${reason ?? 'unknown error'}`;
    // A commit proves the database reachable: readiness need not wait for the next probe.
    if (ok) setDb(true);
    else metrics.dbUp.set(0);
  };

  // 1. Sidecar first, so probes answer during start-up.
  let ingress: MqttIngress | undefined;
  let batcher: Batcher<MessageWork> | undefined;
  const sidecar = new Sidecar({
    registry: metrics.registry,
    readiness: {
      reasons: () => {
        const r: string[] = [];
        if (dbReason) r.push(dbReason);
        if (sinkReason) r.push(sinkReason);
        if (!migrated) r.push('database: schema migrations not applied yet');
        const m = ingress ? ingress.notReadyReason : 'mqtt: not started';
        if (m) r.push(m);
        if (batcher && batcher.bufferedRows >= config.batch.bufferMaxRows) r.push(`buffer: full (${batcher.bufferedRows} rows; database too slow or down)`);
        return r;
      },
      detail: () => ({ storage: storage ?? null, rowsBuffered: batcher?.bufferedRows ?? 0, unacknowledged: ingress?.heldAcks() ?? 0 }),
    },
  });
  const httpPort = await sidecar.start(config.http.port, config.http.host);
  log.info({ port: httpPort }, 'sidecar listening: /livez /readyz /metrics');

  // 2. Database: pool (idle errors never crash: node-postgres #1324, #2439), then schema.
  const pool = new pg.Pool({
    connectionString: config.databaseUrl,
    max: config.db.poolMax,
    connectionTimeoutMillis: config.db.connectTimeoutMs,
    statement_timeout: config.db.statementTimeoutMs,
    lock_timeout: config.db.lockTimeoutMs,
    idle_in_transaction_session_timeout: config.db.statementTimeoutMs * 2,
    query_timeout: config.db.statementTimeoutMs + 5_000,
    keepAlive: true,
    application_name: 'esp-ingest',
  });
  pool.on('error', (err) => {
    metrics.dbPoolErrors.inc();
    log.warn({ err }, 'idle database connection failed; it was removed from the pool');
  });
  for (let attempt = 1; ; attempt++) {
    try {
      const schema = await migrate(pool, catalog, log, config.storage);
      storage = schema.storage;
      break;
    } catch (err) {
      const cls = classifyDbError((err as { cause?: unknown }).cause ?? err);
      if (err instanceof EspError && err.code === 'ESP_DB_MIGRATION_FAILED' && cls !== 'retry') {
        await Promise.allSettled([sidecar.stop(), pool.end()]);
        throw err;
      }
      setDb(false, `database: ${(err as Error).message}`);
      const delay = backoffMs(attempt, config.retryMaxDelayMs);
      log.warn({ err, attempt, delayMs: delay }, 'database not reachable at start-up; retrying');
      await new Promise((r) => setTimeout(r, delay));
    }
  }
  migrated = true;
  setDb(true);
  for (const mode of STORAGE_MODES) metrics.storageMode.set({ mode }, mode === storage?.mode ? 1 : 0);
  for (const feature of FEATURES) {
    for (const state of FEATURE_STATES) metrics.storageFeature.set({ feature, state }, storage?.features[feature].state === state ? 1 : 0);
  }
  log.info({ storageMode: storage?.mode }, 'schema ready');
  // Reachability between batches (the sink reports its own failures through onSinkState).
  const health = setInterval(() => {
    pool.query('SELECT 1').then(() => setDb(true), (err: Error) => setDb(false, `database: ${err.message}`));
  }, 5_000);
  health.unref();

  // 3. Sink and batcher.
  const writer = new TelemetryWriter(pool, catalog, config.db.statementTimeoutMs * 2);
  const committer = new Committer({ writer, catalog, metrics, log: log.child({ component: 'sink' }), retryMaxDelayMs: config.retryMaxDelayMs, signal: abort.signal, clock, onDbState: onSinkState });
  const b = new Batcher<MessageWork>({
    maxRows: config.batch.maxRows,
    flushIntervalMs: config.batch.flushIntervalMs,
    bufferMaxRows: config.batch.bufferMaxRows,
    maxConcurrentFlushes: config.batch.flushConcurrency,
    flush: (items) => committer.commit(items),
    onBuffered: (rows) => metrics.rowsBuffered.set(rows),
  });
  batcher = b;
  metrics.probes.oldestUnacknowledgedAgeSeconds = () => {
    const oldest = b.oldestReceivedAtMs;
    return oldest === undefined ? 0 : (clock() - oldest) / 1000;
  };
  metrics.probes.unacknowledgedMessages = () => ingress?.heldAcks() ?? 0;

  // 4. MQTT last: messages start flowing only when everything behind them is ready. The
  // embedded broker is reached over TCP like any other: one ingestion path.
  let mqttConfig = config.mqtt;
  let embedded: EmbeddedBroker | undefined;
  if (config.broker.mode === 'embedded') {
    embedded = await startEmbeddedBroker(config.broker.port, config.broker.host);
    const host = config.broker.host === '0.0.0.0' ? '127.0.0.1' : config.broker.host;
    mqttConfig = { ...config.mqtt, url: `mqtt://${host}:${embedded.port}`, protocolVersion: 4 };
    log.info({ port: embedded.port, host: config.broker.host }, 'embedded MQTT broker (aedes, MQTT 3.1.1) listening');
  }
  const decodeOpts = { catalog, ...config.decode };
  const ing = new MqttIngress({ connect: deps.connectMqtt ?? mqtt.connect, config: mqttConfig, topic, log: log.child({ component: 'ingress' }), metrics, clock, onFatal: fatalResolve });
  ingress = ing;
  // Decoding is pure and should not throw; if it ever does (a payload shape nobody foresaw), the
  // message is rejected with the error rather than crashing the process on every redelivery.
  const decodeOrReject = (msg: InboundMessage): ReturnType<typeof toWork> => {
    try {
      return toWork(msg, topic, decodeOpts);
    } catch (err) {
      log.error({ err, topic: msg.topic, bytes: msg.payload.byteLength }, 'payload could not be decoded; rejected');
      const detail = `payload could not be decoded: ${(err as Error).message}`.slice(0, 500);
      const safeTopic = msg.topic.replace(/\u0000/g, '\uFFFD');
      const reject = { receivedAtMs: msg.receivedAtMs, topic: safeTopic, wellId: null, reason: 'invalid_json' as const, detail, index: null, payload: msg.payload };
      return { work: { readings: [], rejects: [reject], topic: safeTopic, payload: msg.payload, wellId: null }, droppedFields: 0, coercedValues: 0 };
    }
  };
  const admission = new Admission<InboundMessage>((msg) => {
    const { work, droppedFields, coercedValues } = decodeOrReject(msg);
    if (droppedFields > 0) metrics.unknownFieldsDropped.inc(droppedFields);
    if (coercedValues > 0) metrics.valuesCoerced.inc(coercedValues);
    return b.add({ rows: work.readings.length + work.rejects.length, receivedAtMs: msg.receivedAtMs, data: work, ack: msg.ack });
  }, config.mqtt.receiveMaximum);
  metrics.probes.messagesWaiting = () => admission.waiting;
  ing.start((msg) => admission.offer(msg));

  let stopping: Promise<boolean> | undefined;
  const stop = (): Promise<boolean> =>
    (stopping ??= (async () => {
      clearInterval(health);
      ing.stopIntake();
      // The deadline ends the write in progress (its connection is destroyed) and the retries.
      const deadline = setTimeout(() => abort.abort(), config.shutdownDeadlineMs);
      let clean = true;
      try {
        await b.drain();
      } catch (err) {
        clean = false;
        log.error({ err, rowsBuffered: b.bufferedRows }, 'shutdown deadline passed: uncommitted messages were not acknowledged; the broker will redeliver them');
      }
      await ing.close();
      await embedded?.close();
      await sidecar.stop();
      // pool.end() waits for checked-out connections; one stuck on a hung server (a reachability
      // probe, up to query_timeout) must not hold the exit past the deadline.
      await Promise.race([pool.end().catch(() => undefined), aborted(abort.signal)]);
      clearTimeout(deadline);
      log.info({ clean }, 'stopped');
      return clean;
    })());

  return { httpPort, mqttUrl: mqttConfig.url, metrics, stop, fatal };
}

/** Resolves when `signal` aborts (at once if it already has). */
function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));
}
