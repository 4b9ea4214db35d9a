// Unit tests for loadConfig: defaults, every problem at once, and a frozen result.
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.ts';
import { ConfigError } from '../../src/errors.ts';

const DB = 'postgres://ingest@127.0.0.1:5432/esp';

/** The problems of a ConfigError thrown by loadConfig(env); fails the test if it does not throw one. */
function problemsOf(env: NodeJS.ProcessEnv): readonly string[] {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe('ESP_CONFIG_INVALID');
    return (err as ConfigError).problems;
  }
  throw new Error('loadConfig did not throw');
}

describe('loadConfig: defaults', () => {
  it('fills every default when only DATABASE_URL is given', () => {
    expect(loadConfig({ DATABASE_URL: DB })).toEqual({
      databaseUrl: DB,
      broker: { mode: 'external', port: 1883, host: '127.0.0.1' },
      mqtt: {
        url: 'mqtt://127.0.0.1:1883',
        topicTemplate: 'esp/{site}/{well_id}/telemetry',
        clientId: 'esp-ingest',
        protocolVersion: 5,
        sessionExpiryS: 604_800,
        receiveMaximum: 16_384,
        keepaliveS: 30,
        sharedGroup: '',
        username: undefined,
        password: undefined,
      },
      http: { port: 9464, host: '0.0.0.0' },
      metrics: { wellsMax: 1_000 },
      batch: { maxRows: 5_000, flushIntervalMs: 200, bufferMaxRows: 50_000, flushConcurrency: 2 },
      decode: {
        messageMaxBytes: 262_144,
        unknownFields: 'keep',
        tsMinMs: Date.parse('2000-01-01T00:00:00Z'),
        tsMaxFutureMs: 300_000,
        tsEpochUnit: 'ms',
        missingTs: 'reject',
        maxReadings: 10_000,
      },
      db: { poolMax: 4, connectTimeoutMs: 5_000, statementTimeoutMs: 30_000, lockTimeoutMs: 10_000 },
      retryMaxDelayMs: 5_000,
      shutdownDeadlineMs: 20_000,
      log: { level: 'info', format: 'auto', summaryIntervalS: 60 },
      probes: { livezMaxEventLoopBlockMs: 10_000, readyBufferHighWaterRatio: 0.9 },
      storage: { chunkIntervalS: 86_400, compressAfterS: 604_800, retentionS: null, rollups: ['1m', '1h'] },
    });
  });

  it('treats an empty variable as unset and ignores unrelated variables', () => {
    const c = loadConfig({ DATABASE_URL: DB, BATCH_MAX_ROWS: '', MQTT_TOPIC: '', PATH: '/usr/bin', HOME: '/root' });
    expect(c.batch.maxRows).toBe(5_000);
    expect(c.mqtt.topicTemplate).toBe('esp/{site}/{well_id}/telemetry');
  });

  it('parses and converts the values it is given', () => {
    const c = loadConfig({
      DATABASE_URL: 'postgresql://u:p@db/esp',
      MQTT_URL: 'mqtts://broker:8883',
      MQTT_TOPIC: 'plant/{well_id}',
      MQTT_PROTOCOL_VERSION: '4',
      MQTT_USERNAME: 'ingest',
      MQTT_PASSWORD: 's3cret',
      BATCH_MAX_ROWS: '100',
      BUFFER_MAX_ROWS: '100',
      UNKNOWN_FIELDS: 'drop',
      TS_MIN: '2010-01-01T02:00:00+02:00',
      TS_MAX_FUTURE_S: '60',
      HTTP_PORT: '0',
    });
    expect(c.mqtt).toMatchObject({ url: 'mqtts://broker:8883', topicTemplate: 'plant/{well_id}', protocolVersion: 4, username: 'ingest', password: 's3cret' });
    expect(c.batch).toMatchObject({ maxRows: 100, bufferMaxRows: 100 });
    expect(c.decode).toMatchObject({ unknownFields: 'drop', tsMinMs: Date.parse('2010-01-01T00:00:00Z'), tsMaxFutureMs: 60_000 });
    expect(c.http.port).toBe(0);
  });
});

describe('loadConfig: problems', () => {
  it('reports every problem at once', () => {
    const problems = problemsOf({
      DATABASE_URL: 'mysql://x',
      BATCH_MAX_ROWS: '0',
      MQTT_TOPIC: 'esp/{site}/telemetry',
      LOG_LEVEL: 'loud',
    });
    expect(problems).toHaveLength(4);
    expect(problems.some((p) => p.startsWith('DATABASE_URL: '))).toBe(true);
    expect(problems.some((p) => p.startsWith('BATCH_MAX_ROWS: '))).toBe(true);
    expect(problems.some((p) => p.startsWith('MQTT_TOPIC: ') && p.includes('{well_id}'))).toBe(true);
    expect(problems.some((p) => p.startsWith('LOG_LEVEL: '))).toBe(true);
  });

  it('reports BUFFER_MAX_ROWS < BATCH_MAX_ROWS alongside other problems', () => {
    const problems = problemsOf({ DATABASE_URL: 'nope', BATCH_MAX_ROWS: '1000', BUFFER_MAX_ROWS: '999' });
    expect(problems).toHaveLength(2);
    expect(problems).toContain('BUFFER_MAX_ROWS (999) must be >= BATCH_MAX_ROWS (1000)');
    expect(problems.some((p) => p.startsWith('DATABASE_URL: '))).toBe(true);
  });

  it('checks BUFFER_MAX_ROWS against the default BATCH_MAX_ROWS', () => {
    expect(problemsOf({ DATABASE_URL: DB, BUFFER_MAX_ROWS: '10' })).toEqual(['BUFFER_MAX_ROWS (10) must be >= BATCH_MAX_ROWS (5000)']);
  });

  it.each([
    ['DATABASE_URL', undefined],
    ['DATABASE_URL', 'http://db/esp'],
    ['MQTT_URL', 'http://broker'],
    ['MQTT_TOPIC', 'esp/+/{well_id}'],
    ['MQTT_TOPIC', 'esp/{well_id}/{well_id}'],
    ['MQTT_CLIENT_ID', 'has space'],
    ['MQTT_CLIENT_ID', 'x'.repeat(65)],
    ['MQTT_PROTOCOL_VERSION', '3'],
    ['MQTT_SHARED_GROUP', 'a/b'],
    ['MQTT_RECEIVE_MAXIMUM', '0'],
    ['BATCH_MAX_ROWS', '0'],
    ['BATCH_MAX_ROWS', 'many'],
    ['BATCH_MAX_ROWS', '1.5'],
    ['BATCH_MAX_ROWS', '-1'],
    ['HTTP_PORT', '70000'],
    ['MESSAGE_MAX_BYTES', '63'],
    ['UNKNOWN_FIELDS', 'ignore'],
    ['TS_MIN', 'yesterday'],
    ['TS_MIN', '2000-01-01T00:00:00'],
    ['RETRY_MAX_DELAY_MS', '9'],
    ['LOG_FORMAT', 'xml'],
  ])('reports %s=%s under its name', (name, value) => {
    const env: NodeJS.ProcessEnv = { DATABASE_URL: DB, [name]: value };
    if (value === undefined) delete env[name];
    const problems = problemsOf(env);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(new RegExp(`^${name}: `));
  });

  it('never echoes a secret it refused', () => {
    const problems = problemsOf({ DATABASE_URL: 'mysql://admin:hunter2@db/esp' });
    expect(problems.join('\n')).not.toContain('hunter2');
  });

  it('lists the problems in the error message, one per line', () => {
    let message = '';
    try {
      loadConfig({ DATABASE_URL: 'x', BATCH_MAX_ROWS: '0' });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message.split('\n').filter((l) => l.startsWith('  - '))).toHaveLength(2);
  });
});

describe('loadConfig: result', () => {
  it('is frozen, all the way down', () => {
    const c = loadConfig({ DATABASE_URL: DB });
    expect(Object.isFrozen(c)).toBe(true);
    for (const part of [c.mqtt, c.http, c.batch, c.decode, c.db, c.log]) expect(Object.isFrozen(part)).toBe(true);
    expect(() => {
      (c as { retryMaxDelayMs: number }).retryMaxDelayMs = 1;
    }).toThrow(TypeError);
    expect(() => {
      (c.batch as { maxRows: number }).maxRows = 1;
    }).toThrow(TypeError);
    expect(c.batch.maxRows).toBe(5_000);
  });

  it('does not change process.env', () => {
    const before = { ...process.env };
    loadConfig({ DATABASE_URL: DB });
    expect(process.env).toEqual(before);
  });
});
