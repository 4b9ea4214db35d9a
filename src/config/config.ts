// Configuration: one zod schema over the environment, parsed once at start into a frozen object.
// Every problem is reported at once; nothing here touches the network.
import { z } from 'zod';
import { JWT_ALGORITHMS, type JwtAlgorithm, type JwtSettings } from '../broker/jwt-settings.ts';
import { DEFAULT_ID_CHARS, idCharsProblem, parseTopicTemplate } from '../decode/topic.ts';
import { ConfigError } from '../errors.ts';
import { formatInterval, parseDurationS, parseRollups, type StorageSettings } from '../schema/settings.ts';
import { isLoopback } from './loopback.ts';
import { sslmodeProblem, type UrlRules, urlProblems } from './url-check.ts';

/**
 * An integer setting: plain decimal digits within [min, max] (no sign, exponent, fraction or hex:
 * `1e3` and `0x2000` are refused rather than guessed at).
 */
const int = (min: number, max: number) =>
  z.string().transform((text, ctx) => {
    const t = text.trim();
    const n = Number(t);
    if (/^\d+$/.test(t) && n >= min && n <= max) return n;
    ctx.addIssue({ code: 'custom', message: `must be an integer between ${min} and ${max} (decimal digits), not "${text.slice(0, 40)}"` });
    return z.NEVER;
  });
/** A URL setting checked by config/url-check.ts; the message never repeats the URL. */
const url = (rules: UrlRules, what: string) =>
  z.string({ error: (i) => (i.input === undefined ? `required: ${what}` : `must be text: ${what}`) }).superRefine((text, ctx) => {
    for (const message of urlProblems(text, rules)) ctx.addIssue({ code: 'custom', message });
  });
/** A duration such as `7 days` (schema/settings.ts) within [minS, maxS], in seconds. */
const duration = (fallback: string, minS: number, maxS: number) =>
  z
    .string()
    .default(fallback)
    .transform((text, ctx) => durationS(text, minS, maxS, ctx, ''));
/** The same, or `off` (null). */
const durationOrOff = (fallback: string, minS: number, maxS: number) =>
  z
    .string()
    .default(fallback)
    .transform((text, ctx) => (text.trim().toLowerCase() === 'off' ? null : durationS(text, minS, maxS, ctx, ', or "off"')));
function durationS(text: string, minS: number, maxS: number, ctx: z.RefinementCtx, hint: string): number {
  const s = parseDurationS(text);
  if (typeof s === 'string') ctx.addIssue({ code: 'custom', message: `${s}${hint}` });
  else if (s < minS || s > maxS)
    ctx.addIssue({ code: 'custom', message: `"${text}" must be between ${formatInterval(minS)} and ${formatInterval(maxS)}${hint}` });
  else return s;
  return z.NEVER;
}

/**
 * Environment variables with their defaults. Names carry units; `.env.example` and the README
 * list the same table.
 */
const EnvSchema = z.object({
  DATABASE_URL: url({ schemes: ['postgres', 'postgresql'], hostParam: 'host' }, 'the PostgreSQL/TimescaleDB URL, postgres://user:password@host:5432/database'),
  BROKER: z.enum(['external', 'embedded']).default('external'),
  BROKER_PORT: int(0, 65_535).default(1883),
  BROKER_HOST: z.string().default('127.0.0.1'),
  MQTT_URL: url({ schemes: ['mqtt', 'mqtts', 'tcp', 'ssl', 'ws', 'wss'] }, 'the broker URL, mqtt://host:1883').default('mqtt://127.0.0.1:1883'),
  MQTT_TOPIC: z.string().default('esp/{site}/{well_id}/telemetry'),
  WELL_ID_CHARS: z
    .string()
    .default(DEFAULT_ID_CHARS)
    .superRefine((text, ctx) => {
      const problem = idCharsProblem(text);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    }),
  MQTT_CLIENT_ID: z
    .string()
    .max(64, 'at most 64 characters')
    .regex(/^[\w.-]+$/, 'letters, digits, _ . - only')
    .default('esp-ingest'),
  MQTT_PROTOCOL_VERSION: z.enum(['5', '4']).default('5'),
  MQTT_SESSION_EXPIRY_S: int(0, 0xffffffff).default(604_800),
  MQTT_RECEIVE_MAXIMUM: int(1, 65_535).default(16_384),
  MQTT_KEEPALIVE_S: int(5, 3_600).default(30),
  MQTT_SESSION_MARKER_TOPIC: z
    .string()
    .default('esp-ingest/session/{client_id}')
    .refine(
      (t) => t === 'off' || (t.includes('{client_id}') && !/[+#\u0000]/.test(t) && !t.startsWith('$')),
      'must contain {client_id}, no + # or NUL, not start with $ (or be "off")',
    ),
  MQTT_BROKER_STATS: z.enum(['mosquitto', 'off']).default('mosquitto'),
  MQTT_SHARED_GROUP: z
    .string()
    .regex(/^[\w-]*$/, 'letters, digits, _ and - only (no /, +, # or spaces: the group is one topic level)')
    .default(''),
  MQTT_SHARED_STOP: z.enum(['leave', 'stay']).default('leave'),
  MQTT_USERNAME: z.string().optional(),
  MQTT_PASSWORD: z.string().optional(),
  MQTT_PASSWORD_FILE: z.string().optional(),
  MQTT_CA_FILE: z.string().optional(),
  MQTT_CERT_FILE: z.string().optional(),
  MQTT_KEY_FILE: z.string().optional(),
  DATABASE_PASSWORD_FILE: z.string().optional(),
  BROKER_PASSWORD_FILE: z.string().optional(),
  BROKER_JWT_JWKS_FILE: z.string().optional(),
  BROKER_JWT_PUBLIC_KEY_FILE: z.string().optional(),
  BROKER_JWT_ALGORITHMS: z
    .string()
    .default(JWT_ALGORITHMS.join(','))
    .transform((text, ctx) => {
      const algs = text
        .split(',')
        .map((a) => a.trim())
        .filter(Boolean);
      const bad = algs.filter((a) => !(JWT_ALGORITHMS as readonly string[]).includes(a));
      if (algs.length > 0 && bad.length === 0) return algs as JwtAlgorithm[];
      ctx.addIssue({
        code: 'custom',
        message: `a comma-separated list of ${JWT_ALGORITHMS.join(', ')} (asymmetric only; never none or HS*), not "${text.slice(0, 40)}"`,
      });
      return z.NEVER;
    }),
  BROKER_JWT_ISSUER: z.string().optional(),
  BROKER_JWT_AUDIENCE: z.string().optional(),
  BROKER_JWT_CLOCK_TOLERANCE_S: int(0, 3_600).default(30),
  BROKER_JWT_WELL_CLAIM: z.string().default('sub'),
  BROKER_JWT_SITE_CLAIM: z.string().default('site'),
  BROKER_TLS_CERT_FILE: z.string().optional(),
  BROKER_TLS_KEY_FILE: z.string().optional(),
  BROKER_TLS_CA_FILE: z.string().optional(),
  HTTP_PORT: int(0, 65_535).default(9464),
  HTTP_HOST: z.string().default('0.0.0.0'),
  METRICS_WELLS_MAX: int(0, 100_000).default(1_000),
  BATCH_MAX_ROWS: int(1, 1_000_000).default(5_000),
  BATCH_FLUSH_INTERVAL_MS: int(1, 600_000).default(200),
  BUFFER_MAX_ROWS: int(1, 10_000_000).default(50_000),
  BUFFER_MAX_BYTES: int(64 * 1024, 4 * 1024 ** 3).default(16 * 1024 * 1024),
  FLUSH_CONCURRENCY: int(1, 8).default(2),
  BACKFILL_AFTER: durationOrOff('1 hour', 60, 100 * 366 * 86_400),
  MESSAGE_MAX_BYTES: int(64, 16 * 1024 * 1024).default(256 * 1024),
  UNKNOWN_FIELDS: z.enum(['keep', 'reject', 'drop']).default('keep'),
  TS_MIN: z.iso.datetime({ offset: true, error: 'must be an ISO-8601 time with Z or an offset, e.g. 2000-01-01T00:00:00Z' }).default('2000-01-01T00:00:00Z'),
  TS_MAX_FUTURE_S: int(0, 366 * 86_400).default(300),
  TS_EPOCH_UNIT: z.enum(['s', 'ms', 'us']).default('ms'),
  MISSING_TS: z.enum(['reject', 'stamp']).default('reject'),
  MESSAGE_MAX_READINGS: int(1, 1_000_000).default(10_000),
  SEQ_WRAP_BITS: z.enum(['auto', '8', '16', '32']).default('auto'),
  DB_POOL_MAX: int(1, 100).default(4),
  DB_CONNECT_TIMEOUT_MS: int(100, 600_000).default(5_000),
  DB_STATEMENT_TIMEOUT_MS: int(100, 3_600_000).default(30_000),
  DB_LOCK_TIMEOUT_MS: int(100, 3_600_000).default(10_000),
  RETRY_MAX_DELAY_MS: int(10, 600_000).default(5_000),
  SHUTDOWN_DEADLINE_MS: int(100, 600_000).default(20_000),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  LOG_FORMAT: z.enum(['auto', 'json', 'pretty']).default('auto'),
  LOG_SUMMARY_INTERVAL_S: int(0, 86_400).default(60),
  LIVEZ_MAX_EVENT_LOOP_BLOCK_MS: int(50, 600_000).default(10_000),
  READY_BUFFER_HIGH_WATER_RATIO: z
    .string()
    .default('0.9')
    .transform((text, ctx) => {
      const n = Number(text.trim());
      if (/^(\d+\.?\d*|\.\d+)$/.test(text.trim()) && n > 0 && n <= 1) return n;
      ctx.addIssue({ code: 'custom', message: `must be a decimal number above 0 and at most 1 (e.g. 0.9), not "${text.slice(0, 40)}"` });
      return z.NEVER;
    }),
  STORAGE_CHUNK_INTERVAL: duration('1 day', 3_600, 366 * 86_400),
  STORAGE_COMPRESS_AFTER: durationOrOff('7 days', 3_600, 100 * 366 * 86_400),
  STORAGE_RETENTION: durationOrOff('off', 86_400, 100 * 366 * 86_400),
  BACKUP_INFO_FILE: z.string().default(''),
  STORAGE_ROLLUPS: z
    .string()
    .default('1m,1h')
    .transform((text, ctx) => {
      const r = parseRollups(text);
      if (typeof r !== 'string') return r;
      ctx.addIssue({ code: 'custom', message: r });
      return z.NEVER;
    }),
});

/** Every environment variable the service reads (the schema's keys), for consistency checks. */
export const ENV_VARIABLE_NAMES: readonly string[] = Object.freeze(Object.keys(EnvSchema.shape));

/** Validated, frozen configuration; units are in the names. */
export interface Config {
  readonly databaseUrl: string;
  /** Read for each new database connection; wins over a password in DATABASE_URL. */
  readonly databasePasswordFile: string | undefined;
  /**
   * `external`: connect to MQTT_URL. `embedded`: start the aedes broker in-process on
   * BROKER_HOST:BROKER_PORT (MQTT 3.1.1: aedes has no MQTT 5) and take its messages in-process,
   * each device's PUBACK held until commit (ingress/in-process.ts).
   */
  readonly broker: {
    readonly mode: 'external' | 'embedded';
    readonly port: number;
    readonly host: string;
    /**
     * How the embedded broker authenticates clients. Both undefined: anonymous, allowed only on
     * a loopback BROKER_HOST. With either, the service connects as MQTT_USERNAME.
     */
    readonly passwordFile: string | undefined;
    /** BROKER_JWT_*: see JwtSettings. */
    readonly jwt: JwtSettings | undefined;
    /** PEM files of the embedded broker's TLS listener; with a CA, client certificates are required. */
    readonly tls: { readonly certFile: string; readonly keyFile: string; readonly caFile: string | undefined } | undefined;
  };
  readonly mqtt: {
    readonly url: string;
    readonly topicTemplate: string;
    readonly clientId: string;
    readonly protocolVersion: 4 | 5;
    readonly sessionExpiryS: number;
    readonly receiveMaximum: number;
    readonly keepaliveS: number;
    /** Topic of the session marker (`{client_id}` replaced), or `off`; see ingress/session-marker.ts. */
    readonly sessionMarkerTopic: string;
    /** `mosquitto`: read the broker's `$SYS` drop and store counters; `off`: do not subscribe. */
    readonly brokerStats: 'mosquitto' | 'off';
    /** Shared-subscription group; empty means a plain subscription. */
    readonly sharedGroup: string;
    /**
     * A graceful stop in a group: `leave` it (UNSUBSCRIBE, take in what was dealt, end the
     * session) or `stay` (keep subscription and session, as after a crash).
     */
    readonly sharedStop: 'leave' | 'stay';
    readonly username: string | undefined;
    readonly password: string | undefined;
    /** Read before every CONNECT (a refreshed token or rotated password needs no restart); wins over `password`. */
    readonly passwordFile: string | undefined;
    /** PEM files for mqtts://, read again before every CONNECT (a rotated certificate needs no restart). */
    readonly tls: { readonly caFile: string | undefined; readonly certFile: string | undefined; readonly keyFile: string | undefined };
  };
  readonly http: { readonly port: number; readonly host: string };
  /**
   * `infoFile`: a `pgbackrest info --output=json` written by the backup job after each backup;
   * the newest backup's stop time is exported from it. Undefined: not exported.
   */
  readonly backup: { readonly infoFile: string | undefined };
  /** Wells given an `esp_ingest_well_last_reading_age_seconds` series (bounds the label set). */
  readonly metrics: { readonly wellsMax: number };
  readonly batch: {
    readonly maxRows: number;
    readonly flushIntervalMs: number;
    readonly bufferMaxRows: number;
    /** BUFFER_MAX_BYTES: payload bytes of the messages held decoded. */
    readonly bufferMaxBytes: number;
    /** Batches committing at once, each on its own connection; PUBACKs keep arrival order. */
    readonly flushConcurrency: number;
    /** Messages with a reading older than this go in the backfill lane (seconds); null: one lane. */
    readonly backfillAfterS: number | null;
  };
  readonly decode: {
    readonly messageMaxBytes: number;
    readonly unknownFields: 'keep' | 'reject' | 'drop';
    readonly tsMinMs: number;
    readonly tsMaxFutureMs: number;
    /** Unit of an integer epoch `ts`. */
    readonly tsEpochUnit: 's' | 'ms' | 'us';
    /** A reading without `ts`: reject it (`missing_ts`) or stamp it with the receive time (marked in `extra.ts_source`). */
    readonly missingTs: 'reject' | 'stamp';
    readonly maxReadings: number;
    /** Characters a well id or site may hold: a regular-expression character class body. */
    readonly wellIdChars: string;
  };
  readonly db: {
    readonly poolMax: number;
    readonly connectTimeoutMs: number;
    readonly statementTimeoutMs: number;
    readonly lockTimeoutMs: number;
  };
  readonly retryMaxDelayMs: number;
  readonly shutdownDeadlineMs: number;
  readonly log: {
    readonly level: string;
    readonly format: 'auto' | 'json' | 'pretty';
    /** Seconds between summary lines; 0 = none. */
    readonly summaryIntervalS: number;
  };
  readonly probes: {
    /** /livez fails once the event loop is blocked longer than this. */
    readonly livezMaxEventLoopBlockMs: number;
    /** /readyz fails once the buffer holds this share of BUFFER_MAX_ROWS (ready again below half of that). */
    readonly readyBufferHighWaterRatio: number;
  };
  /** Per-well `seq` tracking (README "Sequence gaps"). */
  readonly sequence: {
    /** Counter width of the devices' seq, or `auto` (inferred per well from the highest seq). */
    readonly wrapBits: 8 | 16 | 32 | 'auto';
  };
  /** TimescaleDB lifecycle, applied at every start (README "Storage"). */
  readonly storage: StorageSettings;
}

/**
 * Parses the environment.
 * @throws ConfigError listing every problem (variable name: what is wrong), never the first only.
 */
export function loadConfig(env: NodeJS.ProcessEnv): Config {
  const clean = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = EnvSchema.safeParse(clean);
  const problems: string[] = parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join('.') || '(env)'}: ${i.message}`);
  // The cross-field checks run on each variable's own parse, so a problem elsewhere in the
  // environment does not hide them (every problem at once).
  const topic = EnvSchema.shape.MQTT_TOPIC.safeParse(clean.MQTT_TOPIC);
  if (topic.success) {
    try {
      parseTopicTemplate(topic.data);
    } catch (err) {
      problems.push(`MQTT_TOPIC: ${(err as Error).message}`);
    }
  }
  const batchMax = EnvSchema.shape.BATCH_MAX_ROWS.safeParse(clean.BATCH_MAX_ROWS);
  const bufferMax = EnvSchema.shape.BUFFER_MAX_ROWS.safeParse(clean.BUFFER_MAX_ROWS);
  if (batchMax.success && bufferMax.success && bufferMax.data < batchMax.data) {
    problems.push(`BUFFER_MAX_ROWS (${bufferMax.data}) must be >= BATCH_MAX_ROWS (${batchMax.data})`);
  }
  const bufferBytes = EnvSchema.shape.BUFFER_MAX_BYTES.safeParse(clean.BUFFER_MAX_BYTES);
  const messageBytes = EnvSchema.shape.MESSAGE_MAX_BYTES.safeParse(clean.MESSAGE_MAX_BYTES);
  if (bufferBytes.success && messageBytes.success && bufferBytes.data < messageBytes.data) {
    problems.push(`BUFFER_MAX_BYTES (${bufferBytes.data}) must be >= MESSAGE_MAX_BYTES (${messageBytes.data})`);
  }
  const concurrency = EnvSchema.shape.FLUSH_CONCURRENCY.safeParse(clean.FLUSH_CONCURRENCY);
  const poolMax = EnvSchema.shape.DB_POOL_MAX.safeParse(clean.DB_POOL_MAX);
  if (concurrency.success && poolMax.success && poolMax.data <= concurrency.data) {
    problems.push(
      `DB_POOL_MAX (${poolMax.data}) must be > FLUSH_CONCURRENCY (${concurrency.data}): one connection per committing batch plus one spare (the reachability check uses a connection of its own, outside the pool)`,
    );
  }
  const compressAfter = EnvSchema.shape.STORAGE_COMPRESS_AFTER.safeParse(clean.STORAGE_COMPRESS_AFTER);
  const retention = EnvSchema.shape.STORAGE_RETENTION.safeParse(clean.STORAGE_RETENTION);
  if (compressAfter.success && retention.success && compressAfter.data !== null && retention.data !== null && retention.data <= compressAfter.data) {
    problems.push(
      `STORAGE_RETENTION (${formatInterval(retention.data)}) must be longer than STORAGE_COMPRESS_AFTER (${formatInterval(compressAfter.data)}), or one of them off`,
    );
  }
  const dbUrl = EnvSchema.shape.DATABASE_URL.safeParse(clean.DATABASE_URL);
  if (dbUrl.success) {
    const problem = sslmodeProblem(dbUrl.data);
    if (problem) problems.push(`DATABASE_URL: ${problem}`);
  }
  problems.push(...brokerProblems(clean));
  const broker = EnvSchema.shape.BROKER.safeParse(clean.BROKER);
  const group = EnvSchema.shape.MQTT_SHARED_GROUP.safeParse(clean.MQTT_SHARED_GROUP);
  if (broker.success && group.success && broker.data === 'embedded' && group.data !== '') {
    // aedes 1.2 grants `$share/…` and then delivers nothing (moscajs/aedes #228).
    problems.push(
      `MQTT_SHARED_GROUP ("${group.data}") needs a broker with shared subscriptions: the embedded broker (BROKER=embedded) has none; unset MQTT_SHARED_GROUP, or run several instances on Mosquitto, EMQX or HiveMQ (BROKER=external)`,
    );
  }
  if (!parsed.success || problems.length > 0) throw new ConfigError(problems);
  const e = parsed.data;
  return deepFreeze({
    databaseUrl: e.DATABASE_URL,
    databasePasswordFile: e.DATABASE_PASSWORD_FILE,
    broker: {
      mode: e.BROKER,
      port: e.BROKER_PORT,
      host: e.BROKER_HOST,
      passwordFile: e.BROKER_PASSWORD_FILE,
      jwt:
        e.BROKER_JWT_JWKS_FILE || e.BROKER_JWT_PUBLIC_KEY_FILE
          ? {
              jwksFile: e.BROKER_JWT_JWKS_FILE,
              pemFile: e.BROKER_JWT_PUBLIC_KEY_FILE,
              algorithms: e.BROKER_JWT_ALGORITHMS,
              issuer: e.BROKER_JWT_ISSUER,
              audience: e.BROKER_JWT_AUDIENCE,
              clockToleranceS: e.BROKER_JWT_CLOCK_TOLERANCE_S,
              wellClaim: e.BROKER_JWT_WELL_CLAIM,
              siteClaim: e.BROKER_JWT_SITE_CLAIM,
            }
          : undefined,
      tls:
        e.BROKER_TLS_CERT_FILE && e.BROKER_TLS_KEY_FILE
          ? { certFile: e.BROKER_TLS_CERT_FILE, keyFile: e.BROKER_TLS_KEY_FILE, caFile: e.BROKER_TLS_CA_FILE }
          : undefined,
    },
    mqtt: {
      url: e.MQTT_URL,
      topicTemplate: e.MQTT_TOPIC,
      clientId: e.MQTT_CLIENT_ID,
      protocolVersion: e.MQTT_PROTOCOL_VERSION === '5' ? 5 : 4,
      sessionExpiryS: e.MQTT_SESSION_EXPIRY_S,
      receiveMaximum: e.MQTT_RECEIVE_MAXIMUM,
      keepaliveS: e.MQTT_KEEPALIVE_S,
      sharedGroup: e.MQTT_SHARED_GROUP,
      sharedStop: e.MQTT_SHARED_STOP,
      brokerStats: e.MQTT_BROKER_STATS,
      sessionMarkerTopic: e.MQTT_SESSION_MARKER_TOPIC,
      username: e.MQTT_USERNAME,
      password: e.MQTT_PASSWORD,
      passwordFile: e.MQTT_PASSWORD_FILE,
      tls: { caFile: e.MQTT_CA_FILE, certFile: e.MQTT_CERT_FILE, keyFile: e.MQTT_KEY_FILE },
    },
    http: { port: e.HTTP_PORT, host: e.HTTP_HOST },
    metrics: { wellsMax: e.METRICS_WELLS_MAX },
    backup: { infoFile: e.BACKUP_INFO_FILE.trim() === '' ? undefined : e.BACKUP_INFO_FILE },
    batch: {
      maxRows: e.BATCH_MAX_ROWS,
      flushIntervalMs: e.BATCH_FLUSH_INTERVAL_MS,
      bufferMaxRows: e.BUFFER_MAX_ROWS,
      bufferMaxBytes: e.BUFFER_MAX_BYTES,
      flushConcurrency: e.FLUSH_CONCURRENCY,
      backfillAfterS: e.BACKFILL_AFTER,
    },
    decode: {
      messageMaxBytes: e.MESSAGE_MAX_BYTES,
      unknownFields: e.UNKNOWN_FIELDS,
      tsMinMs: Date.parse(e.TS_MIN),
      tsMaxFutureMs: e.TS_MAX_FUTURE_S * 1000,
      tsEpochUnit: e.TS_EPOCH_UNIT,
      missingTs: e.MISSING_TS,
      maxReadings: e.MESSAGE_MAX_READINGS,
      wellIdChars: e.WELL_ID_CHARS,
    },
    db: {
      poolMax: e.DB_POOL_MAX,
      connectTimeoutMs: e.DB_CONNECT_TIMEOUT_MS,
      statementTimeoutMs: e.DB_STATEMENT_TIMEOUT_MS,
      lockTimeoutMs: e.DB_LOCK_TIMEOUT_MS,
    },
    retryMaxDelayMs: e.RETRY_MAX_DELAY_MS,
    shutdownDeadlineMs: e.SHUTDOWN_DEADLINE_MS,
    log: { level: e.LOG_LEVEL, format: e.LOG_FORMAT, summaryIntervalS: e.LOG_SUMMARY_INTERVAL_S },
    probes: { livezMaxEventLoopBlockMs: e.LIVEZ_MAX_EVENT_LOOP_BLOCK_MS, readyBufferHighWaterRatio: e.READY_BUFFER_HIGH_WATER_RATIO },
    sequence: { wrapBits: e.SEQ_WRAP_BITS === 'auto' ? 'auto' : (Number(e.SEQ_WRAP_BITS) as 8 | 16 | 32) },
    storage: {
      chunkIntervalS: e.STORAGE_CHUNK_INTERVAL,
      compressAfterS: e.STORAGE_COMPRESS_AFTER,
      retentionS: e.STORAGE_RETENTION,
      rollups: e.STORAGE_ROLLUPS,
    },
  });
}

/**
 * Checks of the secret and broker-authentication settings that span variables: pairs that go
 * together, and no anonymous embedded broker on a non-loopback address. Files are not opened
 * here: they are read when used (some again at every connect) and a failure names the setting.
 */
function brokerProblems(env: Record<string, string | undefined>): string[] {
  const problems: string[] = [];
  const pair = (a: string, b: string) => {
    if ((env[a] === undefined) !== (env[b] === undefined)) problems.push(`${a} and ${b} go together: set both or neither`);
  };
  pair('MQTT_CERT_FILE', 'MQTT_KEY_FILE');
  pair('BROKER_TLS_CERT_FILE', 'BROKER_TLS_KEY_FILE');
  if (env.BROKER_TLS_CA_FILE !== undefined && env.BROKER_TLS_CERT_FILE === undefined)
    problems.push('BROKER_TLS_CA_FILE needs BROKER_TLS_CERT_FILE and BROKER_TLS_KEY_FILE (the TLS listener)');
  if (env.BROKER_JWT_JWKS_FILE !== undefined && env.BROKER_JWT_PUBLIC_KEY_FILE !== undefined)
    problems.push('BROKER_JWT_JWKS_FILE and BROKER_JWT_PUBLIC_KEY_FILE: give one key source, not both');
  if (env.MQTT_PASSWORD !== undefined && env.MQTT_PASSWORD_FILE !== undefined) problems.push('MQTT_PASSWORD and MQTT_PASSWORD_FILE: give one, not both');
  const authOn = env.BROKER_PASSWORD_FILE !== undefined || env.BROKER_JWT_JWKS_FILE !== undefined || env.BROKER_JWT_PUBLIC_KEY_FILE !== undefined;
  if (env.BROKER === 'embedded') {
    if (!authOn && !isLoopback(env.BROKER_HOST ?? '127.0.0.1')) {
      problems.push(
        'BROKER_HOST: the embedded broker without BROKER_PASSWORD_FILE or BROKER_JWT_* takes anonymous clients, so it listens only on a loopback address (127.0.0.1, ::1); set up authentication to listen on another',
      );
    }
    if (authOn && env.MQTT_USERNAME === undefined)
      problems.push(
        'MQTT_USERNAME: with broker authentication on, the service connects to the embedded broker as this user (give it a line in BROKER_PASSWORD_FILE, or a token with it as the well claim)',
      );
  }
  return problems;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
