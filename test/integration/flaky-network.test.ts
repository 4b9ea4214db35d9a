// A flaky network is not a session takeover: a TCP proxy between the service and Mosquitto (a
// load balancer or NAT dropping idle flows) closes the connection cleanly from the broker's side
// three times within 15 s: no DISCONNECT, no socket error, exactly what a takeover looks like on
// Mosquitto 2.0.11. The service reconnects each time and keeps ingesting: its session marker comes
// back as its own. (A real second instance with the same client id is still stopped:
// faults-client-id.test.ts.)

import type { AddressInfo } from 'node:net';
import { connect, createServer, type Socket } from 'node:net';
import mqtt from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import { freshDatabase, metric, PrivateMosquitto, query, startInProcess, Teardown, waitFor } from '../support/harness.ts';

const t = new Teardown();
afterAll(() => t.run());

/** Forwards TCP to `port`; `closeAll()` ends every proxied connection cleanly (FIN both ways). */
async function tcpProxy(port: number): Promise<{ port: number; closeAll(): void }> {
  const pairs = new Set<[Socket, Socket]>();
  const server = createServer((down) => {
    const up = connect(port, '127.0.0.1');
    const pair: [Socket, Socket] = [down, up];
    pairs.add(pair);
    down.pipe(up).on('error', () => undefined);
    up.pipe(down).on('error', () => undefined);
    down.on('error', () => undefined);
    up.on('error', () => undefined);
    down.on('close', () => pairs.delete(pair));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.add(() => new Promise((r) => server.close(r)));
  t.add(() => {
    for (const [d, u] of pairs) {
      d.destroy();
      u.destroy();
    }
  });
  return {
    port: (server.address() as AddressInfo).port,
    closeAll() {
      for (const [down, up] of pairs) {
        down.end();
        up.end();
      }
    },
  };
}

describe.each([[4], [5]])('flaky network, MQTT protocol level %i', (protocolVersion) => {
  it('three clean closes from the broker side within 15 s: reconnects, no ESP_MQTT_CLIENT_ID_TAKEN, ingest goes on', async () => {
    const broker = new PrivateMosquitto();
    await broker.start();
    t.add(() => broker.destroy());
    const proxy = await tcpProxy(broker.port);
    const db = await freshDatabase(t);
    const prefix = `flaky${protocolVersion}${Math.random().toString(36).slice(2, 7)}`;
    const app = await startInProcess(t, prefix, {
      DATABASE_URL: db,
      MQTT_URL: `mqtt://127.0.0.1:${proxy.port}`,
      MQTT_PROTOCOL_VERSION: String(protocolVersion),
    });
    let fatal: unknown;
    void app.fatal.then((e) => (fatal = e));
    const started = performance.now();
    for (let close = 1; close <= 3; close++) {
      proxy.closeAll();
      await waitFor(
        `reconnect ${close}`,
        async () => (await metric(app.httpPort, 'esp_ingest_mqtt_reconnects_total')) >= close && (await metric(app.httpPort, 'esp_ingest_mqtt_up')) === 1,
        10_000,
      );
    }
    const withinS = (performance.now() - started) / 1000;
    expect(withinS).toBeLessThan(15);
    // Past the point where the silent closes alone would have been taken for a takeover.
    const pub = await mqtt.connectAsync(broker.url, { clientId: `pub-${prefix}`, protocolVersion: 5 });
    t.add(() => pub.endAsync());
    await pub.publishAsync(`${prefix}/north/W-1/telemetry`, '{"ts":"2026-01-01T00:00:00Z","seq":1,"motor_current_a":40}', { qos: 1 });
    await waitFor('reading stored', async () => (await query(db, 'SELECT 1 FROM esp_telemetry')).length === 1);
    expect(fatal).toBeUndefined();
    console.log(
      `flaky network (MQTT ${protocolVersion === 5 ? '5' : '3.1.1'}): 3 clean closes in ${withinS.toFixed(1)} s, ${await metric(app.httpPort, 'esp_ingest_mqtt_reconnects_total')} reconnects, still ingesting`,
    );
  }, 60_000);
});
