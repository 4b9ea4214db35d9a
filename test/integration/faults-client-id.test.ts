// Fault: two instances with one client id: a second instance is started by mistake with the same
// MQTT_CLIENT_ID (MQTT 5, Mosquitto with the project's config). The broker hands the session to the
// newcomer and closes the first one's connection (Mosquitto 2.0.11 sends no DISCONNECT 0x8E
// [MQTT-3.1.4-3]); the first must fail fast with a clear error instead of reconnecting and kicking
// the other one back forever (the connect/disconnect storm of MQTT.js #1585, #684). The survivor
// resumes the session, so nothing the wells published is lost, and nothing is stored twice.
import { afterAll, expect, it } from 'vitest';
import { TAKEOVER_SILENT_CLOSES } from '../../src/ingress/takeover.ts';
import { freshDatabase, metric, privateMosquitto, startService, Teardown } from '../support/harness.ts';
import { expectStoredOnce, peakRssMb, RSS_BOUND_MB, steadyLoad } from '../support/well-load.ts';

/** How long the test watches for a reconnect storm after the takeover. */
const OBSERVE_MS = 3_000;
const CLIENT_ID = 'esp-ingest-twin';

const t = new Teardown();
afterAll(() => t.run());

it('the instance whose session is taken over exits non-zero with ESP_MQTT_CLIENT_ID_TAKEN; no storm, nothing lost', async () => {
  const broker = await privateMosquitto(t);
  const databaseUrl = await freshDatabase(t);
  const env = { DATABASE_URL: databaseUrl, MQTT_URL: broker.url, MQTT_CLIENT_ID: CLIENT_ID, BATCH_FLUSH_INTERVAL_MS: '100' };
  const first = await startService(t, env);
  const load = await steadyLoad(t, broker.url, first.httpPort);

  const second = await startService(t, env);
  const tookOver = performance.now();
  const code = await Promise.race([first.exited, new Promise<'running'>((r) => setTimeout(() => r('running'), 30_000))]);
  const exitedAfterS = (performance.now() - tookOver) / 1000;
  expect(code).toBe(1);
  expect(first.output()).toContain('ESP_MQTT_CLIENT_ID_TAKEN');

  // Mosquitto 2.0.11 closes the old connection without DISCONNECT 0x8E, so the takeover costs a
  // few reconnects before it is recognised (src/ingress/takeover.ts); then it is over: not one
  // more connect while we watch.
  const connects = () => broker.log.split(`as ${CLIENT_ID} (`).length - 1;
  const connectsAtExit = connects();
  expect(connectsAtExit).toBeLessThanOrEqual(2 * TAKEOVER_SILENT_CLOSES);
  await new Promise((r) => setTimeout(r, OBSERVE_MS));
  expect(connects()).toBe(connectsAtExit);
  const survivorReconnects = await metric(second.httpPort, 'esp_ingest_mqtt_reconnects_total');
  expect(survivorReconnects).toBeLessThan(TAKEOVER_SILENT_CLOSES);
  expect(second.proc.exitCode).toBeNull();

  const sent = await expectStoredOnce(load, databaseUrl);
  const rss = peakRssMb(second.proc.pid!);
  expect(rss).toBeLessThan(RSS_BOUND_MB);
  console.log(
    `same client id: first instance exited ${code} ${exitedAfterS.toFixed(2)} s after the second connected; ${connectsAtExit} connects in all (survivor reconnected ${survivorReconnects} times), none in ${OBSERVE_MS / 1000} s more; ` +
      `${sent.published} readings stored once (${await metric(second.httpPort, 'esp_ingest_readings_duplicate_total')} redelivered copies deduplicated); survivor peak RSS ${rss.toFixed(0)} MiB`,
  );
  second.proc.kill('SIGTERM');
  expect(await second.exited).toBe(0);
});
