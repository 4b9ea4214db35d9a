// Fault: a long database outage, with bounded memory (buffers that grew or dropped silently while
// the output was stuck: telegraf #5536, #17200; keepalive lost under a slow consumer: MQTT.js
// #1935). The database is down for OUTAGE_S at a steady load. The service's memory stays under the
// documented bound, the backlog stays on the broker (unacknowledged, at most Receive Maximum
// messages in the service), the MQTT keepalive never times out, and after recovery the backlog
// drains and every reading is stored exactly once.
import { afterAll, expect, it } from 'vitest';
import { metric, privateMosquitto, readyz, startService, Teardown, waitFor } from '../support/harness.ts';
import { privatePostgres } from '../support/private-postgres.ts';
import { expectStoredOnce, peakRssMb, RSS_BOUND_MB, steadyLoad } from '../support/well-load.ts';

/** The 5 minutes; ESP_TEST_LONG_OUTAGE_S shortens it for a quick local run. */
const OUTAGE_S = Number(process.env.ESP_TEST_LONG_OUTAGE_S ?? 300);
const RECEIVE_MAXIMUM = 4_000;
const BUFFER_MAX_ROWS = 2_000;

const t = new Teardown();
afterAll(() => t.run());

it(
  `keeps memory bounded and the connection alive through a ${OUTAGE_S} s database outage, then stores everything once`,
  async () => {
    const db = await privatePostgres(t);
    const broker = await privateMosquitto(t);
    const svc = await startService(t, {
      DATABASE_URL: db.url,
      MQTT_URL: broker.url,
      MQTT_CLIENT_ID: 'esp-ingest-long-outage',
      MQTT_KEEPALIVE_S: '5',
      MQTT_RECEIVE_MAXIMUM: String(RECEIVE_MAXIMUM),
      BATCH_MAX_ROWS: '1000',
      BUFFER_MAX_ROWS: String(BUFFER_MAX_ROWS),
      DB_CONNECT_TIMEOUT_MS: '1000',
      RETRY_MAX_DELAY_MS: '2000',
    });
    // 4 wells at 10 Hz: 40 readings/s, 12,000 over 5 minutes: three times what the service may hold.
    const load = await steadyLoad(t, broker.url, svc.httpPort, { wells: ['W-1', 'W-2', 'W-3', 'W-4'], ratePerWellHz: 10, committedAtLeast: 100 });

    await db.stop();
    const down = performance.now();
    let maxUnacked = 0;
    let maxBuffered = 0;
    let maxWaiting = 0;
    // Sample the service once a second for the whole outage (the outage itself is the timed fault).
    while (performance.now() - down < OUTAGE_S * 1000) {
      maxUnacked = Math.max(maxUnacked, await metric(svc.httpPort, 'esp_ingest_unacknowledged_messages'));
      maxBuffered = Math.max(maxBuffered, await metric(svc.httpPort, 'esp_ingest_rows_buffered'));
      maxWaiting = Math.max(maxWaiting, await metric(svc.httpPort, 'esp_ingest_messages_waiting'));
      expect(svc.proc.exitCode).toBeNull();
      await new Promise((r) => setTimeout(r, 1000));
    }
    const receivedDuringOutage = await metric(svc.httpPort, 'esp_ingest_messages_received_total');
    const publishedDuringOutage = load.published;
    expect((await readyz(svc.httpPort)).status).toBe(503);

    await db.start();
    const up = performance.now();
    await waitFor('ready again', async () => (await readyz(svc.httpPort)).status === 200, 30_000, 100);
    const sent = await expectStoredOnce(load, db.url, 180_000);
    const drainedAfterS = (performance.now() - up) / 1000;

    const reconnects = await metric(svc.httpPort, 'esp_ingest_mqtt_reconnects_total');
    const rss = peakRssMb(svc.proc.pid!);
    console.log(
      `long outage ${OUTAGE_S} s: ${sent.published} readings; during the outage at most ${maxUnacked} unacknowledged, ` +
        `${maxBuffered} rows buffered, ${maxWaiting} messages waiting; ${publishedDuringOutage - receivedDuringOutage} left queued on the broker; ` +
        `all stored ${drainedAfterS.toFixed(1)} s after the database was back; ${reconnects} MQTT reconnects; peak RSS ${rss.toFixed(0)} MiB`,
    );
    // Backpressure reached the broker: the service held no more than Receive Maximum messages.
    expect(maxUnacked).toBeLessThanOrEqual(RECEIVE_MAXIMUM);
    expect(maxBuffered).toBeLessThanOrEqual(BUFFER_MAX_ROWS + 1);
    if (publishedDuringOutage > RECEIVE_MAXIMUM + 1000) expect(publishedDuringOutage - receivedDuringOutage).toBeGreaterThan(0);
    // The keepalive never timed out: the connection was never lost.
    expect(reconnects).toBe(0);
    expect(rss).toBeLessThan(RSS_BOUND_MB);
    svc.proc.kill('SIGTERM');
    expect(await svc.exited).toBe(0);
  },
  (OUTAGE_S + 300) * 1000,
);
