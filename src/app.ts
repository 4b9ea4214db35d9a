// Composition root: builds every component (constructors do no I/O), starts them in order
// (sidecar, database and schema, probe, embedded broker, MQTT last) pushing each onto a stack
// that a failed start unwinds, and returns the stop (MQTT intake first, last flush under a
// deadline, then disconnect). The message path itself is pipeline.ts.
import mqtt from 'mqtt';
import type pg from 'pg';
import type { EmbeddedBroker } from './broker/embedded-broker.ts';
import type { Config } from './config/config.ts';
import { type Channel, catalogProblems, DEFAULT_CATALOG } from './decode/catalog.ts';
import { parseTopicTemplate } from './decode/topic.ts';
import { EspError } from './errors.ts';
import { Sidecar } from './http/sidecar.ts';
import { SubscriptionCanary } from './ingress/canary.ts';
import type { InProcessIngress } from './ingress/in-process.ts';
import { type BrokerEndpoint, MqttIngress } from './ingress/mqtt-ingress.ts';
import { pubackGateProblem } from './ingress/puback-gate.ts';
import { drainUntilQuiet } from './ingress/shared-stop.ts';
import { BackupHealth } from './lifecycle/backup-health.ts';
import { DbProbe } from './lifecycle/db-probe.ts';
import { EventLoopWatchdog } from './lifecycle/liveness.ts';
import { ReadinessState } from './lifecycle/readiness.ts';
import { ReadinessLog } from './lifecycle/ready-log.ts';
import { StopStack } from './lifecycle/stop-stack.ts';
import { metricTotals, SummaryLog } from './lifecycle/summary.ts';
import type { Logger } from './log/logger.ts';
import { createMetrics, type Metrics } from './metrics/metrics.ts';
import { Pipeline } from './pipeline.ts';
import { untilMigrated } from './schema/connect.ts';
import { exportStorageReport } from './schema/report.ts';
import { RestoreWatch } from './schema/restore-state.ts';
import { rollupColumnProblems } from './schema/rollup-columns.ts';
import { SequenceStore } from './sequence/store.ts';
import { Committer } from './sink/committer.ts';
import { createPool, probeClient } from './sink/connections.ts';
import { TelemetryWriter } from './sink/writer.ts';

export interface AppDeps {
  readonly config: Config;
  readonly log: Logger;
  readonly metrics?: Metrics;
  readonly catalog?: readonly Channel[];
  readonly clock?: () => number;
  readonly connectMqtt?: typeof mqtt.connect;
  /** Aborts the start (a signal during start-up): the wait for the database ends at once. */
  readonly signal?: AbortSignal;
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
 * @throws EspError ESP_CATALOG_INVALID, ESP_TOPIC_TEMPLATE_INVALID, ESP_MQTTJS_UNSUPPORTED (and with
 *   BROKER=embedded ESP_AEDES_UNSUPPORTED) before
 *   anything starts; ESP_DB_MIGRATION_FAILED when the database refuses a migration; ESP_ABORTED
 *   when `deps.signal` aborts the start. What had started is stopped first.
 */
export async function startApp(deps: AppDeps): Promise<App> {
  const { config, log } = deps;
  const clock = deps.clock ?? Date.now;
  const catalog = deps.catalog ?? DEFAULT_CATALOG;
  checkBeforeStart(catalog);
  if (config.broker.mode === 'embedded') await checkEmbeddedBroker();
  const topic = parseTopicTemplate(config.mqtt.topicTemplate);
  const shutdown = new AbortController();
  let onFatal: (e: EspError) => void = () => undefined;
  const fatal = new Promise<EspError>((resolve) => (onFatal = resolve));

  // Build.
  const readiness = new ReadinessState({
    bufferMaxRows: config.batch.bufferMaxRows,
    bufferHighWaterRatio: config.probes.readyBufferHighWaterRatio,
    clock: () => performance.now(),
  });
  const metrics = deps.metrics ?? createMetrics({ wellsMax: config.metrics.wellsMax, clock, readiness });
  const watchdog = new EventLoopWatchdog(config.probes.livezMaxEventLoopBlockMs);
  const pool = createPool(config, (err) => {
    metrics.dbPoolErrors.inc();
    // pg-pool attaches the whole client to the error (`err.client`); the logger's err serializer
    // keeps only the error's own fields.
    log.warn({ err }, 'idle database connection failed; it was removed from the pool');
  });
  const dbProbe = new DbProbe({ newClient: () => probeClient(config), onResult: (ok, detail) => readiness.databaseCheck(ok, detail) });
  const writer = new TelemetryWriter(pool, catalog, config.db.statementTimeoutMs * 2, config.db.statementTimeoutMs);
  const committer = new Committer({
    writer,
    catalog,
    metrics,
    log: log.child({ component: 'sink' }),
    retryMaxDelayMs: config.retryMaxDelayMs,
    signal: shutdown.signal,
    clock,
    onDbState: (ok, reason) => readiness.commit(ok, reason),
  });
  const sequence = new SequenceStore({
    pool,
    width: config.sequence.wrapBits,
    metrics,
    log: log.child({ component: 'sequence' }),
    retryMaxDelayMs: config.retryMaxDelayMs,
    signal: shutdown.signal,
    clock,
  });
  const restoreWatch = new RestoreWatch({ db: pool, onChange: (detail) => readiness.restoreInProgress(detail), log });
  const backupHealth = new BackupHealth({ db: pool, metrics, log: log.child({ component: 'backup-health' }), infoFile: config.backup.infoFile });
  const sink = restoreWatch.holding(committer, shutdown.signal);
  const pipeline = new Pipeline({
    batch: config.batch,
    maxWaiting: config.mqtt.receiveMaximum,
    topic,
    decode: { catalog, ...config.decode },
    sink,
    sequence,
    clock,
    metrics,
    log,
    onBuffered: (rows) => readiness.buffered(rows),
  });
  // On an external broker, a canary proves the subscription delivers (never ready while deaf).
  const canary =
    config.broker.mode === 'external'
      ? new SubscriptionCanary({ config: config.mqtt, log: log.child({ component: 'canary' }), onState: (deaf) => readiness.canary(deaf), onFatal })
      : undefined;
  let ingress: MqttIngress | InProcessIngress = new MqttIngress({
    connect: deps.connectMqtt ?? mqtt.connect,
    config: config.mqtt,
    filter: topic.filter,
    log: log.child({ component: 'ingress' }),
    metrics,
    clock,
    onFatal,
    onState: (inactive) => readiness.mqtt(inactive),
    retryMaxDelayMs: config.retryMaxDelayMs,
    ...(canary ? { canary } : {}),
  });
  const sidecar = new Sidecar({
    registry: metrics.registry,
    readiness: {
      reasons: () => readiness.reasons(),
      startupPending: () => readiness.startupPending(),
      detail: () => ({ storage: readiness.storage ?? null, rowsBuffered: pipeline.bufferedRows, unacknowledged: ingress.heldAcks() }),
    },
    liveness: { maxBlockMs: config.probes.livezMaxEventLoopBlockMs, blocked: () => watchdog.tracker.blocked() },
  });
  const readinessLog = new ReadinessLog(readiness, log);
  const summary = new SummaryLog({
    log,
    intervalS: config.log.summaryIntervalS,
    totals: () => metricTotals(metrics),
    gauges: () => ({
      rowsBuffered: pipeline.bufferedRows,
      backfillRowsBuffered: pipeline.backfillRows,
      unacknowledged: ingress.heldAcks(),
      oldestUnacknowledgedAgeS: metrics.oldestUnacknowledgedAgeSeconds(),
      notReady: readiness.reasons().map((r) => r.code),
    }),
  });

  // Start in order; a failure stops what had started, newest first.
  const started = new StopStack();
  let httpPort: number;
  let endpoint: BrokerEndpoint = config.mqtt;
  let embedded: EmbeddedBroker | undefined;
  try {
    watchdog.start();
    started.push(() => watchdog.stop());
    httpPort = await sidecar.start(config.http.port, config.http.host);
    started.push(() => sidecar.stop());
    log.info({ event: 'sidecar_listening', port: httpPort }, 'sidecar listening: /livez /readyz /startupz /metrics');
    started.push(() => pool.end());
    const onDbCheck = (ok: boolean, detail?: string) => readiness.databaseCheck(ok, detail);
    const startSignal = deps.signal ? AbortSignal.any([deps.signal, shutdown.signal]) : shutdown.signal;
    const { storage } = await untilMigrated({
      pool,
      databaseUrl: config.databaseUrl,
      catalog,
      storage: config.storage,
      log,
      retryMaxDelayMs: config.retryMaxDelayMs,
      clock,
      onDbCheck,
      signal: startSignal,
      onRestoreHeld: (detail) => readiness.migrationsHeld(detail),
    });
    readiness.migrationsApplied(storage);
    exportStorageReport(metrics, storage);
    log.info({ event: 'storage_mode', storage: storage.mode }, `storage mode: ${storage.mode}`);
    dbProbe.start();
    started.push(() => dbProbe.stop());
    restoreWatch.start();
    started.push(() => restoreWatch.stop());
    backupHealth.start();
    started.push(() => backupHealth.stop());
    if (config.broker.mode === 'embedded') {
      // Loaded only here: aedes, jose and the broker's code cost an external-broker service about
      // 25 MB of resident memory for nothing.
      const [{ startConfiguredBroker }, { InProcessIngress }] = await Promise.all([import('./broker/configured.ts'), import('./ingress/in-process.ts')]);
      const broker = await startConfiguredBroker(config, { metrics, log: log.child({ component: 'embedded-broker' }), clock });
      embedded = broker.broker;
      started.push(() => embedded?.close());
      endpoint = { url: broker.url, protocolVersion: 4 };
      log.info({ event: 'embedded_broker_listening', port: embedded.port, host: config.broker.host }, 'embedded MQTT broker (aedes, MQTT 3.1.1) listening');
      // Messages are taken from the embedded broker in-process; each device's PUBACK waits for commit.
      ingress = new InProcessIngress({
        aedes: embedded.aedes,
        topic,
        log: log.child({ component: 'ingress' }),
        metrics,
        clock,
        onState: (inactive) => readiness.mqtt(inactive),
      });
    }
    // MQTT last: messages flow only when everything behind them is ready.
    ingress.start(pipeline.receive);
    started.push(() => ingress.close());
    started.push(() => canary?.stop());
    readinessLog.start();
    await summary.start();
  } catch (err) {
    await started.unwind();
    throw err;
  }

  let stopping: Promise<boolean> | undefined;
  const running: Running = {
    config,
    log,
    readiness,
    summary,
    readinessLog,
    dbProbe,
    restoreWatch,
    backupHealth,
    canary,
    ingress,
    pipeline,
    embedded,
    sidecar,
    pool,
    watchdog,
    shutdown,
  };
  const stop = (): Promise<boolean> => (stopping ??= stopInOrder(running));

  return { httpPort, mqttUrl: endpoint.url, metrics, stop, fatal };
}

/** What a started service holds, for its stop. */
interface Running {
  readonly config: Config;
  readonly log: Logger;
  readonly readiness: ReadinessState;
  readonly summary: SummaryLog;
  readonly readinessLog: ReadinessLog;
  readonly dbProbe: DbProbe;
  readonly restoreWatch: RestoreWatch;
  readonly backupHealth: BackupHealth;
  readonly canary: SubscriptionCanary | undefined;
  readonly ingress: MqttIngress | InProcessIngress;
  readonly pipeline: Pipeline;
  readonly embedded: EmbeddedBroker | undefined;
  readonly sidecar: Sidecar;
  readonly pool: pg.Pool;
  readonly watchdog: EventLoopWatchdog;
  /** Aborted at SHUTDOWN_DEADLINE_MS: ends the write in progress and the retries. */
  readonly shutdown: AbortController;
}

/**
 * The stop order: intake off (leaving a shared group first), last flush and its PUBACKs under
 * SHUTDOWN_DEADLINE_MS, disconnect, sidecar, pool.
 * @returns true when everything received was committed and acknowledged in time.
 */
async function stopInOrder(r: Running): Promise<boolean> {
  r.log.info(
    { event: 'stopping', deadlineMs: r.config.shutdownDeadlineMs, rowsBuffered: r.pipeline.bufferedRows, unacknowledged: r.ingress.heldAcks() },
    'stopping',
  );
  r.readiness.shuttingDown();
  r.summary.stop();
  r.readinessLog.stop();
  const probeStopped = r.dbProbe.stop();
  r.restoreWatch.stop();
  // Not awaited: a reading in flight ends with the pool, and catches its own error.
  void r.backupHealth.stop();
  r.canary?.stop();
  // The deadline ends the write in progress (its connection is destroyed) and the retries.
  const deadline = setTimeout(() => r.shutdown.abort(), r.config.shutdownDeadlineMs);
  let clean = true;
  try {
    // In MQTT_SHARED_GROUP: leave the group, then take in what the broker had dealt us.
    const member = r.ingress;
    if (member instanceof MqttIngress && (await member.leaveSharedGroup(r.shutdown.signal))) {
      await drainUntilQuiet({ drain: () => r.pipeline.drain(), held: () => member.heldAcks(), quietMs: SHARED_LEAVE_QUIET_MS, signal: r.shutdown.signal });
    }
    r.ingress.stopIntake();
    await r.pipeline.drain();
  } catch (err) {
    clean = false;
    r.log.error(
      { err, rowsBuffered: r.pipeline.bufferedRows },
      'shutdown deadline passed: uncommitted messages were not acknowledged; the broker will redeliver them',
    );
  }
  await r.ingress.close();
  await r.embedded?.close();
  await r.sidecar.stop();
  // pool.end() waits for checked-out connections; one stuck on a hung server (a reachability
  // probe, up to query_timeout) must not hold the exit past the deadline.
  await Promise.race([r.pool.end().catch(() => undefined), aborted(r.shutdown.signal)]);
  await probeStopped;
  clearTimeout(deadline);
  r.watchdog.stop();
  r.log.info({ event: 'stopped', clean }, 'stopped');
  return clean;
}

/** After leaving a shared group, how long nothing may arrive before its share is taken as empty. */
const SHARED_LEAVE_QUIET_MS = 300;

/** What must hold before anything starts: the channel catalog and the installed MQTT.js. */
function checkBeforeStart(catalog: readonly Channel[]): void {
  const channelProblems = catalogProblems(catalog);
  // A column name valid as a channel can still be too long as a rollup column (`<column>_count`).
  const problems = channelProblems.length > 0 ? channelProblems : rollupColumnProblems(catalog);
  if (problems.length > 0) throw new EspError('ESP_CATALOG_INVALID', `channel catalog invalid:\n  - ${problems.join('\n  - ')}`);
  const gate = pubackGateProblem();
  if (gate)
    throw new EspError(
      'ESP_MQTTJS_UNSUPPORTED',
      `the installed MQTT.js cannot hold PUBACKs until commit (${gate}); install the version package-lock.json pins (npm ci)`,
    );
}

/** BROKER=embedded: the installed aedes must let the commit gate hold devices' PUBACKs. */
async function checkEmbeddedBroker(): Promise<void> {
  const { commitGateProblem } = await import('./broker/commit-gate.ts');
  const problem = await commitGateProblem();
  if (problem)
    throw new EspError(
      'ESP_AEDES_UNSUPPORTED',
      `the installed aedes cannot hold devices' PUBACKs until commit (${problem}); install the version package-lock.json pins (npm ci)`,
    );
}

/** Resolves when `signal` aborts (at once if it already has). */
function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));
}
