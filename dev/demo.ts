// The main job, end to end on real data (`npm run demo`): TimescaleDB (DATABASE_URL, or the
// local one scripts/timescaledb.sh provisions, in a fresh database), the embedded broker with
// authentication on (a Mosquitto password file: each well and the service its own credential),
// the service as a child process, the replay of all six wells, and one impostor message (a well
// publishing as another) that must be refused. Last line: one JSON object.
// With --crash the broker is the service's own (BROKER=embedded): kill -9 takes it down too, and
// each well (its own MQTT.js connection, clean session off) resends what it was not PUBACKed.
// Exits 0 only if committed + rejected = published; 2 on bad options or a database that already
// holds readings or rejections (the counts must start at zero). `npm run demo -- --help` for options.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import pg from 'pg';
import { createAuthenticator } from '../src/broker/broker-auth.ts';
import { type EmbeddedBroker, startEmbeddedBroker } from '../src/broker/embedded-broker.ts';
import { parseCliOrExit } from '../src/tools/cli.ts';
import { issuePassword } from '../src/tools/credential.ts';
import { createDatabase, localTimescaleUrl } from '../test/support/database.ts';
import { freePort } from '../test/support/net.ts';
import { ServiceProcess } from '../test/support/service-process.ts';
import { loadWells } from '../test/support/wells.ts';
import { replay } from './replay.ts';

const { values, numbers } = parseCliOrExit(process.argv.slice(2), {
  name: 'demo',
  usage: `usage: npm run demo -- [--speed N] [--per-message N] [--crash] [--log FILE]
  --speed N         N× real time; 0 = as fast as the broker takes (default 0)
  --per-message N   readings per MQTT message, an integer ≥ 1 (default 1)
  --crash           BROKER=embedded; kill -9 the service (and its broker) mid-replay, restart it,
                    check every reading a well got a PUBACK for was stored once
  --log FILE        the service's JSON log (default /tmp/esp-ingest-demo-<pid>.log)
DATABASE_URL: an empty database (the demo checks exact counts); unset = a fresh one on the
local TimescaleDB that scripts/timescaledb.sh provisions.`,
  options: {
    speed: { type: 'string', default: '0' },
    'per-message': { type: 'string', default: '1' },
    crash: { type: 'boolean', default: false },
    log: { type: 'string', default: `/tmp/esp-ingest-demo-${process.pid}.log` },
  },
  numbers: { speed: { min: 0 }, 'per-message': { min: 1, integer: true } },
});
const say = (s: string) => process.stderr.write(`demo: ${s}\n`);
/** After the replay, how long the counts may stand still before the demo gives up, ms. */
const STALL_MS = 30_000;

let databaseUrl = process.env.DATABASE_URL;
if (!databaseUrl) {
  say('no DATABASE_URL: provisioning the local TimescaleDB (first run builds it, ~35 s)');
  // A name of its own per run, so two demos on one server never drop each other's database.
  databaseUrl = await createDatabase(localTimescaleUrl(), `esp_demo_${process.pid}`);
  say(`database ${new URL(databaseUrl).pathname.slice(1)} (kept after the demo for querying)`);
}
const db = new pg.Client({ connectionString: databaseUrl });
await db.connect();
/** Rows of a table; 0 while the service has not created it yet. */
const rows = async (table: 'esp_telemetry' | 'rejected_messages'): Promise<number> => {
  const { rows: r } = await db.query<{ present: boolean }>('SELECT to_regclass($1) IS NOT NULL AS present', [table]);
  if (!r[0]?.present) return 0;
  return Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]?.n ?? 0);
};
const counts = async () => ({ telemetry: await rows('esp_telemetry'), rejected: await rows('rejected_messages') });

const before = await counts();
if (before.telemetry > 0 || before.rejected > 0) {
  say(
    `${new URL(databaseUrl).pathname.slice(1) || 'the database'} already holds ${before.telemetry} row(s) in esp_telemetry and ${before.rejected} in rejected_messages; ` +
      'the demo checks exact counts: point DATABASE_URL at an empty database, or unset it to use a fresh one',
  );
  await db.end();
  process.exit(2);
}

// Identities: one password file (Mosquitto's format, written by mosquitto_passwd) with the
// service's user and every well, each with a password of its own.
const authDir = mkdtempSync(path.join(tmpdir(), 'esp-demo-auth-'));
const passwordFile = path.join(authDir, 'passwd');
const serviceUser = 'esp-ingest';
const serviceClientId = `esp-ingest-demo-${process.pid}`;
const servicePasswordFile = path.join(authDir, 'ingest.password');
writeFileSync(servicePasswordFile, issuePassword(passwordFile, serviceUser, false), { mode: 0o600 });
const wells = loadWells();
const wellPasswords = new Map(wells.map((w) => [w.wellId, issuePassword(passwordFile, w.wellId)]));
const credentials = (wellId: string) => ({ username: wellId, password: wellPasswords.get(wellId) ?? '' });
const refusedPublishes = new Map<string, number>();
// --crash: the service's own broker (BROKER=embedded) on a fixed port (the same after the
// restart), a short flush interval (MQTT.js resends its unacknowledged messages one per PUBACK),
// and a window of 50 per well.
let broker: EmbeddedBroker | undefined;
if (!values.crash) {
  const auth = await createAuthenticator({ passwordFile, jwt: undefined, serviceUsername: serviceUser, serviceClientId });
  broker = await startEmbeddedBroker(0, '127.0.0.1', {
    auth,
    report: { publish: (reason) => refusedPublishes.set(reason, (refusedPublishes.get(reason) ?? 0) + 1) },
  });
}
const brokerPort = broker?.port ?? (await freePort());
const mqttUrl = `mqtt://127.0.0.1:${brokerPort}`;
say(
  `${broker ? 'embedded broker' : "the service's embedded broker"} on ${mqttUrl} (password file: ${wells.length} wells and the service); service log in ${values.log}`,
);
const brokerEnv = broker
  ? { MQTT_URL: mqttUrl, MQTT_PROTOCOL_VERSION: '4', MQTT_USERNAME: serviceUser, MQTT_PASSWORD_FILE: servicePasswordFile }
  : {
      BROKER: 'embedded',
      BROKER_PORT: String(brokerPort),
      BROKER_PASSWORD_FILE: passwordFile,
      MQTT_USERNAME: serviceUser,
      MQTT_PASSWORD_FILE: servicePasswordFile,
      BATCH_FLUSH_INTERVAL_MS: '20',
    };
const service = new ServiceProcess(
  { DATABASE_URL: databaseUrl, ...brokerEnv, MQTT_CLIENT_ID: serviceClientId },
  { logFile: values.log, inheritEnv: true, endWithScript: true },
);
await service.start();

const bad = { topic: 'esp/3w/WELL-00003/telemetry', payload: '{"ts":"yesterday","intake_pressure_kpa":1}' };
say('replaying six wells (29,718 readings) plus one invalid reading');
const started = performance.now();
const replaying = replay({
  url: mqttUrl,
  speed: numbers.speed,
  perMessage: numbers['per-message'],
  extra: [bad],
  wells,
  credentials,
  ...(values.crash ? { clientPerWell: true, window: 50 } : {}),
});
let recoverySeconds: number | undefined;
if (values.crash) {
  await new Promise((r) => setTimeout(r, 1500));
  say('kill -9 of the service mid-replay');
  await service.stop('SIGKILL');
  const t0 = performance.now();
  await service.start();
  recoverySeconds = (performance.now() - t0) / 1000;
  say(`restarted and ready in ${recoverySeconds.toFixed(2)} s`);
}
const published = await replaying;
const expected = published.readings;
// The impostor: the first well's device publishes a reading as the second well. The broker
// acknowledges it (MQTT 3.1.1 cannot refuse a PUBLISH) and drops it: no row, counted.
const [own, other] = [wells[0]!.wellId, wells[1]!.wellId];
const impostorTs = '2001-01-01T00:00:00Z';
const impostor = await mqtt.connectAsync(mqttUrl, { clientId: `impostor-${process.pid}`, protocolVersion: 4, ...credentials(own) });
await impostor.publishAsync(`esp/3w/${other}/telemetry`, JSON.stringify({ ts: impostorTs, motor_current_a: 999 }), { qos: 1 });
await impostor.endAsync();
// With --crash the service's own broker counts the refusal.
const impostorRefusedByService = broker ? 0 : await service.metric('esp_ingest_embedded_broker_publishes_refused_total{reason="other_well"}');
say(`impostor: ${own}'s credentials publishing as ${other}: ${broker ? (refusedPublishes.get('other_well') ?? 0) : impostorRefusedByService} refused`);
// Wait for every reading to be committed or rejected; give up once nothing moved for STALL_MS.
let now = await counts();
let lastChangeMs = Date.now();
while (now.telemetry + now.rejected < expected) {
  if (Date.now() - lastChangeMs > STALL_MS) {
    say(`gave up: no new rows for ${STALL_MS / 1000} s with ${now.telemetry} committed + ${now.rejected} rejected of ${expected} published; see ${values.log}`);
    break;
  }
  await new Promise((r) => setTimeout(r, 100));
  const next = await counts();
  if (next.telemetry !== now.telemetry || next.rejected !== now.rejected) lastChangeMs = Date.now();
  now = next;
}
const seconds = (performance.now() - started) / 1000;
const duplicates = await service.metric('esp_ingest_readings_duplicate_total');
const exitCode = await service.stop('SIGTERM');
now = await counts();
await broker?.close();
rmSync(authDir, { recursive: true, force: true });
const impostorRows = Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM esp_telemetry WHERE ts = $1`, [impostorTs])).rows[0]?.n ?? 0);
const impostorRefused = broker ? (refusedPublishes.get('other_well') ?? 0) : impostorRefusedByService;
const committed = now.telemetry;
const rejected = now.rejected;
const reasons = (await db.query<{ reason: string; n: string }>('SELECT reason, count(*) AS n FROM rejected_messages GROUP BY 1 ORDER BY 1')).rows;
await db.end();
const ok = committed + rejected === expected && exitCode === 0 && impostorRefused === 1 && impostorRows === 0;
say(`rejections by reason: ${reasons.map((r) => `${r.reason}=${r.n}`).join(', ') || 'none'}; service exit code ${exitCode}`);
process.stdout.write(
  `${JSON.stringify({
    published: expected,
    committed,
    rejected,
    duplicates,
    readings_per_second: Math.round(expected / seconds),
    table_rows: now.telemetry,
    impostor_refused: impostorRefused,
    impostor_rows: impostorRows,
    ...(recoverySeconds !== undefined ? { crash_recovery_seconds: Number(recoverySeconds.toFixed(2)) } : {}),
    ok,
  })}\n`,
);
process.exit(ok ? 0 : 1);
