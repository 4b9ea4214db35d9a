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
      databasePasswordFile: undefined,
      broker: { mode: 'external', port: 1883, host: '127.0.0.1', passwordFile: undefined, jwt: undefined, tls: undefined },
      mqtt: {
        url: 'mqtt://127.0.0.1:1883',
        topicTemplate: 'esp/{site}/{well_id}/telemetry',
        clientId: 'esp-ingest',
        protocolVersion: 5,
        sessionExpiryS: 604_800,
        receiveMaximum: 16_384,
        keepaliveS: 30,
        sharedGroup: '',
        sharedStop: 'leave',
        brokerStats: 'mosquitto',
        sessionMarkerTopic: 'esp-ingest/session/{client_id}',
        username: undefined,
        password: undefined,
        passwordFile: undefined,
        tls: { caFile: undefined, certFile: undefined, keyFile: undefined },
      },
      http: { port: 9464, host: '0.0.0.0' },
      metrics: { wellsMax: 1_000 },
      backup: { infoFile: undefined },
      batch: { maxRows: 5_000, flushIntervalMs: 200, bufferMaxRows: 50_000, bufferMaxBytes: 16 * 1024 * 1024, flushConcurrency: 2, backfillAfterS: 3_600 },
      decode: {
        messageMaxBytes: 262_144,
        unknownFields: 'keep',
        tsMinMs: Date.parse('2000-01-01T00:00:00Z'),
        tsMaxFutureMs: 300_000,
        tsEpochUnit: 'ms',
        missingTs: 'reject',
        maxReadings: 10_000,
        wellIdChars: 'A-Za-z0-9._-',
      },
      db: { poolMax: 4, connectTimeoutMs: 5_000, statementTimeoutMs: 30_000, lockTimeoutMs: 10_000 },
      retryMaxDelayMs: 5_000,
      shutdownDeadlineMs: 20_000,
      log: { level: 'info', format: 'auto', summaryIntervalS: 60 },
      probes: { livezMaxEventLoopBlockMs: 10_000, readyBufferHighWaterRatio: 0.9 },
      sequence: { wrapBits: 'auto' },
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

  it('refuses MQTT_SHARED_GROUP on the embedded broker, which grants $share and delivers nothing', () => {
    expect(problemsOf({ DATABASE_URL: DB, BROKER: 'embedded', MQTT_SHARED_GROUP: 'ingest' })).toEqual([
      'MQTT_SHARED_GROUP ("ingest") needs a broker with shared subscriptions: the embedded broker (BROKER=embedded) has none; unset MQTT_SHARED_GROUP, or run several instances on Mosquitto, EMQX or HiveMQ (BROKER=external)',
    ]);
    expect(loadConfig({ DATABASE_URL: DB, BROKER: 'external', MQTT_SHARED_GROUP: 'ingest' }).mqtt.sharedGroup).toBe('ingest');
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

  it.each([
    ['HTTP_PORT', '0x2000'],
    ['BATCH_MAX_ROWS', '1e3'],
    ['BATCH_MAX_ROWS', '+5'],
    ['BATCH_MAX_ROWS', ' '.repeat(2)],
    ['DB_POOL_MAX', '5.0'],
    ['MQTT_SESSION_EXPIRY_S', '4294967296'],
  ])('integers are plain decimal digits in range: %s=%j is refused, saying the range', (name, value) => {
    const problems = problemsOf({ DATABASE_URL: DB, [name]: value });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(new RegExp(`^${name}: must be an integer between \\d+ and \\d+`));
  });

  it('says what a missing DATABASE_URL is, and how an integer or a group name must look', () => {
    const problems = problemsOf({ HTTP_PORT: 'abc', MQTT_SHARED_GROUP: 'a/b' });
    expect(problems).toEqual([
      'DATABASE_URL: required: the PostgreSQL/TimescaleDB URL, postgres://user:password@host:5432/database',
      'MQTT_SHARED_GROUP: letters, digits, _ and - only (no /, +, # or spaces: the group is one topic level)',
      'HTTP_PORT: must be an integer between 0 and 65535 (decimal digits), not "abc"',
    ]);
  });

  it('accepts integers with surrounding spaces and leading zeros', () => {
    expect(loadConfig({ DATABASE_URL: DB, HTTP_PORT: ' 08080 ' }).http.port).toBe(8080);
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

describe('loadConfig: URL settings (WHATWG URL parser)', () => {
  const PASSWORD = 'Mq#1secret';
  it.each([
    ['MQTT_URL', `mqtt://u:${PASSWORD}@127.0.0.1:18830`, /percent-encode special characters in the user name or password: # → %23/],
    ['MQTT_URL', 'mqtt://u#Mq1secret:x@127.0.0.1:18830', /"@" follows the host: percent-encode .*# → %23/],
    ['MQTT_URL', 'mqtt://u:Mq/1secret@127.0.0.1:18830', /percent-encode .*\/ → %2F/],
    ['MQTT_URL', 'mqtt://u:Mq?1secret@127.0.0.1:18830', /percent-encode .*\? → %3F/],
    ['MQTT_URL', 'mqtt://u:Mq%zzsecret@127.0.0.1:18830', /literal % as %25/],
    ['MQTT_URL', 'mqtt://127.0.0.1:99999', /port 99999 is out of range: use 1-65535/],
    ['MQTT_URL', 'mqtt://127.0.0.1:0', /port 0 cannot be connected to/],
    ['MQTT_URL', 'mqtt://127.0.0.1:18a', /port must be decimal digits/],
    ['MQTT_URL', 'mqtt://:1883', /has no host/],
    ['MQTT_URL', 'mqtt:///path', /has no host/],
    ['MQTT_URL', 'mqtt://bro ker:1883', /host contains characters/],
    ['MQTT_URL', 'mqtt://127.0.0.1:1883#frag', /"#" fragment/],
    ['MQTT_URL', 'http://broker', /scheme "http" is not allowed: use mqtt:\/\/, .* or wss:\/\//],
    ['MQTT_URL', 'broker:1883', /must be a URL starting with mqtt:\/\//],
    ['DATABASE_URL', 'postgres://u:pw@[bad/db', /IPv6 address has no closing "\]"/],
    ['DATABASE_URL', 'postgres://u:pw@[zz]:5432/db', /not a valid IPv6 address/],
    ['DATABASE_URL', 'postgres://u:p#w@db:5432/esp', /# → %23/],
    ['DATABASE_URL', 'postgres://u:pw@db:65536/esp', /port 65536 is out of range/],
    ['DATABASE_URL', 'postgres://u:pw@/esp', /has no host \(give one, or \?host= for a Unix socket\)/],
    ['DATABASE_URL', 'mysql://u:pw@db/esp', /scheme "mysql" is not allowed: use postgres:\/\/ or postgresql:\/\//],
  ])('%s=%s is refused with an actionable message', (name, value, message) => {
    const problems = problemsOf({ DATABASE_URL: DB, [name]: value });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(new RegExp(`^${name}: `));
    expect(problems[0]).toMatch(message);
  });

  it('never echoes the URL or its password, whatever is wrong with it', () => {
    const urls = [
      `mqtt://u:${PASSWORD}@127.0.0.1:18830`,
      `mqtt://u:${PASSWORD}@127.0.0.1:99999`,
      `mqtt://u:${PASSWORD}@[::1:18830`,
      `mqtt://u:${PASSWORD}@bro ker`,
      `mqtt://u:${PASSWORD}`,
    ];
    for (const url of urls) {
      let message = '';
      try {
        loadConfig({ DATABASE_URL: `${url.replace('mqtt:', 'postgres:')}/esp`, MQTT_URL: url });
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message).toMatch(/^invalid configuration/);
      expect(message).not.toContain('Mq');
      expect(message).not.toContain('secret');
      expect(message).not.toContain('127.0.0.1');
    }
  });

  it('reports every URL problem at once, with the other settings', () => {
    const problems = problemsOf({ DATABASE_URL: 'postgres://u:pw@[bad/db', MQTT_URL: 'mqtt://127.0.0.1:99999', HTTP_PORT: '0x2000' });
    expect(problems.map((p) => p.split(':')[0])).toEqual(['DATABASE_URL', 'MQTT_URL', 'HTTP_PORT']);
  });

  it.each([
    ['DATABASE_URL', 'postgresql://u:p%23w@db.example:5432/esp?sslmode=verify-full'],
    ['DATABASE_URL', 'postgres://u:pw@/esp?host=/var/run/postgresql'],
    ['DATABASE_URL', 'postgres://u:p@ss@[::1]:5432/esp'],
    ['MQTT_URL', 'mqtt://u:Mq%231@127.0.0.1:18830'],
    ['MQTT_URL', 'mqtts://broker.example'],
    ['MQTT_URL', 'wss://broker.example:443/mqtt'],
    ['MQTT_URL', 'tcp://[::1]:1883'],
  ])('accepts %s=%s', (name, value) => {
    expect(() => loadConfig({ DATABASE_URL: DB, [name]: value })).not.toThrow();
  });
});

describe('loadConfig: DATABASE_URL sslmode (node-postgres #2375)', () => {
  it.each(['disable', 'verify-full', 'verify-ca&sslrootcert=/etc/ca.pem'])('accepts sslmode=%s', (mode) => {
    expect(loadConfig({ DATABASE_URL: `postgres://u:S3cr3t-pw%23x@db/esp?sslmode=${mode}` }).databaseUrl).toContain('sslmode=');
  });
  it.each(['prefer', 'require', 'allow', 'no-verify', 'verify-ca'])('refuses sslmode=%s with one line that never repeats the URL', (mode) => {
    const problems = problemsOf({ DATABASE_URL: `postgres://u:S3cr3t-pw%23x@db.internal/esp?sslmode=${mode}` });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^DATABASE_URL: .*sslmode/);
    expect(problems[0]).not.toMatch(/S3cr3t|db\.internal/);
  });
});

describe('loadConfig: embedded broker authentication', () => {
  it('refuses an anonymous embedded broker on a non-loopback address, and auth without the service user', () => {
    expect(problemsOf({ DATABASE_URL: DB, BROKER: 'embedded', BROKER_HOST: '0.0.0.0' }).join('\n')).toMatch(/BROKER_HOST: .*loopback/);
    expect(problemsOf({ DATABASE_URL: DB, BROKER: 'embedded', BROKER_PASSWORD_FILE: '/etc/hostname' }).join('\n')).toMatch(/MQTT_USERNAME/);
    expect(
      loadConfig({ DATABASE_URL: DB, BROKER: 'embedded', BROKER_PASSWORD_FILE: '/etc/hostname', MQTT_USERNAME: 'esp-ingest', BROKER_HOST: '0.0.0.0' }).broker
        .passwordFile,
    ).toBe('/etc/hostname');
  });
  it('refuses half pairs, two sources of one secret, and algorithms outside ES256/EdDSA/RS256', () => {
    const problems = problemsOf({
      DATABASE_URL: DB,
      MQTT_PASSWORD: 'x',
      MQTT_PASSWORD_FILE: '/run/secrets/pw',
      MQTT_CERT_FILE: '/etc/hostname',
      BROKER_JWT_ALGORITHMS: 'ES256,HS256',
    });
    expect(problems.join('\n')).toMatch(/MQTT_PASSWORD and MQTT_PASSWORD_FILE: give one/);
    expect(problems.join('\n')).toMatch(/MQTT_CERT_FILE and MQTT_KEY_FILE go together/);
    expect(problems.join('\n')).toMatch(/BROKER_JWT_ALGORITHMS: .*never none or HS/);
  });
});
