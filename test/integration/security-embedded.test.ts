// Wells publish only as themselves, on the embedded broker (password file and JWT): real MQTT
// clients do what an intruder would (impersonate another well, preempt its timestamps, invent
// wells, eavesdrop, take the service's session) and a real TimescaleDB shows what was stored.

import { writeFileSync } from 'node:fs';
import path from 'node:path';
import mqtt from 'mqtt';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import type { Authenticator } from '../../src/broker/broker-auth.ts';
import { startConfiguredBroker } from '../../src/broker/configured.ts';
import { startEmbeddedBroker } from '../../src/broker/embedded-broker.ts';
import { loadConfig } from '../../src/config/config.ts';
import { createMetrics } from '../../src/metrics/metrics.ts';
import { replayRejects, takenBy } from '../../src/tools/rejects.ts';
import { freshDatabase, metric, query, startInProcess, Teardown, waitFor } from '../support/harness.ts';
import { device, devicePassword, embeddedAuthEnv, grantedQos, type Identities, INGEST_USER, identities, reading } from '../support/identity.ts';

const t = new Teardown();
afterAll(() => t.run());
const PREFIX = 'esp';
const topic = (well: string, site = 'site-a') => `${PREFIX}/${site}/${well}/telemetry`;
let ids: Identities;
let app: App;
let databaseUrl: string;
let url: string;
const rows = async (well: string) => (await query<{ n: number }>(databaseUrl, 'SELECT count(*)::int AS n FROM esp_telemetry WHERE well_id = $1', [well]))[0]!.n;
const refused = (reason: string, kind = 'publishes') => metric(app.httpPort, `esp_ingest_embedded_broker_${kind}_refused_total{reason="${reason}"}`);
/** Connects W-1 and stores one reading of it: proof that what came before it was processed. */
const sentinel = async (tsMs: number) => {
  const w1 = await device(t, url, { username: 'W-1', password: devicePassword('W-1') });
  await w1.publishAsync(topic('W-1'), reading(tsMs), { qos: 1 });
  await waitFor(
    'W-1 reading stored',
    async () =>
      (await query<{ n: number }>(databaseUrl, 'SELECT count(*)::int AS n FROM esp_telemetry WHERE well_id = $1 AND ts = $2', ['W-1', new Date(tsMs)]))[0]!
        .n === 1,
  );
  return w1;
};

beforeAll(async () => {
  ids = await identities(t, ['W-1', 'W-2', 'W-3']);
  databaseUrl = await freshDatabase(t);
  app = await startInProcess(t, PREFIX, { DATABASE_URL: databaseUrl, ...embeddedAuthEnv(ids), BROKER_JWT_CLOCK_TOLERANCE_S: '25' });
  url = app.mqttUrl;
});

describe('embedded broker: authentication', () => {
  it('refuses unknown users, wrong passwords and no credentials (CONNACK 4/5); a device and the service connect with their own', async () => {
    await expect(device(t, url, {})).rejects.toThrow(/Bad username or password|Not authorized/i);
    await expect(device(t, url, { username: 'W-1', password: 'wrong' })).rejects.toThrow(/Bad username or password/i);
    await expect(device(t, url, { username: 'W-9', password: devicePassword('W-9') })).rejects.toThrow(/Bad username or password/i);
    // aedes speaks MQTT 3.1.1 only: an MQTT 5 CONNECT is refused whatever it carries.
    await expect(device(t, url, { username: 'W-1', password: devicePassword('W-1'), protocolVersion: 5 })).rejects.toThrow();
    expect(await refused('bad_credentials', 'connections')).toBeGreaterThanOrEqual(3);
    await sentinel(Date.now() - 60_000);
  });

  it('picks up a changed password file without a restart: a new device gets in, a removed one is refused', async () => {
    ids.addUser('W-5', devicePassword('W-5'));
    await waitFor(
      'W-5 accepted',
      () =>
        device(t, url, { username: 'W-5', password: devicePassword('W-5') }).then(
          () => true,
          () => false,
        ),
      10_000,
      200,
    );
    ids.removeUser('W-5');
    await waitFor(
      'W-5 refused',
      () =>
        device(t, url, { username: 'W-5', password: devicePassword('W-5') }).then(
          () => false,
          () => true,
        ),
      10_000,
      200,
    );
  });
});

describe('embedded broker: each attack fails', () => {
  it('impostor: W-1 publishing to W-2 over MQTT 3.1.1 is acknowledged and dropped (0 rows); its persistent session does not loop, its own readings are stored', async () => {
    const impostor = await device(t, url, { username: 'W-1', password: devicePassword('W-1'), clientId: 'w1-persistent', clean: false });
    const before = await refused('other_well');
    // The PUBACK comes (aedes #210: no reconnect loop over a message the broker will never take).
    await impostor.publishAsync(topic('W-2'), reading(Date.now() - 50_000), { qos: 1 });
    for (let i = 0; i < 10; i++) await impostor.publishAsync(topic('W-1'), reading(Date.now() - 40_000 + i), { qos: 1 });
    expect(impostor.connected).toBe(true);
    await waitFor(
      '10 readings of W-1',
      async () =>
        (await query<{ n: number }>(databaseUrl, `SELECT count(*)::int AS n FROM esp_telemetry WHERE well_id = 'W-1' AND ts > now() - interval '45 s'`))[0]!
          .n >= 10,
    );
    expect(await rows('W-2')).toBe(0);
    expect(await refused('other_well')).toBe(before + 1);
  });

  it('preemption: future readings published for W-3 by another device are refused; W-3 later stores its own values at those timestamps', async () => {
    const at = Date.now() + 120_000;
    const attacker = await device(t, url, { username: 'W-1', password: devicePassword('W-1') });
    await attacker.publishAsync(topic('W-3'), reading(at, 99), { qos: 1 });
    const w3 = await device(t, url, { username: 'W-3', password: devicePassword('W-3') });
    await w3.publishAsync(topic('W-3'), reading(at, 51), { qos: 1 });
    await waitFor('W-3 reading', async () => (await rows('W-3')) === 1);
    const [row] = await query<{ vsd_frequency_hz: number }>(databaseUrl, `SELECT vsd_frequency_hz FROM esp_telemetry WHERE well_id = 'W-3'`);
    expect(row!.vsd_frequency_hz).toBe(51);
    expect(await metric(app.httpPort, 'esp_ingest_readings_duplicate_total')).toBe(0);
  });

  it('fake wells: 50 invented well ids get no row and no freshness series', async () => {
    const tracked = await metric(app.httpPort, 'esp_ingest_wells_tracked');
    const faker = await device(t, url, { username: 'W-1', password: devicePassword('W-1') });
    for (let i = 0; i < 50; i++) await faker.publishAsync(topic(`FAKE-${i}`), reading(Date.now() - 30_000), { qos: 1 });
    await sentinel(Date.now() - 20_000);
    expect((await query<{ n: number }>(databaseUrl, `SELECT count(*)::int AS n FROM esp_telemetry WHERE well_id LIKE 'FAKE-%'`))[0]!.n).toBe(0);
    expect(await metric(app.httpPort, 'esp_ingest_wells_tracked')).toBe(tracked);
  });

  it('eavesdropper: every well, #, $SYS, another well and the shared form are refused with SUBACK 0x80 and no disconnect; its own well is granted', async () => {
    const spy = await device(t, url, { username: 'W-1', password: devicePassword('W-1') });
    const filters = [`${PREFIX}/+/+/telemetry`, '#', '$SYS/#', `${PREFIX}/+/W-2/telemetry`, `$share/g/${PREFIX}/+/+/telemetry`, `${PREFIX}/#`];
    // One SUBSCRIBE per filter: MQTT.js rejects a SUBACK whose codes are all failures.
    for (const f of filters) expect(await grantedQos(spy, f), f).toBe(128);
    expect(await grantedQos(spy, `${PREFIX}/+/W-1/telemetry`)).toBe(1);
    expect(spy.connected).toBe(true);
    expect(await refused('wildcard_over_wells', 'subscriptions')).toBeGreaterThanOrEqual(2);
  });

  it('session hijack: a device using the service client id is refused (CONNACK 5); the service keeps its session and stores everything', async () => {
    const reconnects = await metric(app.httpPort, 'esp_ingest_mqtt_reconnects_total');
    for (let i = 0; i < 3; i++) {
      await expect(device(t, url, { username: 'W-1', password: devicePassword('W-1'), clientId: `esp-ingest-${PREFIX}`, clean: false })).rejects.toThrow(
        /Not authorized/i,
      );
    }
    // $SYS spoofing (aedes #597) is refused for every client, so the service is never told it left.
    const spoofer = await device(t, url, { username: 'W-1', password: devicePassword('W-1') });
    await spoofer.publishAsync(`$SYS/x/new/clients`, `esp-ingest-${PREFIX}`, { qos: 1 });
    const w2 = await device(t, url, { username: 'W-2', password: devicePassword('W-2') });
    const base = Date.now() - 10_000;
    for (let i = 0; i < 20; i++) await w2.publishAsync(topic('W-2'), reading(base + i), { qos: 1 });
    await waitFor('20 readings of W-2', async () => (await rows('W-2')) === 20);
    expect(await metric(app.httpPort, 'esp_ingest_mqtt_reconnects_total')).toBe(reconnects);
    expect(await refused('client_id_reserved', 'connections')).toBe(3);
  });
});

describe('embedded broker: JWT as the MQTT password', () => {
  it('accepts a valid ES256 token (well from sub, an RTC 20 s fast within tolerance); refuses alg none, a foreign issuer and an expired token, with 0 rows', async () => {
    const now = Math.floor(Date.now() / 1000);
    const good = await device(t, url, { username: 'W-7', password: await ids.token({ sub: 'W-7', iat: now + 20, nbf: now + 20 }) });
    await good.publishAsync(topic('W-7'), reading(Date.now() - 5_000), { qos: 1 });
    await waitFor('W-7 reading', async () => (await rows('W-7')) === 1);
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const none = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ iss: 'esp-test', aud: 'esp-ingest', sub: 'W-8', exp: now + 600 })}.`;
    await expect(device(t, url, { username: 'W-8', password: none })).rejects.toThrow(/Not authorized/i);
    await expect(device(t, url, { username: 'W-8', password: await ids.token({ sub: 'W-8', iss: 'elsewhere' }) })).rejects.toThrow(/Not authorized/i);
    await expect(device(t, url, { username: 'W-8', password: await ids.token({ sub: 'W-8', exp: now - 60 }) })).rejects.toThrow(/Not authorized/i);
    expect(await rows('W-8')).toBe(0);
    expect(await refused('token_invalid', 'connections')).toBe(2);
    expect(await refused('token_expired', 'connections')).toBeGreaterThanOrEqual(1);
  });

  it('closes the session when its token expires (exp + tolerance), within a keepalive; nothing it sends later is stored', async () => {
    // exp 23 s ago with a 25 s tolerance: valid for about 2 s more.
    const exp = Math.floor(Date.now() / 1000) - 23;
    const token = await ids.token({ sub: 'W-6', exp });
    const dev = await device(t, url, { username: 'W-6', password: token });
    const closed = new Promise<number>((resolve) => dev.once('close', () => resolve(Date.now())));
    await dev.publishAsync(topic('W-6'), reading(Date.now() - 1_000), { qos: 1 });
    const closedAt = await closed;
    const expiresAt = (exp + 25) * 1000;
    expect(closedAt).toBeGreaterThanOrEqual(expiresAt - 50);
    expect(closedAt - expiresAt).toBeLessThan(1_000);
    await waitFor('W-6 first reading', async () => (await rows('W-6')) === 1);
    await expect(device(t, url, { username: 'W-6', password: token })).rejects.toThrow(/Not authorized/i);
    expect(await rows('W-6')).toBe(1);
  });
});

describe('embedded broker: hooks', () => {
  it('a hook that throws (or rejects) refuses that one client; the broker keeps serving others', async () => {
    let calls = 0;
    const auth: Authenticator = {
      authenticate: async (clientId) => {
        calls++;
        if (clientId === 'throws') throw new Error('boom');
        return { ok: true, identity: { kind: 'device', wellId: clientId, site: null }, expiresAtMs: undefined };
      },
      close: () => undefined,
    };
    const broker = await startEmbeddedBroker(0, '127.0.0.1', { auth });
    t.add(() => broker.close());
    const local = `mqtt://127.0.0.1:${broker.port}`;
    await expect(device(t, local, { clientId: 'throws' })).rejects.toThrow(/Not authorized/i);
    const ok = await mqtt.connectAsync(local, { clientId: 'W-1', protocolVersion: 4, reconnectPeriod: 0 });
    t.add(() => ok.endAsync(true));
    await ok.publishAsync(topic('W-1'), reading(Date.now()), { qos: 1 });
    expect(calls).toBe(2);
  });
});

describe('embedded broker: the service with a token of its own', () => {
  // With BROKER=embedded the service takes its messages in-process and holds no MQTT session of
  // its own, so its token is exercised against the embedded broker run on its own (as
  // `npm run broker` would, with authentication), the service connecting to it over MQTT.
  it('the service token expires mid-session: the broker closes it, the service re-reads MQTT_PASSWORD_FILE (refreshed by a sidecar) and is back within seconds', async () => {
    const tokenFile = path.join(ids.dir, 'service.token');
    // Valid for about 2 s more (exp 23 s ago, 25 s tolerance).
    writeFileSync(tokenFile, `${await ids.token({ sub: INGEST_USER, exp: Math.floor(Date.now() / 1000) - 23 })}\n`);
    const db = await freshDatabase(t);
    const brokerMetrics = createMetrics();
    const brokerConfig = loadConfig({
      DATABASE_URL: db,
      ...embeddedAuthEnv(ids),
      BROKER_JWT_CLOCK_TOLERANCE_S: '25',
      MQTT_CLIENT_ID: 'esp-ingest-tok',
      MQTT_TOPIC: 'tok/{site}/{well_id}/telemetry',
    });
    const started = await startConfiguredBroker(brokerConfig, { metrics: brokerMetrics, log: pino({ level: 'silent' }) });
    t.add(() => started.broker.close());
    const svc = await startInProcess(t, 'tok', {
      DATABASE_URL: db,
      MQTT_URL: started.url,
      MQTT_PROTOCOL_VERSION: '4',
      MQTT_USERNAME: INGEST_USER,
      MQTT_PASSWORD_FILE: tokenFile,
      RETRY_MAX_DELAY_MS: '1000',
    });
    // The sidecar refreshes the token before it expires; the old session still ends at its exp.
    writeFileSync(tokenFile, `${await ids.token({ sub: INGEST_USER })}\n`);
    await waitFor('the session closed at exp', async () => (await metric(svc.httpPort, 'esp_ingest_mqtt_reconnects_total')) >= 1, 10_000);
    await waitFor('subscribed again', async () => (await metric(svc.httpPort, 'esp_ingest_mqtt_up')) === 1, 5_000);
    const w1 = await device(t, started.url, { username: 'W-1', password: devicePassword('W-1') });
    await w1.publishAsync('tok/site-a/W-1/telemetry', reading(Date.now() - 1_000), { qos: 1 });
    await waitFor('reading stored', async () => (await query<{ n: number }>(db, 'SELECT count(*)::int AS n FROM esp_telemetry'))[0]!.n === 1);
    const refusedAtExpiry = (await brokerMetrics.embeddedBrokerConnectionsRefused.get()).values.find((v) => v.labels.reason === 'token_expired')?.value;
    expect(refusedAtExpiry).toBe(1);
  });
});

describe('embedded broker: client ids', () => {
  it("a device cannot take another device's client id (and with it its session): refused, the owner stays connected", async () => {
    const clientId = `w1-gateway-${Math.random().toString(36).slice(2, 8)}`;
    const owner = await device(t, url, { username: 'W-1', password: devicePassword('W-1'), clientId, clean: false });
    const before = await refused('client_id_reserved', 'connections');
    await expect(device(t, url, { username: 'W-2', password: devicePassword('W-2'), clientId, clean: false })).rejects.toThrow();
    expect(await refused('client_id_reserved', 'connections')).toBe(before + 1);
    expect(owner.connected).toBe(true);
    // The owner may come back under its own id.
    await owner.endAsync();
    const again = await device(t, url, { username: 'W-1', password: devicePassword('W-1'), clientId, clean: false });
    expect(again.connected).toBe(true);
  });
});

describe('embedded broker: replaying rejections through it', () => {
  it('a replay the broker acknowledges but drops (a publisher that may not write there) keeps the rejection rows; one through the well itself deletes them once stored', async () => {
    // A rejection of W-3, as a stricter service would have left it.
    const tsMs = Date.now() - 3_600_000;
    await query(
      databaseUrl,
      "INSERT INTO rejected_messages (received_at, topic, well_id, reason, detail, payload) VALUES (now(), $1, 'W-3', 'out_of_range', 'x', $2)",
      [topic('W-3'), Buffer.from(reading(tsMs))],
    );
    const db = new pg.Client({ connectionString: databaseUrl });
    await db.connect();
    t.add(() => db.end());
    const taken = takenBy(db, loadConfig({ DATABASE_URL: databaseUrl, MQTT_TOPIC: `${PREFIX}/{site}/{well_id}/telemetry` }));
    const rejections = async () => (await query<{ n: number }>(databaseUrl, "SELECT count(*)::int AS n FROM rejected_messages WHERE well_id = 'W-3'"))[0]!.n;

    // W-1 may not publish for W-3: the broker acknowledges the PUBLISH and drops it (MQTT 3.1.1).
    const intruder = await device(t, url, { username: 'W-1', password: devicePassword('W-1') });
    const dropped = await replayRejects(db, intruder, { reason: 'out_of_range', takenWithinMs: 1_500 }, taken);
    expect(dropped).toMatchObject({ messages: 1, published: 0, rowsDeleted: 0 });
    expect(dropped.failed).toHaveLength(1);
    expect(await rejections()).toBe(1);

    const w3 = await device(t, url, { username: 'W-3', password: devicePassword('W-3') });
    expect(await replayRejects(db, w3, { reason: 'out_of_range' }, taken)).toEqual({ messages: 1, published: 1, rowsDeleted: 1, failed: [] });
    expect(await rejections()).toBe(0);
    expect(await rows('W-3')).toBeGreaterThanOrEqual(1);
  });
});
