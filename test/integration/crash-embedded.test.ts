// kill -9 of the service with BROKER=embedded, three times under load: the broker dies with it,
// so everything not PUBACKed exists only on the devices. Twenty wells, each its own MQTT.js
// device (clean session off, resending what was not PUBACKed on reconnect), publish at QoS 1.
// Every reading a device got a PUBACK for must be stored exactly once. (A publish MQTT.js queued
// while it was resending fails with "Connection closed" when the connection drops again: the
// device was told, and nothing is owed for it.) MQTT.js resends its stored messages one at a time, each after the previous
// PUBACK: a short flush interval lets the devices catch up between kills.
import { afterAll, expect, it } from 'vitest';
import { freePort, freshDatabase, metric, type ServiceProcess, startService, Teardown, waitFor } from '../support/harness.ts';
import { checkStored, WellLoad, waitStored } from '../support/well-load.ts';

const t = new Teardown();
afterAll(() => t.run());

it('stores every PUBACKed reading exactly once across three kill -9 of the service and its in-process broker', async () => {
  const databaseUrl = await freshDatabase(t);
  const port = await freePort();
  const env = {
    DATABASE_URL: databaseUrl,
    BROKER: 'embedded',
    BROKER_PORT: String(port),
    MQTT_TOPIC: 'esp/{site}/{well_id}/telemetry',
    BATCH_FLUSH_INTERVAL_MS: '50',
    BATCH_MAX_ROWS: '1000',
  };
  let svc: ServiceProcess = await startService(t, env);
  const url = `mqtt://127.0.0.1:${port}`;
  const wells = Array.from({ length: 20 }, (_, i) => `W-${String(i + 1).padStart(2, '0')}`);
  const gateways = wells.map(
    (w) => new WellLoad({ url, wells: [w], ratePerWellHz: 5, clean: false, clientId: `device-${w}`, topic: (x) => `esp/crash/${x}/telemetry` }),
  );
  for (const g of gateways) {
    await g.start();
    t.add(() => g.stop(1_000).catch(() => undefined));
  }
  const pubackedBeforeKill: number[] = [];
  for (let kill = 0; kill < 3; kill++) {
    const committed = await metric(svc.httpPort, 'esp_ingest_readings_committed_total');
    await waitFor('new readings committed', async () => (await metric(svc.httpPort, 'esp_ingest_readings_committed_total')) >= committed + 150, 20_000);
    // A moment with devices' PUBACKs held: mid-batch, mid-COPY or between commit and PUBACK.
    pubackedBeforeKill.push(await waitFor('PUBACKs held', () => metric(svc.httpPort, 'esp_ingest_unacknowledged_messages'), 5_000, 5));
    svc.proc.kill('SIGKILL');
    await svc.exited;
    svc = await startService(t, env);
  }
  await waitFor('more readings after the last restart', async () => (await metric(svc.httpPort, 'esp_ingest_readings_committed_total')) >= 150, 20_000);
  const totals = await Promise.all(gateways.map((g) => g.stop(30_000)));
  const acked = new Set(gateways.flatMap((g) => [...g.ackedKeys()]));
  const all = new Set(gateways.flatMap((g) => [...g.allKeys()]));
  console.log(`published ${all.size}; PUBACKed ${acked.size}; PUBACKs held at each kill: ${pubackedBeforeKill.join(', ')}`);
  expect(acked.size, 'readings PUBACKed under load').toBeGreaterThan(totals.length * 20);
  const check = await waitStored(databaseUrl, acked, 30_000);
  expect(check.missing).toEqual([]);
  expect(check.duplicateRows).toBe(0);
  expect((await checkStored(databaseUrl, all)).stored, 'nothing stored that was not published').toBeLessThanOrEqual(all.size);
  svc.proc.kill('SIGTERM');
  expect(await svc.exited).toBe(0);
});
