// Error catalog: the few error classes callers branch on, each with a stable code.
// Wrap causes with `{ cause }` and say what a person can do about it.

/**
 * Stable codes; they appear in logs (`err.code`) and are safe to alert on. README.md's "Error codes"
 * table says, for each, when it is raised and what to do (test/unit/error-codes.test.ts keeps the
 * two in step).
 */
export const ERROR_CODES = [
  'ESP_CONFIG_INVALID',
  'ESP_CATALOG_INVALID',
  'ESP_TOPIC_TEMPLATE_INVALID',
  'ESP_DB_MIGRATION_FAILED',
  'ESP_MQTT_SUBSCRIBE_REFUSED',
  'ESP_MQTT_CLIENT_ID_TAKEN',
  'ESP_MQTTJS_UNSUPPORTED',
  'ESP_ABORTED',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** Base class: `code` is stable, `message` tells the reader what to do. */
export class EspError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** Configuration is wrong; `problems` lists every one found, one line each. */
export class ConfigError extends EspError {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super('ESP_CONFIG_INVALID', `invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.problems = problems;
  }
}

/** A retry loop was aborted (shutdown); the pending work was not committed. */
export class AbortedError extends EspError {
  constructor(what: string) {
    super('ESP_ABORTED', `${what} aborted by shutdown before it completed`);
  }
}
