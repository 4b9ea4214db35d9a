// TLS both ways: the embedded broker listening with TLS and requiring client certificates, the
// service connecting over mqtts:// with a CA, a client certificate and a key from files. The
// files are read again before every connect (MQTT.js #916: a reconnect otherwise reuses the old
// ones), so a rotated certificate is picked up at the next reconnect without a restart, and its
// expiry is exported.

import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { afterAll, expect, it } from 'vitest';
import { startEmbeddedBroker } from '../../src/broker/embedded-broker.ts';
import { testCa } from '../support/certs.ts';
import { freshDatabase, metric, query, startInProcess, Teardown, waitFor } from '../support/harness.ts';
import { device, reading } from '../support/identity.ts';

const t = new Teardown();
afterAll(() => t.run());
const notAfterS = (file: string) => Date.parse(new X509Certificate(readFileSync(file)).validTo) / 1000;

it('mqtts with client certificates: a rotated client certificate is read at the next reconnect; its expiry is exported; a client without a certificate is refused', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'esp-tls-'));
  t.add(() => rmSync(dir, { recursive: true, force: true }));
  const ca = testCa(dir);
  const broker = await startEmbeddedBroker(0, '127.0.0.1', {
    tls: { key: readFileSync(ca.serverKeyFile), cert: readFileSync(ca.serverCertFile), ca: readFileSync(ca.caFile) },
    topicTemplate: 'tls/{site}/{well_id}/telemetry',
  });
  t.add(() => broker.close());
  const first = ca.client('esp-ingest', 10);
  const second = ca.client('esp-ingest-rotated', 20);
  const certFile = path.join(dir, 'client.crt');
  const keyFile = path.join(dir, 'client.key');
  copyFileSync(first.certFile, certFile);
  copyFileSync(first.keyFile, keyFile);
  const databaseUrl = await freshDatabase(t);
  const app = await startInProcess(t, 'tls', {
    DATABASE_URL: databaseUrl,
    MQTT_URL: `mqtts://localhost:${broker.port}`,
    MQTT_PROTOCOL_VERSION: '4',
    MQTT_CA_FILE: ca.caFile,
    MQTT_CERT_FILE: certFile,
    MQTT_KEY_FILE: keyFile,
  });
  expect(await metric(app.httpPort, 'esp_ingest_mqtt_client_certificate_expiry_timestamp_seconds')).toBe(notAfterS(first.certFile));

  // Rotate the files, then make the broker drop the service's connection.
  copyFileSync(second.certFile, certFile);
  copyFileSync(second.keyFile, keyFile);
  (broker.aedes as unknown as { clients: Record<string, { close(): void }> }).clients['esp-ingest-tls']?.close();
  await waitFor(
    'reconnected with the rotated certificate',
    async () =>
      (await metric(app.httpPort, 'esp_ingest_mqtt_client_certificate_expiry_timestamp_seconds')) === notAfterS(second.certFile) &&
      (await metric(app.httpPort, 'esp_ingest_mqtt_up')) === 1,
    15_000,
  );

  // Without a client certificate the TLS handshake fails.
  const dev = await device(t, `mqtts://localhost:${broker.port}`, { ca: readFileSync(ca.caFile) }).catch((err: Error) => err);
  expect(dev).toBeInstanceOf(Error);
  const withCert = ca.client('W-1');
  const w1 = await mqtt.connectAsync(`mqtts://localhost:${broker.port}`, {
    protocolVersion: 4,
    reconnectPeriod: 0,
    ca: readFileSync(ca.caFile),
    cert: readFileSync(withCert.certFile),
    key: readFileSync(withCert.keyFile),
  });
  t.add(() => w1.endAsync(true));
  await w1.publishAsync('tls/s/W-1/telemetry', reading(Date.now() - 1_000), { qos: 1 });
  await waitFor('the reading over TLS', async () => (await query<{ n: number }>(databaseUrl, 'SELECT count(*)::int AS n FROM esp_telemetry'))[0]!.n === 1);
});

it('BROKER=embedded with BROKER_TLS_*: the service reaches its own broker over mqtts with a client certificate, and so does a device', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'esp-tls-'));
  t.add(() => rmSync(dir, { recursive: true, force: true }));
  const ca = testCa(dir);
  const svcCert = ca.client('esp-ingest');
  const databaseUrl = await freshDatabase(t);
  const app = await startInProcess(t, 'etls', {
    DATABASE_URL: databaseUrl,
    BROKER: 'embedded',
    BROKER_PORT: '0',
    BROKER_TLS_CERT_FILE: ca.serverCertFile,
    BROKER_TLS_KEY_FILE: ca.serverKeyFile,
    BROKER_TLS_CA_FILE: ca.caFile,
    MQTT_CA_FILE: ca.caFile,
    MQTT_CERT_FILE: svcCert.certFile,
    MQTT_KEY_FILE: svcCert.keyFile,
  });
  expect(app.mqttUrl).toMatch(/^mqtts:\/\/127\.0\.0\.1:\d+$/);
  const dev = ca.client('W-2');
  const w2 = await mqtt.connectAsync(app.mqttUrl, {
    protocolVersion: 4,
    reconnectPeriod: 0,
    ca: readFileSync(ca.caFile),
    cert: readFileSync(dev.certFile),
    key: readFileSync(dev.keyFile),
  });
  t.add(() => w2.endAsync(true));
  await w2.publishAsync('etls/s/W-2/telemetry', reading(Date.now() - 1_000), { qos: 1 });
  await waitFor('the reading over TLS', async () => (await query<{ n: number }>(databaseUrl, 'SELECT count(*)::int AS n FROM esp_telemetry'))[0]!.n === 1);
});
