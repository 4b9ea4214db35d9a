// A broker that refuses the service, then accepts it again (MQTT.js #1947: after a refused
// CONNACK, MQTT.js 5.16 stops reconnecting unless reconnectOnConnackError is set). The real
// Mosquitto with the shipped config; its password file is made unreadable to it and the broker
// reloaded (`chmod 600`, SIGHUP): Mosquitto 2.0.11 fails closed, drops every client and refuses
// every CONNECT with 0x87, the service's included; a well keeps trying to publish; the file is
// made readable again and the broker reloaded. And a sentinel password that must appear nowhere.

import { chmodSync } from 'node:fs';
import { afterAll, expect, it } from 'vitest';
import { freshDatabase, metric, PrivateMosquitto, query, readyz, startService, Teardown, waitFor } from '../support/harness.ts';
import { devicePassword, INGEST_PASSWORD, INGEST_USER, identities } from '../support/identity.ts';
import { WellLoad, waitStored } from '../support/well-load.ts';

const t = new Teardown();
afterAll(() => t.run());
/** How long the broker refuses the service: 30 s, longer than the backoff's cap many times over. */
const REFUSED_MS = 30_000;
const SENTINEL = 'S3cr3t';

/** Every place a secret must never reach: the service's output and its probes and metrics. */
async function captures(port: number, output: string): Promise<Record<string, string>> {
  const get = async (p: string) => (await fetch(`http://127.0.0.1:${port}${p}`)).text();
  return { output, metrics: await get('/metrics'), readyz: await get('/readyz'), startupz: await get('/startupz') };
}
const leaks = (c: Record<string, string>) =>
  Object.entries(c)
    .filter(([, text]) => text.includes(SENTINEL))
    .map(([where]) => where);

it('keeps retrying a refused CONNACK with backoff, names the reason in /readyz, recovers by itself and stores every reading; never exits; the password appears nowhere', async () => {
  const ids = await identities(t, ['W-1']);
  const broker = new PrivateMosquitto({ auth: { passwordFile: ids.passwordFile } });
  await broker.start();
  t.add(() => broker.destroy());
  const databaseUrl = await freshDatabase(t);
  // The test cluster trusts local connections: the password in the URL is a sentinel only.
  const dbUrl = new URL(databaseUrl);
  dbUrl.password = 'S3cr3t-pw%23x';
  const svc = await startService(t, {
    DATABASE_URL: dbUrl.toString(),
    MQTT_URL: broker.url,
    MQTT_USERNAME: INGEST_USER,
    MQTT_PASSWORD: INGEST_PASSWORD,
    MQTT_CLIENT_ID: INGEST_USER,
    RETRY_MAX_DELAY_MS: '2000',
    BATCH_FLUSH_INTERVAL_MS: '100',
  });
  const load = new WellLoad({ url: broker.url, wells: ['W-1'], ratePerWellHz: 20, username: 'W-1', password: devicePassword('W-1') });
  await load.start();
  t.add(() => load.stop(1_000).catch(() => undefined));
  await waitFor('first readings committed', async () => (await metric(svc.httpPort, 'esp_ingest_readings_committed_total')) >= 20);

  chmodSync(ids.passwordFile, 0o600);
  process.kill(broker.pid!, 'SIGHUP');
  const refusedSince = performance.now();
  const reason = await waitFor(
    'refusal named in /readyz',
    async () => {
      const r = await readyz(svc.httpPort);
      const detail = (r.body.details as Record<string, string> | undefined)?.mqtt_subscription_inactive;
      return r.status === 503 && /refused the connection: (not authorized|bad user name or password)/.test(detail ?? '') ? detail : undefined;
    },
    15_000,
  );
  const during = await captures(svc.httpPort, svc.output());
  await waitFor('refused long enough', () => performance.now() - refusedSince >= REFUSED_MS, REFUSED_MS + 1_000, 100);

  chmodSync(ids.passwordFile, 0o644);
  process.kill(broker.pid!, 'SIGHUP');
  const acceptedAt = performance.now();
  await waitFor('subscribed again', async () => (await metric(svc.httpPort, 'esp_ingest_mqtt_up')) === 1, 15_000, 50);
  const recoveryS = (performance.now() - acceptedAt) / 1000;
  const publishedAtAccept = load.published;
  await waitFor('40 more readings published', () => load.published >= publishedAtAccept + 40, 10_000);
  const sent = await load.stop();
  expect(sent.acked).toBe(sent.published);
  // The well was refused too and kept its readings; once both are back, every one is stored once.
  const check = await waitStored(databaseUrl, load.allKeys(), 30_000);
  expect(check.missing).toEqual([]);
  expect(check.duplicateRows).toBe(0);
  const refusals = await metric(svc.httpPort, 'esp_ingest_mqtt_connect_refusals_total');
  expect(refusals).toBeGreaterThanOrEqual(2);
  // Backoff: far fewer attempts than one a second.
  expect(refusals).toBeLessThan(REFUSED_MS / 1000);
  expect(recoveryS).toBeLessThan(2 + 5);
  expect(svc.proc.exitCode).toBeNull();
  const out = svc.output();
  expect(out).not.toContain('ESP_MQTT_CLIENT_ID_TAKEN');
  expect(out.split('\n').filter((l) => l.includes('"event":"mqtt_refused"')).length).toBe(1);

  const final = await captures(svc.httpPort, svc.output());
  const rejected = await query<{ detail: string }>(databaseUrl, 'SELECT detail FROM rejected_messages');
  expect({ during: leaks(during), after: leaks(final), rejected: rejected.filter((r) => r.detail.includes(SENTINEL)).length }).toEqual({
    during: [],
    after: [],
    rejected: 0,
  });
  console.log(
    `refused ${(REFUSED_MS / 1000).toFixed(0)} s ("${reason}"): ${refusals} refused CONNACKs, recovered ${recoveryS.toFixed(2)} s after the broker accepted again; ${sent.published} readings published, all stored once`,
  );
  svc.proc.kill('SIGTERM');
  expect(await svc.exited).toBe(0);
});
