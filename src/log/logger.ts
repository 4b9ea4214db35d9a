// pino logger: JSON in production, pretty on a terminal; secrets redacted. Lifecycle lines carry
// a fixed `event` code (LIFECYCLE_EVENTS) so that log queries need not parse messages.
import { type Logger, pino } from 'pino';
import type { Config } from '../config/config.ts';

export type { Logger };

/** Paths never logged in clear: passwords in config and connection strings. */
const REDACT = ['password', '*.password', '*.*.password', 'databaseUrl', '*.databaseUrl', 'config.databaseUrl', 'mqtt.password'];

/**
 * Values of the `event` field, one per lifecycle step, in the order a healthy run logs them
 * (`summary` every LOG_SUMMARY_INTERVAL_S between `ready` and `stopping`). Stable: queries and
 * alerts match on them.
 */
export const LIFECYCLE_EVENTS = [
  'starting',
  'config_loaded',
  'sidecar_listening',
  'database_unavailable',
  'database_connected',
  'storage_features',
  'migrations_applied',
  'storage_mode',
  'broker_anonymous',
  'password_file_loaded',
  'password_file_reload_failed',
  'embedded_broker_listening',
  'publish_refused',
  'subscribe_refused',
  'connection_refused',
  'broker_hook_error',
  'mqtt_refused',
  'mqtt_files_unreadable',
  'mqtt_connected',
  'subscribed',
  'ready',
  'not_ready',
  'summary',
  'signal',
  'stopping',
  'stopped',
  'start_failed',
  'fatal',
] as const;

/**
 * @param format `auto` is pretty when stdout is a TTY, else JSON (one object per line).
 */
export function createLogger(level: string, format: 'auto' | 'json' | 'pretty'): Logger {
  const pretty = format === 'pretty' || (format === 'auto' && process.stdout.isTTY);
  const options = {
    level,
    base: { service: 'esp-ingest' },
    redact: { paths: REDACT, censor: '[redacted]' },
    serializers: { err: serializeError, error: serializeError },
  };
  if (pretty) return pino({ ...options, transport: { target: 'pino-pretty', options: { colorize: true } } });
  // Written synchronously, line by line: a few lines a minute, and each is out before the next.
  // pino's default asynchronous stdout let `process.exit` flush the last line ("stopped") while
  // an earlier one ("stopping") was still being written, so the two came out swapped
  // (sonic-boom flushSync skips the write in flight).
  return pino(options, pino.destination({ dest: 1, sync: true }));
}

/**
 * Own fields of an error that may be logged. Anything else is dropped: pg-pool sets `err.client`
 * (the whole pg Client, cancel key included), and a Pool prints its connection string with the
 * password (brianc/node-postgres #1568); an MQTT.js client or an options object would carry
 * credentials too.
 */
const ERROR_FIELDS = [
  'code',
  'errno',
  'syscall',
  'address',
  'port',
  'severity',
  'detail',
  'hint',
  'routine',
  'where',
  'schema',
  'table',
  'column',
  'constraint',
  'reasonCode',
  'problems',
  'hook',
  'claim',
  'reason',
] as const;

/**
 * pino serializer for `err`: type, message, stack, the allow-listed fields (primitive values or
 * string arrays only), and `cause` / AggregateError `errors` the same way, at most 3 deep.
 */
export function serializeError(err: unknown, depth = 0): unknown {
  if (!(err instanceof Error)) return typeof err === 'object' && err !== null ? { message: String((err as { message?: unknown }).message ?? '[object]') } : err;
  const out: Record<string, unknown> = { type: err.name, message: err.message, stack: err.stack };
  const e = err as unknown as Record<string, unknown>;
  for (const key of ERROR_FIELDS) {
    const v = e[key];
    if (v === undefined) continue;
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out[key] = v;
    else if (Array.isArray(v) && v.every((x) => typeof x === 'string')) out[key] = v;
  }
  if (depth < 3 && err.cause !== undefined) out.cause = serializeError(err.cause, depth + 1);
  if (depth < 3 && err instanceof AggregateError) out.errors = err.errors.slice(0, 10).map((x) => serializeError(x, depth + 1));
  return out;
}

/** Removes the password from a URL for logging: `postgres://u:***@h/db`. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    // libpq also takes the password as a query parameter (postgres://h/db?password=…).
    for (const key of [...u.searchParams.keys()]) if (/pass|secret|token/i.test(key)) u.searchParams.set(key, '***');
    return u.toString();
  } catch {
    return '[unparseable url]';
  }
}

/**
 * The configuration as logged at start (`config_loaded`): `database` and `mqtt.url` without
 * passwords (pino's redaction would hide a `databaseUrl` key whole), the MQTT password hidden.
 */
export function redactConfig(config: Config): Record<string, unknown> {
  const { databaseUrl, ...rest } = config;
  return {
    database: redactUrl(databaseUrl),
    ...rest,
    mqtt: { ...config.mqtt, url: redactUrl(config.mqtt.url), password: config.mqtt.password === undefined ? undefined : '[redacted]' },
  };
}
