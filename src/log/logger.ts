// pino logger: JSON in production, pretty on a terminal; secrets redacted.
import { pino, type Logger } from 'pino';

export type { Logger };

/** Paths never logged in clear: passwords in config and connection strings. */
const REDACT = ['password', '*.password', '*.*.password', 'databaseUrl', '*.databaseUrl', 'config.databaseUrl', 'mqtt.password'];

/**
 * @param format `auto` is pretty when stdout is a TTY, else JSON (one object per line).
 */
export function createLogger(level: string, format: 'auto' | 'json' | 'pretty'): Logger {
  const pretty = format === 'pretty' || (format === 'auto' && process.stdout.isTTY);
  return pino({
    level,
    base: { service: 'esp-ingest' },
    redact: { paths: REDACT, censor: '[redacted]' },
    ...(pretty ? { transport: { target: 'pino-pretty', options: { colorize: true } } } : {}),
  });
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
