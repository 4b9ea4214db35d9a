// Wells publish only as themselves, on the real Mosquitto with the shipped mosquitto.conf and
// ACL (password file, TLS listener, use_username_as_clientid): real clients act as intruders
// over MQTT 5 and 3.1.1, and a real TimescaleDB shows what was stored.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import { type TestCa, testCa } from '../support/certs.ts';
import { freshDatabase, metric, PrivateMosquitto, query, startInProcess, Teardown, waitFor } from '../support/harness.ts';
import { device, devicePassword, grantedQos, INGEST_PASSWORD, INGEST_USER, identities, reading } from '../support/identity.ts';

const t = new Teardown();
afterAll(() => t.run());
const topic = (well: string, site = 'site-a') => `esp/${site}/${well}/telemetry`;
let app: App;
let broker: PrivateMosquitto;
let ca: TestCa;
let databaseUrl: string;
const rows = async (well: string) => (await query<{ n: number }>(databaseUrl, 'SELECT count(*)::int AS n FROM esp_telemetry WHERE well_id = $1', [well]))[0]!.n;
const w1 = (protocolVersion: 4 | 5, extra: { clientId?: string } = {}) =>
  device(t, broker.url, { username: 'W-1', password: devicePassword('W-1'), protocolVersion, ...extra });
/** Publishes; MQTT 5 answers a refused PUBLISH with PUBACK 0x87, which MQTT.js turns into a rejection. */
const publishAnyway = (c: Awaited<ReturnType<typeof w1>>, topicName: string, payload: string) =>
  c.publishAsync(topicName, payload, { qos: 1 }).then(
    () => 'acknowledged',
    (err: Error) => err.message,
  );

beforeAll(async () => {
  const ids = await identities(t, ['W-1', 'W-2', 'W-3']);
  const dir = mkdtempSync(path.join(tmpdir(), 'esp-ca-'));
  t.add(() => rmSync(dir, { recursive: true, force: true }));
  ca = testCa(dir);
  broker = new PrivateMosquitto({
    auth: { passwordFile: ids.passwordFile, tls: { certFile: ca.serverCertFile, keyFile: ca.serverKeyFile, caFile: ca.caFile } },
  });
  await broker.start();
  t.add(() => broker.destroy());
  databaseUrl = await freshDatabase(t);
  // Over the TLS listener, verifying the broker against the private CA.
  app = await startInProcess(t, 'esp', {
    DATABASE_URL: databaseUrl,
    MQTT_URL: `mqtts://localhost:${broker.tlsPort}`,
    MQTT_CA_FILE: ca.caFile,
    MQTT_USERNAME: INGEST_USER,
    MQTT_PASSWORD: INGEST_PASSWORD,
  });
});

describe('Mosquitto with the shipped config: each attack fails', () => {
  it('refuses anonymous clients and wrong passwords; the service is connected over TLS with its own user', async () => {
    await expect(device(t, broker.url, {})).rejects.toThrow(/Not authorized|Bad username or password/i);
    await expect(device(t, broker.url, { username: 'W-1', password: 'wrong', protocolVersion: 5 })).rejects.toThrow(
      /Bad User Name or Password|Not authorized/i,
    );
    await expect(device(t, broker.url, { username: INGEST_USER, password: 'guess' })).rejects.toThrow(/Not authorized|Bad username or password/i);
    expect(broker.log).toMatch(new RegExp(`New client connected from 127\\.0\\.0\\.1:\\d+ as ${INGEST_USER} .*u'${INGEST_USER}'`));
  });

  it.each([5, 4] as const)('impostor over MQTT %s: W-1 publishing to W-2 stores nothing; its own readings are stored', async (protocolVersion) => {
    const impostor = await w1(protocolVersion);
    const outcome = await publishAnyway(impostor, topic('W-2'), reading(Date.now() - 50_000 - protocolVersion));
    // 3.1.1 cannot say no: the PUBACK comes and the message is dropped; MQTT 5 says 0x87.
    expect(outcome).toEqual(protocolVersion === 4 ? 'acknowledged' : expect.stringMatching(/Not authorized/i));
    const ts = Date.now() - 40_000 - protocolVersion;
    await impostor.publishAsync(topic('W-1'), reading(ts), { qos: 1 });
    await waitFor(
      'W-1 reading',
      async () =>
        (await query<{ n: number }>(databaseUrl, 'SELECT count(*)::int AS n FROM esp_telemetry WHERE well_id = $1 AND ts = $2', ['W-1', new Date(ts)]))[0]!
          .n === 1,
    );
    expect(await rows('W-2')).toBe(0);
  });

  it('preemption and fake wells: readings for W-3 and 50 invented wells from W-1 are dropped; W-3 stores its own value', async () => {
    const tracked = await metric(app.httpPort, 'esp_ingest_wells_tracked');
    const at = Date.now() + 120_000;
    const attacker = await w1(4);
    await attacker.publishAsync(topic('W-3'), reading(at, 99), { qos: 1 });
    for (let i = 0; i < 50; i++) await attacker.publishAsync(topic(`FAKE-${i}`), reading(Date.now() - 30_000), { qos: 1 });
    const w3 = await device(t, broker.url, { username: 'W-3', password: devicePassword('W-3'), protocolVersion: 5 });
    await w3.publishAsync(topic('W-3'), reading(at, 51), { qos: 1 });
    await waitFor('W-3 reading', async () => (await rows('W-3')) === 1);
    expect((await query<{ v: number }>(databaseUrl, `SELECT vsd_frequency_hz AS v FROM esp_telemetry WHERE well_id = 'W-3'`))[0]!.v).toBe(51);
    expect((await query<{ n: number }>(databaseUrl, `SELECT count(*)::int AS n FROM esp_telemetry WHERE well_id LIKE 'FAKE-%'`))[0]!.n).toBe(0);
    expect(await metric(app.httpPort, 'esp_ingest_wells_tracked')).toBe(tracked + 1);
    expect(await metric(app.httpPort, 'esp_ingest_readings_duplicate_total')).toBe(0);
  });

  it.each([5, 4] as const)('eavesdropper over MQTT %s: subscribed to every well, #, $SYS and the shared form, it receives nothing', async (protocolVersion) => {
    // Mosquitto 2.0's acl_file grants a SUBSCRIBE and checks read access per message instead.
    const spy = await w1(protocolVersion);
    const received: string[] = [];
    spy.on('message', (topicName) => received.push(topicName));
    for (const f of ['esp/+/+/telemetry', '#', '$SYS/#', 'esp/+/W-2/telemetry', '$share/g/esp/+/+/telemetry']) await grantedQos(spy, f);
    const w2 = await device(t, broker.url, { username: 'W-2', password: devicePassword('W-2'), protocolVersion });
    const ts = Date.now() - 20_000 - protocolVersion;
    await w2.publishAsync(topic('W-2'), reading(ts), { qos: 1 });
    await waitFor(
      'W-2 reading stored',
      async () =>
        (await query<{ n: number }>(databaseUrl, 'SELECT count(*)::int AS n FROM esp_telemetry WHERE well_id = $1 AND ts = $2', ['W-2', new Date(ts)]))[0]!
          .n === 1,
    );
    // One more round trip: anything routed to the spy before it would have arrived by now.
    await grantedQos(spy, 'esp/site-a/W-1/telemetry');
    expect(received).toEqual([]);
  });

  it('session hijack: a device asking for the service client id gets its own user name as client id; the service keeps its session and stores everything', async () => {
    const reconnects = await metric(app.httpPort, 'esp_ingest_mqtt_reconnects_total');
    for (const clientId of [INGEST_USER, 'esp-ingest-esp']) {
      const intruder = await w1(5, { clientId });
      await intruder.endAsync();
    }
    const w2 = await device(t, broker.url, { username: 'W-2', password: devicePassword('W-2'), protocolVersion: 5 });
    const before = await rows('W-2');
    const base = Date.now() - 10_000;
    for (let i = 0; i < 20; i++) await w2.publishAsync(topic('W-2'), reading(base + i), { qos: 1 });
    await waitFor('20 readings of W-2', async () => (await rows('W-2')) === before + 20);
    expect(await metric(app.httpPort, 'esp_ingest_mqtt_reconnects_total')).toBe(reconnects);
    expect(broker.log).not.toMatch(/Client esp-ingest already connected, closing old connection/);
    expect(broker.log).toMatch(/as W-1 \(p5, c1, k60, u'W-1'\)/);
  });

  it('a device with a client certificate reaches the TLS listener; the service exports its own certificate expiry when it has one', async () => {
    const c = ca.client('W-1');
    const dev = await device(t, `mqtts://localhost:${broker.tlsPort}`, { username: 'W-1', password: devicePassword('W-1'), ca: readFileSync(ca.caFile) });
    await dev.publishAsync(topic('W-1'), reading(Date.now() - 5_000), { qos: 1 });
    expect(readFileSync(c.certFile, 'utf8')).toContain('BEGIN CERTIFICATE');
  });
});
