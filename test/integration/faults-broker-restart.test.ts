// Fault: the broker restarts under load (a subscriber left connected but deaf after a restart:
// MQTT.js #895, mosquitto #2265). Mosquitto with persistence keeps the service's session and queue
// across a restart: the service reconnects (session present) and every reading the broker PUBACKed
// to the wells is stored once. The embedded aedes broker keeps sessions in memory only: after its
// restart the session is gone (sessionPresent=0), so the service must subscribe again and count a
// session reset, and every reading published after that is stored. The wells' publisher reconnects
// and resends on its own.
import { afterAll, describe, expect, it } from 'vitest';
import { type EmbeddedBroker, startEmbeddedBroker } from '../../src/broker/embedded-broker.ts';
import { freshDatabase, metric, privateMosquitto, readyz, startService, Teardown, waitFor } from '../support/harness.ts';
import { checkStored, peakRssMb, RSS_BOUND_MB, steadyLoad, waitStored } from '../support/well-load.ts';

/** How long the broker stays down. */
const BROKER_OUTAGE_MS = 2_000;

const t = new Teardown();
afterAll(() => t.run());

describe('broker restart under load', () => {
  it('Mosquitto (persistence, MQTT 5): the session survives; every reading the broker acknowledged is stored once', async () => {
    const broker = await privateMosquitto(t);
    const databaseUrl = await freshDatabase(t);
    const svc = await startService(t, {
      DATABASE_URL: databaseUrl,
      MQTT_URL: broker.url,
      MQTT_CLIENT_ID: 'esp-ingest-broker-restart',
      BATCH_FLUSH_INTERVAL_MS: '100',
    });
    const load = await steadyLoad(t, broker.url, svc.httpPort);

    await broker.stop();
    await new Promise((r) => setTimeout(r, BROKER_OUTAGE_MS));
    await broker.start();
    const back = performance.now();
    await waitFor(
      'service reconnected',
      async () => (await metric(svc.httpPort, 'esp_ingest_mqtt_reconnects_total')) >= 1 && (await readyz(svc.httpPort)).status === 200,
      20_000,
      100,
    );
    const readyAfterS = (performance.now() - back) / 1000;
    const committedAtReconnect = await metric(svc.httpPort, 'esp_ingest_readings_committed_total');
    await waitFor(
      'new readings committed',
      async () => (await metric(svc.httpPort, 'esp_ingest_readings_committed_total')) >= committedAtReconnect + 300,
      20_000,
    );
    const sent = await load.stop();
    const acked = load.ackedKeys();
    const check = await waitStored(databaseUrl, acked);
    const drainedAfterS = (performance.now() - back) / 1000;
    expect(check.missing).toEqual([]);
    expect(check.duplicateRows).toBe(0);
    // Mosquitto kept the session: no reset, no resubscribe.
    expect(await metric(svc.httpPort, 'esp_ingest_mqtt_session_resets_total')).toBe(0);
    const rss = peakRssMb(svc.proc.pid!);
    expect(rss).toBeLessThan(RSS_BOUND_MB);
    console.log(
      `Mosquitto restart (${BROKER_OUTAGE_MS / 1000} s down): ${sent.published} published, ${acked.size} PUBACKed by the broker, ${check.stored} stored; ` +
        `service ready ${readyAfterS.toFixed(2)} s and all acknowledged stored ${drainedAfterS.toFixed(2)} s after the broker was back; peak RSS ${rss.toFixed(0)} MiB`,
    );
    svc.proc.kill('SIGTERM');
    expect(await svc.exited).toBe(0);
  });

  it('embedded aedes (in-memory, MQTT 3.1.1): the session is forgotten; the service resubscribes, counts the reset, stores what follows', async () => {
    let broker: EmbeddedBroker = await startEmbeddedBroker(0);
    t.add(() => broker.close());
    const url = `mqtt://127.0.0.1:${broker.port}`;
    const databaseUrl = await freshDatabase(t);
    const svc = await startService(t, {
      DATABASE_URL: databaseUrl,
      MQTT_URL: url,
      MQTT_PROTOCOL_VERSION: '4',
      MQTT_CLIENT_ID: 'esp-ingest-aedes-restart',
      BATCH_FLUSH_INTERVAL_MS: '100',
    });
    const load = await steadyLoad(t, url, svc.httpPort);

    await broker.close();
    await new Promise((r) => setTimeout(r, BROKER_OUTAGE_MS));
    broker = await startEmbeddedBroker(broker.port);
    const back = performance.now();
    // Ready again means subscribed again: from here on nothing may be missed.
    await waitFor(
      'session reset counted and subscribed again',
      async () => (await metric(svc.httpPort, 'esp_ingest_mqtt_session_resets_total')) === 1 && (await readyz(svc.httpPort)).status === 200,
      20_000,
      50,
    );
    const subscribedAt = Date.now();
    const readyAfterS = (performance.now() - back) / 1000;
    await waitFor('300 readings published after the resubscribe', () => load.ackedKeys(subscribedAt).size >= 300, 20_000);
    const sent = await load.stop();
    const after = load.ackedKeys(subscribedAt);
    const check = await waitStored(databaseUrl, after);
    const drainedAfterS = (performance.now() - back) / 1000;
    expect(check.missing).toEqual([]);
    expect(check.duplicateRows).toBe(0);
    expect(svc.output()).toContain('sessionPresent=0');
    const all = await checkStored(databaseUrl, load.allKeys());
    const rss = peakRssMb(svc.proc.pid!);
    expect(rss).toBeLessThan(RSS_BOUND_MB);
    console.log(
      `aedes restart (${BROKER_OUTAGE_MS / 1000} s down): ${sent.published} published, ${after.size} after the resubscribe (all stored); ` +
        `${all.missing.length} published while no session existed were lost with it (expected: in-memory broker); ` +
        `subscribed ${readyAfterS.toFixed(2)} s and all stored ${drainedAfterS.toFixed(2)} s after the broker was back; peak RSS ${rss.toFixed(0)} MiB`,
    );
    svc.proc.kill('SIGTERM');
    expect(await svc.exited).toBe(0);
  });
});
