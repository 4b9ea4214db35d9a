// Every metric of the service, on its own registry (never prom-client's global one). Names end
// in _total, _seconds, _bytes; labels are bounded sets (never a raw topic; well ids only up to
// METRICS_WELLS_MAX). The README's Metrics table lists each one (test/unit/metrics-contract.test.ts).
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export interface MetricsOptions {
  /** Wells given a freshness series (METRICS_WELLS_MAX, default 1000); later wells are counted, not tracked. */
  readonly wellsMax?: number;
  /** "Now" for the freshness gauge, milliseconds since the Unix epoch (default Date.now). */
  readonly clock?: () => number;
  /** Read at scrape for esp_ingest_ready and esp_ingest_database_up (both 0 without it). */
  readonly readiness?: { readyValue(): 0 | 1; databaseUpValue(): 0 | 1 };
}

/**
 * prom-client's default gauges that end in `_total`, which Prometheus reserves for counters
 * (`promtool check metrics` refuses them). Each is the sum of the per-type gauge of the same name
 * without `_total` (`sum(esp_ingest_nodejs_active_handles)`), so nothing is lost.
 */
const DEFAULT_GAUGES_NAMED_TOTAL = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/** A gauge set on the message path: `set` keeps the number, the scrape publishes it. */
export interface SampledGauge {
  set(value: number): void;
}

/**
 * A gauge the message path sets per message or per batch. prom-client's `set` allocates a labels
 * object and an entry on every call; this keeps a plain number and publishes it when scraped
 * (prom-client's `collect`), so a value set 40,000 times a second costs an assignment each time.
 */
function sampledGauge(name: string, help: string, registry: Registry): SampledGauge {
  let current = 0;
  new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      this.set(current);
    },
  });
  return {
    set(value) {
      current = value;
    },
  };
}

/** Builds the registry and metrics; one instance per service (tests build their own). */
export function createMetrics(options: MetricsOptions = {}) {
  const registry = new Registry();
  const p = 'esp_ingest_';
  collectDefaultMetrics({ register: registry, prefix: p });
  for (const name of DEFAULT_GAUGES_NAMED_TOTAL) registry.removeSingleMetric(p + name);
  const clock = options.clock ?? Date.now;
  const wellsMax = options.wellsMax ?? 1000;
  const readiness = options.readiness;
  /** Receive time (ms since the epoch) of the oldest message not yet committed, as last reported. */
  let oldestUnacknowledgedAtMs: number | undefined;
  const oldestUnacknowledgedAgeSeconds = () => (oldestUnacknowledgedAtMs === undefined ? 0 : Math.max(0, (clock() - oldestUnacknowledgedAtMs) / 1000));
  /** Well id → receive time (ms) of its newest committed reading; never shrinks (a silent well must stay visible). */
  const wellLastReceivedMs = new Map<string, number>();
  const sequenceMissing = new Counter({
    name: `${p}sequence_missing_readings_total`,
    help: 'Readings missing from a well\'s seq (gaps: sent by the device, never received), by well; wells beyond METRICS_WELLS_MAX are summed in the series with well_id=""',
    labelNames: ['well_id'] as const,
    registers: [registry],
  });
  const untrackedWellReadings = new Counter({
    name: `${p}untracked_well_readings_total`,
    help: 'Committed readings of wells beyond METRICS_WELLS_MAX, which have no freshness series',
    registers: [registry],
  });
  const storageMode = new Gauge({
    name: `${p}storage_mode`,
    help: '1 for the storage mode in use: timescaledb_compressed, timescaledb_hypertable or postgresql_table',
    labelNames: ['mode'] as const,
    registers: [registry],
  });
  const storageFeature = new Gauge({
    name: `${p}storage_feature`,
    help: '1 for the state of each storage feature (hypertable, compression, compression_policy, retention_policy, rollups): applied, unsupported, disabled or failed',
    labelNames: ['feature', 'state'] as const,
    registers: [registry],
  });
  return {
    registry,
    /** The batcher's oldest uncommitted message changed: its receive time (ms), or undefined when none. */
    oldestUnacknowledged(receivedAtMs: number | undefined): void {
      oldestUnacknowledgedAtMs = receivedAtMs;
    },
    /** Age of the oldest message received and not yet committed, s (0 when none). */
    oldestUnacknowledgedAgeSeconds,
    /**
     * Records that `readings` readings of `wellId`, received at `receivedAtMs` (ms since the
     * epoch), were committed (as new rows or duplicates). The first METRICS_WELLS_MAX wells seen
     * get a freshness series; the readings of any other well are counted in
     * esp_ingest_untracked_well_readings_total.
     */
    wellCommitted(wellId: string, receivedAtMs: number, readings: number): void {
      const last = wellLastReceivedMs.get(wellId);
      if (last !== undefined) {
        if (receivedAtMs > last) wellLastReceivedMs.set(wellId, receivedAtMs);
      } else if (wellLastReceivedMs.size < wellsMax) {
        wellLastReceivedMs.set(wellId, receivedAtMs);
      } else {
        untrackedWellReadings.inc(readings);
      }
    },
    /**
     * Counts `missing` readings of `wellId` lost in a seq gap; the well gets its own series when it
     * has a freshness series (the first METRICS_WELLS_MAX wells), else it is summed under well_id="".
     */
    sequenceMissing(wellId: string, missing: number): void {
      sequenceMissing.inc({ well_id: wellLastReceivedMs.has(wellId) ? wellId : '' }, missing);
    },
    sequenceGaps: new Counter({ name: `${p}sequence_gaps_total`, help: "Gaps found in wells' seq (rows in sequence_gaps)", registers: [registry] }),
    sequenceResets: new Counter({
      name: `${p}sequence_resets_total`,
      help: 'Seq fallbacks that are not gaps: a counter wrap (kind=wrap) or a device reboot (kind=reboot)',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
    brokerDroppedMessages: new Gauge({
      name: `${p}broker_dropped_messages`,
      help: 'Messages the broker says it dropped since it started (Mosquitto $SYS/broker/publish/messages/dropped: queue limits), all clients; absent when the broker does not publish it to us',
      registers: [registry],
    }),
    brokerStoredMessages: new Gauge({
      name: `${p}broker_stored_messages`,
      help: 'Messages the broker holds in its store (Mosquitto $SYS/broker/store/messages/count), all clients',
      registers: [registry],
    }),
    wellAgeSeconds: new Gauge({
      name: `${p}well_last_reading_age_seconds`,
      help: 'Seconds since esp-ingest received the newest committed reading of the well (service clock, computed at scrape)',
      labelNames: ['well_id'] as const,
      registers: [registry],
      collect() {
        const now = clock();
        for (const [wellId, at] of wellLastReceivedMs) this.set({ well_id: wellId }, Math.max(0, (now - at) / 1000));
      },
    }),
    wellsTracked: new Gauge({
      name: `${p}wells_tracked`,
      help: 'Wells with a freshness series (at most METRICS_WELLS_MAX)',
      registers: [registry],
      collect() {
        this.set(wellLastReceivedMs.size);
      },
    }),
    untrackedWellReadings,
    ready: new Gauge({
      name: `${p}ready`,
      help: '1 when GET /readyz would answer 200',
      registers: [registry],
      collect() {
        this.set(readiness?.readyValue() ?? 0);
      },
    }),
    messagesReceived: new Counter({
      name: `${p}messages_received_total`,
      help: 'MQTT PUBLISH packets received, by QoS',
      labelNames: ['qos'] as const,
      registers: [registry],
    }),
    retainedReceived: new Counter({
      name: `${p}retained_messages_received_total`,
      help: 'PUBLISH packets delivered with the retain flag: replays of a retained message, stored like any reading (deduplicated) but never moving freshness',
      registers: [registry],
    }),
    messagesAcked: new Counter({ name: `${p}messages_acknowledged_total`, help: 'PUBACKs sent after commit', registers: [registry] }),
    acksDropped: new Counter({
      name: `${p}pubacks_dropped_total`,
      help: 'PUBACKs not sent because the connection closed before commit (the broker redelivers)',
      registers: [registry],
    }),
    readingsCommitted: new Counter({ name: `${p}readings_committed_total`, help: 'Readings committed to esp_telemetry as new rows', registers: [registry] }),
    readingsRejected: new Counter({
      name: `${p}readings_rejected_total`,
      help: 'Readings (or whole messages) committed to rejected_messages, by reason',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    duplicates: new Counter({
      name: `${p}readings_duplicate_total`,
      help: 'Readings whose (well_id, ts) was already stored or earlier in the batch',
      registers: [registry],
    }),
    conflicts: new Counter({
      name: `${p}channel_value_conflicts_total`,
      help: 'Channel values of a duplicate reading that disagreed with the stored value (stored value kept)',
      registers: [registry],
    }),
    unknownFieldsDropped: new Counter({
      name: `${p}unknown_fields_dropped_total`,
      help: 'Fields not in the catalog dropped under UNKNOWN_FIELDS=drop',
      registers: [registry],
    }),
    valuesCoerced: new Counter({
      name: `${p}channel_values_coerced_total`,
      help: 'Channel values sent as numeric strings ("12.5") and stored as numbers',
      registers: [registry],
    }),
    batchRows: new Histogram({
      name: `${p}batch_rows`,
      help: 'Readings per flushed batch',
      buckets: [1, 10, 50, 100, 500, 1000, 2500, 5000, 10000, 50000],
      registers: [registry],
    }),
    flushSeconds: new Histogram({
      name: `${p}flush_duration_seconds`,
      help: 'Time to commit one batch (COPY + merge + commit), successful attempts',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    flushRetries: new Counter({
      name: `${p}flush_retries_total`,
      help: 'Failed flush attempts that will be retried, by SQLSTATE or network',
      labelNames: ['code'] as const,
      registers: [registry],
    }),
    decompressionLimit: new Counter({
      name: `${p}decompression_limit_total`,
      help: "Batch parts that hit TimescaleDB's decompression limit (SQLSTATE 53400): split in two, or (one reading) written with the limit lifted",
      labelNames: ['action'] as const,
      registers: [registry],
    }),
    backfillReadingsCommitted: new Counter({
      name: `${p}backfill_readings_committed_total`,
      help: 'Readings and rejections committed through the backfill lane (messages with a reading older than BACKFILL_AFTER)',
      registers: [registry],
    }),
    backfillRowsBuffered: sampledGauge(`${p}backfill_rows_buffered`, 'Backfill-lane readings held in memory (at most half of BUFFER_MAX_ROWS)', registry),
    rowsBuffered: sampledGauge(`${p}rows_buffered`, 'Readings held in memory, not yet committed', registry),
    messagesWaiting: sampledGauge(`${p}messages_waiting`, 'Messages received and held undecoded because the buffer is full', registry),
    unackedMessages: sampledGauge(`${p}unacknowledged_messages`, 'QoS 1 messages received and not yet PUBACKed', registry),
    oldestUnackedSeconds: new Gauge({
      name: `${p}oldest_unacknowledged_age_seconds`,
      help: 'Age of the oldest message received and not yet committed',
      registers: [registry],
      collect() {
        this.set(oldestUnacknowledgedAgeSeconds());
      },
    }),
    commitLagSeconds: new Histogram({
      name: `${p}device_to_commit_lag_seconds`,
      help: 'Device time of the newest reading in a batch to its commit',
      buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600, 86400],
      registers: [registry],
    }),
    dbUp: new Gauge({
      name: `${p}database_up`,
      help: '1 unless /readyz reports the database unreachable or its writes failing (computed at scrape)',
      registers: [registry],
      collect() {
        this.set(readiness?.databaseUpValue() ?? 0);
      },
    }),
    mqttUp: new Gauge({ name: `${p}mqtt_up`, help: '1 while connected to the broker with the subscription active', registers: [registry] }),
    sharedGroupMember: new Gauge({
      name: `${p}mqtt_shared_group_member`,
      help: '1 while subscribed in MQTT_SHARED_GROUP (its share of the messages comes here), 0 after leaving it on a graceful stop',
      labelNames: ['group'] as const,
      registers: [registry],
    }),
    mqttReconnects: new Counter({ name: `${p}mqtt_reconnects_total`, help: 'Reconnect attempts to the broker', registers: [registry] }),
    sessionResets: new Counter({
      name: `${p}mqtt_session_resets_total`,
      help: 'CONNACKs with sessionPresent=0 after the first connect: the broker forgot our session',
      registers: [registry],
    }),
    embeddedBrokerPublishesRefused: new Counter({
      name: `${p}embedded_broker_publishes_refused_total`,
      help: 'PUBLISH packets the embedded broker (BROKER=embedded) refused, by reason; never stored or delivered',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    embeddedBrokerSubscriptionsRefused: new Counter({
      name: `${p}embedded_broker_subscriptions_refused_total`,
      help: 'Subscription filters the embedded broker refused (SUBACK 0x80), by reason',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    embeddedBrokerConnectionsRefused: new Counter({
      name: `${p}embedded_broker_connections_refused_total`,
      help: 'Connections the embedded broker refused at CONNECT, or closed when their token expired, by reason',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    mqttConnectRefusals: new Counter({
      name: `${p}mqtt_connect_refusals_total`,
      help: "CONNACKs refusing the service's own connection, by reason (it keeps retrying with backoff)",
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    mqttClientCertExpiry: new Gauge({
      name: `${p}mqtt_client_certificate_expiry_timestamp_seconds`,
      help: 'notAfter of the MQTT client certificate (MQTT_CERT_FILE) as read at the last connect, Unix time',
      registers: [registry],
    }),
    dbPoolErrors: new Counter({
      name: `${p}database_idle_client_errors_total`,
      help: 'Errors on idle pooled connections (node-postgres #1324)',
      registers: [registry],
    }),
    walArchivedLast: new Gauge({
      name: `${p}wal_archived_last_timestamp_seconds`,
      help: 'When the server last archived a WAL file (pg_stat_archiver.last_archived_time, Unix seconds; 0 = never since the statistics were reset)',
      registers: [registry],
    }),
    walArchiveFailedLast: new Gauge({
      name: `${p}wal_archive_failed_last_timestamp_seconds`,
      help: 'When archiving a WAL file last failed (pg_stat_archiver.last_failed_time, Unix seconds; 0 = never)',
      registers: [registry],
    }),
    backupNewest: new Gauge({
      name: `${p}backup_newest_timestamp_seconds`,
      help: 'Stop time of the newest pgBackRest backup per stanza, from BACKUP_INFO_FILE (Unix seconds; 0 = none, or the file unreadable before any was seen)',
      labelNames: ['stanza'] as const,
      registers: [registry],
    }),
    storageMode,
    storageFeature,
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
