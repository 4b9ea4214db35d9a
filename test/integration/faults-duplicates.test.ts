// Fault: duplicate delivery (a redelivered duplicate that failed the whole batch: hookdeck/outpost
// #946, monster-mq #63). QoS 1 is at-least-once, so the same reading arrives more than once: the
// same message published twice, the same reading in two messages, the same (well_id, ts) twice
// inside one message, and all of these again in a later batch, when the first copy is already
// stored. Each key is stored once (first arrival wins, later copies only fill channels still
// empty), every extra copy is counted, and no batch fails or is retried.
import mqtt from 'mqtt';
import { afterAll, expect, it } from 'vitest';
import { freshDatabase, metric, privateMosquitto, query, startService, Teardown, waitFor } from '../support/harness.ts';
import { peakRssMb, RSS_BOUND_MB } from '../support/well-load.ts';

const t = new Teardown();
afterAll(() => t.run());

const T0 = Date.parse('2024-05-01T00:00:00Z');
const at = (s: number) => T0 + s * 1000;
const deviceReading = (s: number, fields: Record<string, number> = { motor_current_a: 40 + s }) => ({ ts: at(s), seq: s, ...fields });

it('stores each (well_id, ts) once, counts every duplicate, and fails no batch', async () => {
  const broker = await privateMosquitto(t);
  const databaseUrl = await freshDatabase(t);
  // Batches of exactly 10 rows (readings + rejections), flushed when full: the test decides
  // which copies share a batch.
  const svc = await startService(t, {
    DATABASE_URL: databaseUrl,
    MQTT_URL: broker.url,
    MQTT_CLIENT_ID: 'esp-ingest-duplicates',
    BATCH_MAX_ROWS: '10',
    BATCH_FLUSH_INTERVAL_MS: '600000',
  });
  const pub = await mqtt.connectAsync(broker.url, { clientId: 'dup-publisher', clean: true });
  t.add(() => pub.endAsync());
  const topic = 'esp/fault/W-DUP/telemetry';
  const send = (payload: unknown) => pub.publishAsync(topic, JSON.stringify(payload), { qos: 1 });
  const committed = () => metric(svc.httpPort, 'esp_ingest_readings_committed_total');
  const duplicates = () => metric(svc.httpPort, 'esp_ingest_readings_duplicate_total');
  const started = performance.now();

  // Batch 1 (10 rows, 7 keys): A twice; s3 in two messages; s5 twice in one message, each copy
  // with a different channel (merged into one row).
  const a = deviceReading(1);
  await send(a);
  await send(a);
  await send([deviceReading(2), deviceReading(3)]);
  await send([deviceReading(3), deviceReading(4)]);
  await send([deviceReading(5, { motor_current_a: 45 }), deviceReading(5, { intake_pressure_kpa: 8000 })]);
  await send([deviceReading(6), deviceReading(7)]);
  await waitFor('batch 1 committed', async () => (await committed()) === 7 && (await duplicates()) === 3, 20_000);

  // Batch 2 (10 rows, 6 new keys): A and the s2/s3 message redelivered after they were stored,
  // and s1 again with a different value (kept: first wins, counted as a conflict).
  await send(a);
  await send([deviceReading(2), deviceReading(3)]);
  await send(deviceReading(1, { motor_current_a: 99 }));
  await send([8, 9, 10, 11, 12, 13].map((s) => deviceReading(s)));
  await waitFor('batch 2 committed', async () => (await committed()) === 13 && (await duplicates()) === 7, 20_000);
  const storedAfterS = (performance.now() - started) / 1000;

  const rows = await query<{ seq: number; n: number; motor_current_a: number; intake_pressure_kpa: number | null }>(
    databaseUrl,
    `SELECT seq::int, count(*) OVER (PARTITION BY well_id, ts)::int AS n, motor_current_a, intake_pressure_kpa FROM esp_telemetry ORDER BY ts`,
  );
  expect(rows.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
  expect(rows.every((r) => r.n === 1)).toBe(true);
  expect(rows[0]).toMatchObject({ seq: 1, motor_current_a: 41 });
  expect(rows[4]).toMatchObject({ seq: 5, motor_current_a: 45, intake_pressure_kpa: 8000 });
  expect(await metric(svc.httpPort, 'esp_ingest_channel_value_conflicts_total')).toBe(1);
  // No batch failed: nothing retried, nothing rejected, no unique violation in the logs.
  expect(await metric(svc.httpPort, 'esp_ingest_flush_retries_total')).toBe(0);
  expect(await query(databaseUrl, 'SELECT count(*)::int AS n FROM rejected_messages')).toEqual([{ n: 0 }]);
  expect(svc.output()).not.toMatch(/23505|unique|batch write failed/);
  expect(await metric(svc.httpPort, 'esp_ingest_messages_acknowledged_total')).toBe(10);
  const rss = peakRssMb(svc.proc.pid!);
  expect(rss).toBeLessThan(RSS_BOUND_MB);
  console.log(
    `duplicates: 20 readings in 10 messages → 13 rows, 7 duplicates counted, 1 conflict; all committed ${storedAfterS.toFixed(2)} s after the first publish; peak RSS ${rss.toFixed(0)} MiB`,
  );
  svc.proc.kill('SIGTERM');
  expect(await svc.exited).toBe(0);
});
