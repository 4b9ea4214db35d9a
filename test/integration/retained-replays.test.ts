// Retained messages are replays: a broker sends a topic's retained message, retain flag set, to
// every new subscription [MQTT-3.3.1-6], [MQTT-3.3.1-9]. Four service starts (each a new session,
// so each subscribes anew and gets the replays) over the machine's Mosquitto, MQTT 3.1.1 and 5,
// with MISSING_TS=stamp: the retained reading without `ts` is refused every time and never stored,
// the one with `ts` is stored once, and neither well gets a freshness series (a silent well does
// not look alive); a live reading does.
import mqtt from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import { freshDatabase, metric, query, startInProcess, Teardown, waitFor } from '../support/harness.ts';

const t = new Teardown();
afterAll(() => t.run());
const BROKER = process.env.TEST_MQTT_URL ?? 'mqtt://127.0.0.1:1883';
const STARTS = 4;

describe.each([[4], [5]])('retained replays over MQTT protocol level %i', (protocolVersion) => {
  it(`${STARTS} starts: no row without ts, the row with ts once, no freshness from a replay`, async () => {
    const db = await freshDatabase(t);
    const prefix = `r${protocolVersion}${Math.random().toString(36).slice(2, 9)}`;
    const pub = await mqtt.connectAsync(BROKER, { clientId: `pub-${prefix}`, clean: true, protocolVersion: 5 });
    t.add(() => pub.endAsync());
    const topic = (well: string) => `${prefix}/north/${well}/telemetry`;
    await pub.publishAsync(topic('RET-NO-TS'), '{"motor_current_a":41.5}', { qos: 1, retain: true });
    await pub.publishAsync(topic('RET-TS'), '{"ts":"2024-05-01T00:00:00Z","motor_current_a":41.5}', { qos: 1, retain: true });
    // Clear the retained messages when done (an empty retained payload deletes it).
    t.add(async () => {
      for (const w of ['RET-NO-TS', 'RET-TS']) await pub.publishAsync(topic(w), '', { qos: 1, retain: true });
    });

    for (let start = 1; start <= STARTS; start++) {
      const app = await startInProcess(t, prefix, {
        DATABASE_URL: db,
        MQTT_URL: BROKER,
        MQTT_PROTOCOL_VERSION: String(protocolVersion),
        MQTT_CLIENT_ID: `esp-ingest-${prefix}-${start}`,
        MISSING_TS: 'stamp',
      });
      await waitFor('both replays committed', async () => (await metric(app.httpPort, 'esp_ingest_messages_acknowledged_total')) >= 2 || undefined, 20_000);
      expect(await metric(app.httpPort, 'esp_ingest_retained_messages_received_total')).toBe(2);
      const text = await (await fetch(`http://127.0.0.1:${app.httpPort}/metrics`)).text();
      expect(text).not.toMatch(/esp_ingest_well_last_reading_age_seconds\{well_id="RET-/);
      if (start === STARTS) {
        // A live reading (published now, retain flag clear on delivery) does move freshness.
        await pub.publishAsync(topic('LIVE'), '{"motor_current_a":1}', { qos: 1 });
        await waitFor('live reading committed', async () => (await metric(app.httpPort, 'esp_ingest_messages_acknowledged_total')) >= 3 || undefined, 20_000);
        const after = await (await fetch(`http://127.0.0.1:${app.httpPort}/metrics`)).text();
        expect(after).toMatch(/esp_ingest_well_last_reading_age_seconds\{well_id="LIVE"\}/);
        expect(after).not.toMatch(/esp_ingest_well_last_reading_age_seconds\{well_id="RET-/);
      }
      await app.stop();
    }
    expect(await query(db, 'SELECT well_id, count(*)::int AS n FROM esp_telemetry GROUP BY well_id ORDER BY well_id')).toEqual([
      { well_id: 'LIVE', n: 1 },
      { well_id: 'RET-TS', n: 1 },
    ]);
    expect(await query(db, 'SELECT reason, well_id, count(*)::int AS n FROM rejected_messages GROUP BY 1, 2')).toEqual([
      { reason: 'retained_without_ts', well_id: 'RET-NO-TS', n: STARTS },
    ]);
  });
});
