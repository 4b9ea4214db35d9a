// Logs of the real service (child process, LOG_FORMAT=json): one JSON line per lifecycle event with
// a fixed `event` code, in start-up and stop order; a summary line per LOG_SUMMARY_INTERVAL_S with
// stable keys, never a line per message; and the database and MQTT passwords (in DATABASE_URL,
// MQTT_URL and MQTT_PASSWORD) never in the output.
import mqtt from 'mqtt';
import { afterAll, expect, it } from 'vitest';
import { LIFECYCLE_EVENTS } from '../../src/log/logger.ts';
import { freePort, freshDatabase, metric, privateMosquitto, startService, Teardown, waitFor } from '../support/harness.ts';

const DB_PASSWORD = 's3cret-db-pw';
const MQTT_PASSWORD = 's3cret-mqtt-pw';
const MQTT_URL_PASSWORD = 's3cret-url-pw';
const SECRETS = [DB_PASSWORD, MQTT_PASSWORD, MQTT_URL_PASSWORD];
const MESSAGES = 300;

const t = new Teardown();
afterAll(() => t.run());

/** Every line of the output parsed as JSON (throws naming the line that is not). */
function jsonLines(output: string): Record<string, unknown>[] {
  return output
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        throw new Error(`not a JSON log line: ${l}`);
      }
    });
}

/** The URL with `password` set (the test cluster trusts local connections, so any password works). */
function withPassword(url: string, password: string): string {
  const u = new URL(url);
  u.username = u.username || 'postgres';
  u.password = password;
  return u.toString();
}

it('lifecycle events in order, summary lines with stable keys, no line per message, no password', async () => {
  const databaseUrl = withPassword(await freshDatabase(t), DB_PASSWORD);
  const broker = await privateMosquitto(t);
  const svc = await startService(t, {
    DATABASE_URL: databaseUrl,
    MQTT_URL: `mqtt://esp:${MQTT_URL_PASSWORD}@127.0.0.1:${broker.port}`,
    MQTT_USERNAME: 'esp',
    MQTT_PASSWORD,
    MQTT_CLIENT_ID: 'esp-ingest-logs',
    BATCH_FLUSH_INTERVAL_MS: '50',
    LOG_SUMMARY_INTERVAL_S: '1',
  });

  const pub = await mqtt.connectAsync(broker.url, { clientId: 'esp-logs-pub', protocolVersion: 5 });
  t.add(() => pub.endAsync(true));
  const t0 = Date.parse('2024-05-01T00:00:00Z');
  for (let i = 0; i < MESSAGES; i++) {
    await pub.publishAsync(`esp/3w/W-LOG-${i % 3}/telemetry`, JSON.stringify({ ts: new Date(t0 + i * 1000).toISOString(), intake_pressure_kpa: 8000 + i }), {
      qos: 1,
    });
  }
  await pub.publishAsync('esp/3w/W-LOG-0/telemetry', '{"ts":"yesterday","intake_pressure_kpa":1}', { qos: 1 });
  await waitFor('all committed', async () => (await metric(svc.httpPort, 'esp_ingest_readings_committed_total')) === MESSAGES);
  // The summaries' deltas add up to what was committed and rejected once an interval has passed.
  const summaries = () => jsonLines(svc.output()).filter((l) => l.event === 'summary');
  await waitFor(
    'summaries adding up to every reading',
    () => {
      const s = summaries();
      return s.reduce((n, l) => n + (l.readingsCommitted as number), 0) === MESSAGES && s.reduce((n, l) => n + (l.readingsRejected as number), 0) === 1;
    },
    20_000,
    100,
  );
  svc.proc.kill('SIGTERM');
  expect(await svc.exited).toBe(0);

  const output = svc.output();
  for (const secret of SECRETS) expect(output).not.toContain(secret);
  const lines = jsonLines(output);
  // Never per message: 301 messages, a few dozen lines at most.
  expect(lines.length).toBeLessThan(100);

  const events = lines.filter((l) => l.event !== undefined);
  for (const e of events) expect(LIFECYCLE_EVENTS).toContain(e.event);
  expect(events.map((l) => l.event).filter((e) => e !== 'summary')).toEqual([
    'starting',
    'config_loaded',
    'sidecar_listening',
    'database_connected',
    'storage_features',
    'migrations_applied',
    'storage_mode',
    'mqtt_connected',
    'subscribed',
    'ready',
    'signal',
    'stopping',
    'stopped',
  ]);
  for (const e of events) expect(e).toMatchObject({ level: expect.any(Number), time: expect.any(Number), service: 'esp-ingest', msg: expect.any(String) });

  const config = events.find((l) => l.event === 'config_loaded')!.config as { database: string; mqtt: { url: string; password: string } };
  expect(config.database).toMatch(/^postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\/esp_t_/);
  expect(config.mqtt.url).toMatch(/^mqtt:\/\/esp:\*\*\*@127\.0\.0\.1:\d+/);
  expect(config.mqtt.password).toBe('[redacted]');
  expect(events.find((l) => l.event === 'migrations_applied')!.applied).toEqual(expect.arrayContaining(['001_tables.sql']));
  expect(events.find((l) => l.event === 'storage_mode')!.storage).toMatch(/^timescaledb_|^postgresql_table$/);
  expect(events.find((l) => l.event === 'stopped')!.clean).toBe(true);

  const s = summaries();
  expect(s.length).toBeGreaterThanOrEqual(1);
  for (const l of s) {
    expect(Object.keys(l).sort()).toEqual(
      [
        'level',
        'time',
        'service',
        'event',
        'msg',
        'intervalS',
        'messagesReceived',
        'readingsCommitted',
        'readingsRejected',
        'duplicates',
        'flushRetries',
        'readingsPerS',
        'backfillReadings',
        'backfillReadingsPerS',
        'backfillRowsBuffered',
        'deviceToCommitLagS',
        'rowsBuffered',
        'unacknowledged',
        'oldestUnacknowledgedAgeS',
        'ready',
        'notReady',
      ].sort(),
    );
  }
  expect(s.reduce((n, l) => n + (l.messagesReceived as number), 0)).toBe(MESSAGES + 1);
  console.log(
    `logs: ${lines.length} lines for ${MESSAGES + 1} messages (${events.length} with an event, ${s.length} summaries); e.g. ${JSON.stringify(s.find((l) => (l.readingsCommitted as number) > 0))}`,
  );
});

it('no password in the log while the database is unreachable at start-up', async () => {
  const svc = await startService(
    t,
    { DATABASE_URL: `postgres://postgres:${DB_PASSWORD}@127.0.0.1:${await freePort()}/esp`, MQTT_PASSWORD, RETRY_MAX_DELAY_MS: '100' },
    { waitReady: false },
  );
  // The first failed attempt is logged in full; repeats at most once a minute (log/throttle.ts).
  await waitFor('the first failed attempt logged', () => jsonLines(svc.output()).some((l) => l.event === 'database_unavailable'), 20_000, 50);
  svc.proc.kill('SIGTERM');
  await svc.exited;
  const output = svc.output();
  for (const secret of SECRETS) expect(output).not.toContain(secret);
  const failed = jsonLines(output).find((l) => l.event === 'database_unavailable')!;
  expect((failed.err as { message: string }).message).toMatch(/ECONNREFUSED/);
});
