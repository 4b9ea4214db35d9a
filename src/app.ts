// Composition root: builds every component and shows the start order (database side first)
// and the stop order (MQTT intake first, last flush under a deadline, then disconnect).
import mqtt from 'mqtt';
import pg from 'pg';
import type { Config } from './config/config.ts';
import { startEmbeddedBroker, type EmbeddedBroker } from './broker/embedded-broker.ts';
import { Admission } from './batch/admission.ts';
import { Batcher } from './batch/batcher.ts';
import { backfillLanes } from './batch/lanes.ts';
import { DEFAULT_CATALOG, catalogProblems, type Channel } from './decode/catalog.ts';
import { toWork } from './decode/to-work.ts';
import { EspError } from './errors.ts';
import { Sidecar } from './http/sidecar.ts';
import { MqttIngress, type InboundMessage } from './ingress/mqtt-ingress.ts';
import { parseTopicTemplate } from './decode/topic.ts';
import { DbProbe } from './lifecycle/db-probe.ts';
import { EventLoopWatchdog } from './lifecycle/liveness.ts';
import { ReadinessState, reasonsBody } from './lifecycle/readiness.ts';
import { SummaryLog } from './lifecycle/summary.ts';
import { redactUrl, type Logger } from './log/logger.ts';
import { ErrorLogThrottle, warnThrottled } from './log/throttle.ts';
import { createMetrics, type Metrics } from './metrics/metrics.ts';
import type { MessageWork } from './decode/work.ts';
import { Committer, backoffMs } from './sink/committer.ts';
import { migrate } from './schema/migrate.ts';
import { rollupColumnProblems } from './schema/rollup-columns.ts';
import { classifyDbError } from './sink/sqlstate.ts';
import { FEATURES, FEATURE_STATES, STORAGE_MODES, type StorageReport } from './schema/report.ts';
import { TelemetryWriter } from './sink/writer.ts';
import { SequenceStore } from './sequence/store.ts';
import { embeddedBrokerUrl } from './ingress/broker-url.ts';

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
  const metrics = deps.metrics ?? createMetrics({ wellsMax: config.metrics.wellsMax, clock });
  const catalog = deps.catalog ?? DEFAULT_CATALOG;
  // A column name valid as a channel can still be too long as a rollup column (`<column>_count`).
  const problems = catalogProblems(catalog);
  if (problems.length === 0) problems.push(...rollupColumnProblems(catalog));
  if (problems.length > 0) throw new EspError('ESP_CATALOG_INVALID', `channel catalog invalid:\n  - ${problems.join('\n  - ')}`);
  const topic = parseTopicTemplate(config.mqtt.topicTemplate);
  const abort = new AbortController();
  let fatalResolve: (e: EspError) => void = () => undefined;
  const fatal = new Promise<EspError>((r) => (fatalResolve = r));

  // State behind /readyz and /startupz (debounce rules in lifecycle/readiness.ts).
  let ingress: MqttIngress | undefined;
  let batcher: Batcher<MessageWork> | undefined;
  let storage: StorageReport | undefined;
  const readiness = new ReadinessState({
    bufferMaxRows: config.batch.bufferMaxRows,
    bufferHighWaterRatio: config.probes.readyBufferHighWaterRatio,
    clock: () => performance.now(),
    mqttNotActive: () => (!ingress ? 'mqtt: not started' : ingress.ready ? undefined : (ingress.notReadyReason ?? 'mqtt: not ready')),
  });
  const onDbCheck = (ok: boolean, detail?: string) => readiness.databaseCheck(ok, detail);
  const onSinkState = (ok: boolean, reason?: string) => readiness.commit(ok, reason);

  metrics.probes.ready = () => (readiness.reasons().length === 0 ? 1 : 0);
  // One notion of "database down", the debounced one /readyz uses: a passing reachability check
  // does not hide writes that keep failing (EspIngestDatabaseDown reads this).
  metrics.probes.databaseUp = () => (readiness.reasons().some((r) => r.code === 'database_unreachable' || r.code === 'database_writes_failing') ? 0 : 1);

  // 1. Sidecar first, so probes answer during start-up.
  const watchdog = new EventLoopWatchdog(config.probes.livezMaxEventLoopBlockMs);
  watchdog.start();
  const sidecar = new Sidecar({
    registry: metrics.registry,
    readiness: {
      reasons: () => readiness.reasons(),
      startupPending: () => readiness.startupPending(),
      detail: () => ({ storage: storage ?? null, rowsBuffered: batcher?.bufferedRows ?? 0, unacknowledged: ingress?.heldAcks() ?? 0 }),
    },
    liveness: { maxBlockMs: config.probes.livezMaxEventLoopBlockMs, blocked: () => watchdog.tracker.blocked() },
  });
  const httpPort = await sidecar.start(config.http.port, config.http.host).catch((err: unknown) => {
    watchdog.stop();
    throw err;
  });
  log.info({ event: 'sidecar_listening', port: httpPort }, 'sidecar listening: /livez /readyz /startupz /metrics');

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
  let connected = false;
  const unavailable = new ErrorLogThrottle(undefined, clock);
  for (let attempt = 1; ; attempt++) {
    try {
      if (!connected) {
        const { rows } = await pool.query<{ v: string }>(`SELECT current_setting('server_version') AS v`);
        connected = true;
        log.info({ event: 'database_connected', database: redactUrl(config.databaseUrl), serverVersion: rows[0]?.v }, 'database connected');
      }
      const schema = await migrate(pool, catalog, log, config.storage);
      storage = schema.storage;
      log.info({ event: 'migrations_applied', applied: schema.applied }, `schema up to date (${schema.applied.length} migrations applied now)`);
      break;
    } catch (err) {
      const cls = classifyDbError((err as { cause?: unknown }).cause ?? err);
      if (err instanceof EspError && err.code === 'ESP_DB_MIGRATION_FAILED' && cls !== 'retry') {
        watchdog.stop();
        await Promise.allSettled([sidecar.stop(), pool.end()]);
        throw err;
      }
      onDbCheck(false, `database: ${(err as Error).message}`);
      const delay = backoffMs(attempt, config.retryMaxDelayMs);
      warnThrottled(log, unavailable, err, { event: 'database_unavailable', attempt, delayMs: delay }, 'database not reachable at start-up; retrying', () => 'database still not reachable at start-up; retrying');
      await new Promise((r) => setTimeout(r, delay));
    }
  }
  readiness.migrationsApplied();
  onDbCheck(true);
  for (const mode of STORAGE_MODES) metrics.storageMode.set({ mode }, mode === storage?.mode ? 1 : 0);
  for (const feature of FEATURES) {
    for (const state of FEATURE_STATES) metrics.storageFeature.set({ feature, state }, storage?.features[feature].state === state ? 1 : 0);
  }
  log.info({ event: 'storage_mode', storage: storage?.mode }, `storage mode: ${storage?.mode}`);
  // Reachability between batches, on a connection of its own (the sink reports its own failures
  // through onSinkState).
  const dbProbe = new DbProbe({
    newClient: () => new pg.Client({ connectionString: config.databaseUrl, connectionTimeoutMillis: config.db.connectTimeoutMs, keepAlive: true, application_name: 'esp-ingest-probe' }),
    onResult: onDbCheck,
  });
  dbProbe.start();

  // 3. Sink and batcher.
  const writer = new TelemetryWriter(pool, catalog, config.db.statementTimeoutMs * 2, config.db.statementTimeoutMs);
  const committer = new Committer({ writer, catalog, metrics, log: log.child({ component: 'sink' }), retryMaxDelayMs: config.retryMaxDelayMs, signal: abort.signal, clock, onDbState: onSinkState });
  const sequence = new SequenceStore({ pool, width: config.sequence.wrapBits, metrics, log: log.child({ component: 'sequence' }), retryMaxDelayMs: config.retryMaxDelayMs, signal: abort.signal, clock });
  const b = new Batcher<MessageWork>({
    maxRows: config.batch.maxRows,
    flushIntervalMs: config.batch.flushIntervalMs,
    bufferMaxRows: config.batch.bufferMaxRows,
    maxConcurrentFlushes: config.batch.flushConcurrency,
    flush: async (items) => {
      await committer.commit(items);
      // Freshness per well: every reading of a message is of its topic's well.
      for (const { data, receivedAtMs } of items) {
        const first = data.readings[0];
        if (first && !data.retain) metrics.wellCommitted(first.wellId, receivedAtMs, data.readings.length);
      }
    },
    afterCommit: async (items) => void (await sequence.record(items.map((i) => i.data))),
    lanes: backfillLanes(config.batch.backfillAfterS, config.batch.bufferMaxRows, clock, (rows) => metrics.backfillReadingsCommitted.inc(rows)),
    onBuffered: (rows) => {
      metrics.rowsBuffered.set(rows);
      readiness.buffered(rows);
    },
  });
  batcher = b;
  metrics.probes.backfillRowsBuffered = () => b.backfillRows;
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
    const brokerLog = log.child({ component: 'embedded-broker' });
    embedded = await startEmbeddedBroker(config.broker.port, config.broker.host, {
      onPublishRefused: (reason, refusedTopic, clientId) => {
        metrics.embeddedBrokerPublishesRefused.inc({ reason });
        brokerLog.warn({ event: 'publish_refused', reason, topic: refusedTopic, clientId }, 'embedded broker refused a PUBLISH and closed the publisher\'s connection (it keeps the message unacknowledged)');
      },
    });
    mqttConfig = { ...config.mqtt, url: embeddedBrokerUrl(config.broker.host, embedded.port), protocolVersion: 4 };
    log.info({ event: 'embedded_broker_listening', port: embedded.port, host: config.broker.host }, 'embedded MQTT broker (aedes, MQTT 3.1.1) listening');
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

  // Readiness changes are logged as they happen (checked every 250 ms); the summary line counts.
  let lastCodes: string | undefined;
  const readyWatch = setInterval(() => {
    const reasons = readiness.reasons();
    const codes = reasons.map((r) => r.code).join(',');
    if (codes === lastCodes || (!readiness.started && lastCodes === undefined && codes !== '')) return;
    lastCodes = codes;
    if (codes === '') log.info({ event: 'ready' }, 'ready');
    else log.warn({ event: 'not_ready', ...reasonsBody(reasons) }, `not ready: ${codes}`);
  }, 250);
  readyWatch.unref();
  const summary = new SummaryLog({
    log,
    intervalS: config.log.summaryIntervalS,
    totals: async () => {
      const sum = async (m: { get(): Promise<{ values: { value: number; metricName?: string }[] }> }, name?: string) =>
        (await m.get()).values.filter((v) => name === undefined || v.metricName === name).reduce((n, v) => n + v.value, 0);
      return {
        messagesReceived: await sum(metrics.messagesReceived),
        readingsCommitted: await sum(metrics.readingsCommitted),
        readingsRejected: await sum(metrics.readingsRejected),
        duplicates: await sum(metrics.duplicates),
        flushRetries: await sum(metrics.flushRetries),
        backfillReadings: await sum(metrics.backfillReadingsCommitted),
        lagSecondsSum: await sum(metrics.commitLagSeconds, 'esp_ingest_device_to_commit_lag_seconds_sum'),
        lagBatches: await sum(metrics.commitLagSeconds, 'esp_ingest_device_to_commit_lag_seconds_count'),
      };
    },
    gauges: () => ({
      rowsBuffered: b.bufferedRows,
      backfillRowsBuffered: b.backfillRows,
      unacknowledged: ing.heldAcks(),
      oldestUnacknowledgedAgeS: metrics.probes.oldestUnacknowledgedAgeSeconds(),
      notReady: readiness.reasons().map((r) => r.code),
    }),
  });
  await summary.start();

  let stopping: Promise<boolean> | undefined;
  const stop = (): Promise<boolean> =>
    (stopping ??= (async () => {
      log.info({ event: 'stopping', deadlineMs: config.shutdownDeadlineMs, rowsBuffered: b.bufferedRows, unacknowledged: ing.heldAcks() }, 'stopping');
      readiness.shuttingDown();
      summary.stop();
      clearInterval(readyWatch);
      const probeStopped = dbProbe.stop();
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
      await probeStopped;
      clearTimeout(deadline);
      watchdog.stop();
      log.info({ event: 'stopped', clean }, 'stopped');
      return clean;
    })());

  return { httpPort, mqttUrl: mqttConfig.url, metrics, stop, fatal };
}

/** Resolves when `signal` aborts (at once if it already has). */
function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));
}
