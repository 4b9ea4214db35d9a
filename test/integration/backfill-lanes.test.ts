// Live data ahead of backfill: a well back after BACKFILL_HOURS (48 in the scenario; fewer by
// default to keep CI short) sends its buffer, 1 Hz readings in 100-reading messages, while 5 live
// wells publish at 2 Hz. A trigger stands in for TimescaleDB's decompression limit on this
// Apache-only build: SQLSTATE 53400 once a transaction writes more than 1,000 rows older than an
// hour (what inserting into compressed chunks raises), and costs 0.5 ms per such row (decompressing
// and recompressing is what makes a backfill slow). The backfill commits in its own lane, split
// into parts; live wells keep p95 publish→commit under 5 s, every key is stored once, and the
// service's memory stays under the documented bound.
import mqtt from 'mqtt';
import { afterAll, expect, it } from 'vitest';
import { freshDatabase, metric, PrivateMosquitto, query, startService, Teardown, waitFor } from '../support/harness.ts';
import { peakRssMb, RSS_BOUND_MB } from '../support/well-load.ts';

const BACKFILL_HOURS = Number(process.env.ESP_TEST_BACKFILL_HOURS ?? 2);
const LIVE_WELLS = ['LIVE-1', 'LIVE-2', 'LIVE-3', 'LIVE-4', 'LIVE-5'];
const LIVE_HZ = 2;
const PER_MESSAGE = 100;

const t = new Teardown();
afterAll(() => t.run());

const DECOMPRESSION_LIMIT_TRIGGER = `
CREATE FUNCTION esp_test_decompression_limit() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE n integer;
BEGIN
  IF NEW.ts < now() - interval '1 hour' THEN
    PERFORM pg_sleep(0.0005);
    n := coalesce(nullif(current_setting('esp_test.old_rows', true), ''), '0')::integer + 1;
    PERFORM set_config('esp_test.old_rows', n::text, true);
    IF n > 1000 THEN
      RAISE EXCEPTION 'tuple decompression limit exceeded by operation (test stand-in)' USING ERRCODE = '53400';
    END IF;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER esp_test_decompression_limit BEFORE INSERT ON esp_telemetry FOR EACH ROW EXECUTE FUNCTION esp_test_decompression_limit();`;

it(`a ${BACKFILL_HOURS} h backfill of one well does not starve ${LIVE_WELLS.length} live wells: live p95 publish→commit < 5 s, every key once`, async () => {
  const db = await freshDatabase(t);
  const broker = new PrivateMosquitto();
  await broker.start();
  t.add(() => broker.destroy());
  const svc = await startService(t, {
    DATABASE_URL: db,
    MQTT_URL: broker.url,
    MQTT_CLIENT_ID: 'esp-ingest-backfill',
    MQTT_TOPIC: 'bf/{site}/{well_id}/telemetry',
    // ESP_TEST_BACKFILL_AFTER=off measures the same load with one lane (by hand, for comparison).
    BACKFILL_AFTER: process.env.ESP_TEST_BACKFILL_AFTER ?? '1 hour',
  });
  await query(db, DECOMPRESSION_LIMIT_TRIGGER);

  const pub = await mqtt.connectAsync(broker.url, { clientId: 'pub-backfill', clean: true, protocolVersion: 5 });
  t.add(() => pub.endAsync());
  const topic = (well: string) => `bf/north/${well}/telemetry`;

  // Live wells: one reading per message, device time = publish time.
  let liveSeq = 0;
  let livePublished = 0;
  const liveSends: Promise<unknown>[] = [];
  const live = setInterval(() => {
    liveSeq++;
    for (const w of LIVE_WELLS) {
      liveSends.push(pub.publishAsync(topic(w), JSON.stringify({ ts: Date.now(), seq: liveSeq, motor_current_a: 40 }), { qos: 1 }));
      livePublished++;
    }
  }, 1000 / LIVE_HZ);
  t.add(() => clearInterval(live));
  await waitFor('live wells committing', async () => (await metric(svc.httpPort, 'esp_ingest_readings_committed_total')) >= 20);

  // The returning well: BACKFILL_HOURS of 1 Hz readings ending now - 1 h, 100 per message.
  const backfillStartedMs = Date.now();
  const readings = BACKFILL_HOURS * 3600;
  const fromMs = backfillStartedMs - 3_600_000 - readings * 1000;
  const window: Promise<unknown>[] = [];
  for (let m = 0; m < readings / PER_MESSAGE; m++) {
    const body = Array.from({ length: PER_MESSAGE }, (_, i) => {
      const seq = m * PER_MESSAGE + i;
      return { ts: fromMs + seq * 1000, seq, motor_current_a: 35, intake_pressure_kpa: 8000 };
    });
    window.push(pub.publishAsync(topic('RET-1'), JSON.stringify(body), { qos: 1 }));
    if (window.length >= 200) await Promise.all(window.splice(0));
  }
  await Promise.all(window);
  await waitFor(
    'backfill committed',
    async () => (await query<{ n: number }>(db, `SELECT count(*)::int AS n FROM esp_telemetry WHERE well_id = 'RET-1'`))[0]!.n === readings,
    600_000,
    500,
  );
  const backfillS = (Date.now() - backfillStartedMs) / 1000;
  clearInterval(live);
  await Promise.all(liveSends);
  await waitFor(
    'live readings committed',
    async () => (await query<{ n: number }>(db, `SELECT count(*)::int AS n FROM esp_telemetry WHERE well_id LIKE 'LIVE-%'`))[0]!.n === livePublished,
    30_000,
  );

  // Publish→commit of live readings during the backfill: ingested_at (the committing transaction's
  // start) minus device time (= publish time).
  const [lat] = await query<{ p95: number; max: number; n: number }>(
    db,
    `SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM ingested_at - ts)) AS p95, max(extract(epoch FROM ingested_at - ts)) AS max, count(*)::int AS n
       FROM esp_telemetry WHERE well_id LIKE 'LIVE-%' AND ts >= $1`,
    [new Date(backfillStartedMs).toISOString()],
  );
  const [keys] = await query<{ rows: number; distinct_keys: number }>(
    db,
    'SELECT count(*)::int AS rows, count(DISTINCT (well_id, ts))::int AS distinct_keys FROM esp_telemetry',
  );
  const splits = await metric(svc.httpPort, 'esp_ingest_decompression_limit_total{action="split"}');
  const backfillCommitted = await metric(svc.httpPort, 'esp_ingest_backfill_readings_committed_total');
  const rss = peakRssMb(svc.proc.pid!);
  console.log(
    `backfill ${BACKFILL_HOURS} h (${readings} readings in ${readings / PER_MESSAGE} messages) committed in ${backfillS.toFixed(1)} s (${(readings / backfillS).toFixed(0)} readings/s), ` +
      `${splits} splits on 53400; live: ${lat!.n} readings during it, p95 publish→commit ${Number(lat!.p95).toFixed(2)} s, max ${Number(lat!.max).toFixed(2)} s; peak RSS ${rss.toFixed(0)} MiB`,
  );
  expect(keys).toEqual({ rows: readings + livePublished, distinct_keys: readings + livePublished });
  expect(splits).toBeGreaterThan(0);
  expect(backfillCommitted).toBe(readings);
  expect(lat!.n).toBeGreaterThan(0);
  expect(Number(lat!.p95)).toBeLessThan(5);
  expect(rss).toBeLessThan(RSS_BOUND_MB);
  svc.proc.kill('SIGTERM');
  expect(await svc.exited).toBe(0);
}, 900_000);
