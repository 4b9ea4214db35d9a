// Fault: a poison message (failed messages that never released their in-flight slot stalled ingest:
// telegraf #13476; a failed COPY left the connection in an aborted transaction: porsager/postgres
// #1173). A message the decoder accepts but the database always refuses (here a value that violates
// a CHECK constraint added after migration), arriving between good messages while wells publish. It
// must land in rejected_messages (reason db_rejected, the server's error in detail, the reading as
// decoded), be PUBACKed like any message, and not hold up the ones behind it; the failed batch
// leaves no connection in an aborted transaction.
import mqtt from 'mqtt';
import { afterAll, expect, it } from 'vitest';
import { freshDatabase, metric, privateMosquitto, query, startService, Teardown, waitFor } from '../support/harness.ts';
import { peakRssMb, RSS_BOUND_MB, steadyLoad, waitStored } from '../support/well-load.ts';

/** The value the test's CHECK constraint forbids. */
const POISON_A = 13.13;
const POISONS = 3;

const t = new Teardown();
afterAll(() => t.run());

it('moves a message the database refuses to rejected_messages, PUBACKs it, and stores everything behind it', async () => {
  const broker = await privateMosquitto(t);
  const databaseUrl = await freshDatabase(t);
  const svc = await startService(t, { DATABASE_URL: databaseUrl, MQTT_URL: broker.url, MQTT_CLIENT_ID: 'esp-ingest-poison', BATCH_FLUSH_INTERVAL_MS: '100' });
  await query(databaseUrl, `ALTER TABLE esp_telemetry ADD CONSTRAINT t_chk CHECK (motor_current_a <> ${POISON_A})`);
  const load = await steadyLoad(t, broker.url, svc.httpPort);

  // Good, poison, good on one well, a few times over; the load keeps flowing around them.
  const pub = await mqtt.connectAsync(broker.url, { clientId: 'poison-publisher', clean: true });
  t.add(() => pub.endAsync());
  const topic = 'esp/fault/W-POISON/telemetry';
  const T0 = Date.parse('2024-05-01T00:00:00Z');
  const poisons: unknown[] = [];
  const started = performance.now();
  for (let i = 0; i < POISONS; i++) {
    const s = i * 3;
    const poison = JSON.stringify({ ts: T0 + (s + 1) * 1000, seq: s + 1, motor_current_a: POISON_A });
    poisons.push({ ts: new Date(T0 + (s + 1) * 1000).toISOString(), seq: s + 1, motor_current_a: POISON_A });
    await pub.publishAsync(topic, JSON.stringify({ ts: T0 + s * 1000, seq: s, motor_current_a: 40 }), { qos: 1 });
    await pub.publishAsync(topic, poison, { qos: 1 });
    await pub.publishAsync(topic, JSON.stringify({ ts: T0 + (s + 2) * 1000, seq: s + 2, motor_current_a: 41 }), { qos: 1 });
  }
  const good = Array.from({ length: POISONS }, (_, i) => [`W-POISON#${i * 3}`, `W-POISON#${i * 3 + 2}`]).flat();
  await waitStored(databaseUrl, new Set(good), 20_000);
  const behindAfterS = (performance.now() - started) / 1000;
  const committedThen = await metric(svc.httpPort, 'esp_ingest_readings_committed_total');
  await waitFor('the load flowing on', async () => (await metric(svc.httpPort, 'esp_ingest_readings_committed_total')) >= committedThen + 300, 20_000);

  const sent = await load.stop();
  expect(sent.acked).toBe(sent.published);
  const check = await waitStored(databaseUrl, new Set([...load.allKeys(), ...good]));
  expect(check).toEqual({ stored: sent.published + good.length, duplicateRows: 0, missing: [] });

  const rejected = await query<{ reason: string; detail: string; well_id: string; topic: string; payload: Buffer }>(
    databaseUrl,
    'SELECT reason, detail, well_id, topic, payload FROM rejected_messages ORDER BY id',
  );
  expect(rejected.map((r) => JSON.parse(r.payload.toString()))).toEqual(poisons);
  for (const r of rejected) {
    expect(r).toMatchObject({ reason: 'db_rejected', well_id: 'W-POISON', topic });
    expect(r.detail).toContain('23514');
    expect(r.detail).toContain('t_chk');
  }
  expect(await query(databaseUrl, `SELECT count(*)::int AS n FROM esp_telemetry WHERE motor_current_a = ${POISON_A}`)).toEqual([{ n: 0 }]);
  expect(await metric(svc.httpPort, 'esp_ingest_readings_rejected_total{reason="db_rejected"}')).toBe(POISONS);
  // A refusal is not a failure to retry: no retries, and every message (poison too) PUBACKed.
  expect(await metric(svc.httpPort, 'esp_ingest_flush_retries_total')).toBe(0);
  const received = sent.published + 3 * POISONS;
  await waitFor('every message PUBACKed', async () => (await metric(svc.httpPort, 'esp_ingest_messages_acknowledged_total')) === received, 10_000);
  expect(await metric(svc.httpPort, 'esp_ingest_unacknowledged_messages')).toBe(0);
  // The failed COPY left no connection in an aborted transaction (pg-copy-streams #115).
  expect(
    await query(databaseUrl, `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'esp-ingest' AND state LIKE 'idle in transaction%'`),
  ).toEqual([{ n: 0 }]);
  const rss = peakRssMb(svc.proc.pid!);
  expect(rss).toBeLessThan(RSS_BOUND_MB);
  console.log(
    `poison: ${POISONS} refused messages in rejected_messages ("${rejected[0]!.detail.slice(0, 120)}…"); the good messages behind them stored ${behindAfterS.toFixed(2)} s after the first publish; ` +
      `${sent.published} load readings stored once; peak RSS ${rss.toFixed(0)} MiB`,
  );
  svc.proc.kill('SIGTERM');
  expect(await svc.exited).toBe(0);
});
