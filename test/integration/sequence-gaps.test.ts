// Loss before the service: a Mosquitto with Debian's stock queue limit (max_queued_messages 1000)
// takes 3,000 QoS 1 messages from 5 wells while the service is away, PUBACKs every one to the
// publishers, and drops what does not fit. When the service is back, the gaps in each well's
// `seq` give the exact count of missing readings, per well, in the metric and in sequence_gaps;
// the broker's own drop counter ($SYS) is exported too. Counted once: a restart and a redelivered
// message add nothing.
import mqtt from 'mqtt';
import { afterAll, expect, it } from 'vitest';
import { freshDatabase, metric, PrivateMosquitto, query, startInProcess, Teardown, waitFor } from '../support/harness.ts';

const t = new Teardown();
afterAll(() => t.run());

const WELLS = ['SEQ-1', 'SEQ-2', 'SEQ-3', 'SEQ-4', 'SEQ-5'];
const LIVE_BEFORE = 10;
const AWAY = 3_000;
const T0 = Date.parse('2026-01-01T00:00:00Z');

it(`${AWAY} messages from ${WELLS.length} wells into a 1000-message queue: every missing seq counted once, per well`, async () => {
  const db = await freshDatabase(t);
  const broker = new PrivateMosquitto({ overrides: { max_queued_messages: '1000', sys_interval: '1' } });
  await broker.start();
  t.add(() => broker.destroy());
  const prefix = `seq${Math.random().toString(36).slice(2, 8)}`;
  const env = { DATABASE_URL: db, MQTT_URL: broker.url };
  const pub = await mqtt.connectAsync(broker.url, { clientId: `pub-${prefix}`, clean: true, protocolVersion: 5 });
  t.add(() => pub.endAsync());
  // Seq n of a well is the reading at T0 + n s; each message one reading.
  const send = (well: string, seq: number) =>
    pub.publishAsync(`${prefix}/north/${well}/telemetry`, JSON.stringify({ ts: T0 + seq * 1000, seq, motor_current_a: 40 }), { qos: 1 });
  const lastSeqs = () => query<{ well_id: string; last_seq: string }>(db, 'SELECT well_id, last_seq FROM well_sequence ORDER BY well_id');

  let app = await startInProcess(t, prefix, env);
  for (let seq = 0; seq < LIVE_BEFORE; seq++) for (const w of WELLS) await send(w, seq);
  await waitFor(
    'live readings tracked',
    async () => (await lastSeqs()).every((r) => Number(r.last_seq) === LIVE_BEFORE - 1) && (await lastSeqs()).length === WELLS.length,
  );
  await app.stop();

  // The service is away: the broker PUBACKs all 3,000 and queues at most 1000 for its session.
  const perWell = AWAY / WELLS.length;
  const pending: Promise<unknown>[] = [];
  for (let i = 0; i < perWell; i++) for (const w of WELLS) pending.push(send(w, LIVE_BEFORE + i));
  await Promise.all(pending);
  const lastSeq = LIVE_BEFORE + perWell; // one more live reading per well after the return
  app = await startInProcess(t, prefix, env);
  for (const w of WELLS) await send(w, lastSeq);
  await waitFor(
    'every well tracked up to its last seq',
    async () => {
      const rows = await lastSeqs();
      return rows.length === WELLS.length && rows.every((r) => Number(r.last_seq) === lastSeq);
    },
    60_000,
  );

  const stored = await query<{ well_id: string; n: number }>(db, 'SELECT well_id, count(*)::int AS n FROM esp_telemetry GROUP BY well_id ORDER BY well_id');
  const gaps = await query<{ well_id: string; missing: number; gaps: number }>(
    db,
    'SELECT well_id, sum(missing)::int AS missing, count(*)::int AS gaps FROM sequence_gaps GROUP BY well_id ORDER BY well_id',
  );
  // Exact: every seq 0..lastSeq was sent once; what is not stored is missing.
  const expected = stored.map((s) => ({ well_id: s.well_id, missing: lastSeq + 1 - s.n }));
  expect(stored.map((s) => s.well_id)).toEqual(WELLS);
  expect(gaps.map(({ well_id, missing }) => ({ well_id, missing }))).toEqual(expected);
  const totalMissing = expected.reduce((n, e) => n + e.missing, 0);
  expect(totalMissing).toBeGreaterThan(1_500);
  for (const e of expected) expect(await metric(app.httpPort, `esp_ingest_sequence_missing_readings_total{well_id="${e.well_id}"}`)).toBe(e.missing);
  // Mosquitto's own count of what it dropped, read from $SYS.
  const dropped = await waitFor(
    'broker drop counter exported',
    async () => {
      const n = await metric(app.httpPort, 'esp_ingest_broker_dropped_messages');
      return n >= totalMissing ? n : undefined;
    },
    15_000,
  );
  console.log(
    `stock queue limit: ${AWAY} published while away, ${totalMissing} missing by seq (${expected.map((e) => `${e.well_id} ${e.missing}`).join(', ')}), broker says ${dropped} dropped`,
  );
  expect(dropped).toBe(totalMissing);

  // Counted once: a restart reads the state back, and a redelivered message adds nothing.
  await app.stop();
  app = await startInProcess(t, prefix, env);
  for (const w of WELLS) await send(w, lastSeq);
  await waitFor('redelivery committed', async () => (await metric(app.httpPort, 'esp_ingest_messages_acknowledged_total')) >= WELLS.length || undefined);
  expect(await query(db, 'SELECT sum(missing)::int AS n FROM sequence_gaps')).toEqual([{ n: totalMissing }]);
  expect(await metric(app.httpPort, 'esp_ingest_sequence_missing_readings_total')).toBe(0);
}, 120_000);
