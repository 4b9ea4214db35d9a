// kill -9 of the service at random moments while wells publish QoS 1 at a steady rate, through
// a private Mosquitto with the project's mosquitto.conf (persistent session, MQTT 5). After
// each restart the broker redelivers what was not PUBACKed; every published (well_id, ts) must
// end up stored exactly once.
import { afterAll, expect, it } from 'vitest';
import { replay } from '../../dev/replay.ts';
import { freshDatabase, metric, privateMosquitto, query, type ServiceProcess, startService, Teardown, waitFor } from '../support/harness.ts';
import { loadWells } from '../support/wells.ts';

const t = new Teardown();
afterAll(() => t.run());

it('stores every reading exactly once across repeated kill -9 and restart', async () => {
  const broker = await privateMosquitto(t);
  const databaseUrl = await freshDatabase(t);
  const env = { DATABASE_URL: databaseUrl, MQTT_URL: broker.url, MQTT_CLIENT_ID: 'esp-ingest-crash', BATCH_FLUSH_INTERVAL_MS: '100', BATCH_MAX_ROWS: '500' };
  let svc: ServiceProcess = await startService(t, env);

  // Three wells, 2,000 readings each, ~900 readings/s in all: about 7 s of load.
  const wells = loadWells()
    .slice(0, 3)
    .map((w) => ({ ...w, readings: w.readings.slice(0, 2000) }));
  const publishing = replay({ url: broker.url, speed: 300, perMessage: 1, wells, clientId: 'crash-publisher' });
  let publishingDone = false;
  void publishing.finally(() => (publishingDone = true));

  const recoveries: number[] = [];
  for (let kill = 0; kill < 3; kill++) {
    // A random moment once work is in flight: mid-batch, mid-COPY or with PUBACKs pending.
    // On a loaded machine a restart can take longer than the load lasts: kill only while it runs.
    await waitFor('messages in flight', async () => publishingDone || (await metric(svc.httpPort, 'esp_ingest_messages_received_total')) > 0, 20_000);
    if (publishingDone) break;
    await new Promise((r) => setTimeout(r, 100 + Math.random() * 600));
    const unacked = await metric(svc.httpPort, 'esp_ingest_unacknowledged_messages').catch(() => -1);
    svc.proc.kill('SIGKILL');
    await svc.exited;
    const t0 = performance.now();
    svc = await startService(t, env);
    recoveries.push((performance.now() - t0) / 1000);
    console.log(`kill -9 #${kill + 1} with ${unacked} unacknowledged messages; ready again in ${recoveries.at(-1)!.toFixed(2)} s`);
  }
  const published = await publishing;
  expect(published.readings).toBe(6000);
  expect(recoveries.length, 'kills while the load ran').toBeGreaterThanOrEqual(1);
  await waitFor(
    'every reading stored',
    async () => {
      const [r] = await query<{ n: number }>(databaseUrl, 'SELECT count(*)::int AS n FROM esp_telemetry');
      return r!.n >= 6000;
    },
    60_000,
    200,
  );
  const [r] = await query<{ n: number; keys: number; wells: number; rejected: number }>(
    databaseUrl,
    `SELECT count(*)::int AS n, count(DISTINCT (well_id, ts))::int AS keys, count(DISTINCT well_id)::int AS wells,
            (SELECT count(*)::int FROM rejected_messages) AS rejected FROM esp_telemetry`,
  );
  expect(r).toEqual({ n: 6000, keys: 6000, wells: 3, rejected: 0 });
  // Every published key, by sequence number: none missing.
  const missing = await query(
    databaseUrl,
    `SELECT well_id, s FROM (SELECT DISTINCT well_id FROM esp_telemetry) w, generate_series(1, 2000) s
    WHERE NOT EXISTS (SELECT 1 FROM esp_telemetry t WHERE t.well_id = w.well_id AND t.seq = s)`,
  );
  expect(missing).toEqual([]);
  expect(await svc.proc.kill('SIGTERM')).toBe(true);
  expect(await svc.exited).toBe(0);
  console.log(`recovery times (s): ${recoveries.map((x) => x.toFixed(2)).join(', ')}`);
});
