// The main job, end to end on real data (`npm run demo`): TimescaleDB (DATABASE_URL, or the
// local one scripts/timescaledb.sh provisions, in a fresh database), the embedded broker, the
// service as a child process, and the replay of all six wells. Last line: one JSON object.
// Exits 0 only if committed + rejected = published.
//   npm run demo -- [--speed 0] [--per-message 1] [--crash]
//   --crash: kill -9 the service while the replay runs, restart it, and check nothing was lost.
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { startEmbeddedBroker } from '../broker/embedded-broker.ts';
import { replay } from './replay.ts';
import { ServiceProcess } from './service-process.ts';

const { values } = parseArgs({
  options: {
    speed: { type: 'string', default: '0' },
    'per-message': { type: 'string', default: '1' },
    crash: { type: 'boolean', default: false },
    log: { type: 'string', default: `/tmp/esp-ingest-demo-${process.pid}.log` },
  },
});
const say = (s: string) => process.stderr.write(`demo: ${s}\n`);

let databaseUrl = process.env.DATABASE_URL;
if (!databaseUrl) {
  say('no DATABASE_URL: provisioning the local TimescaleDB (first run builds it, ~35 s)');
  const server = execFileSync('bash', ['scripts/timescaledb.sh', 'start'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n').pop()!;
  const admin = new pg.Client({ connectionString: server });
  await admin.connect();
  await admin.query('DROP DATABASE IF EXISTS esp_demo WITH (FORCE)');
  await admin.query('CREATE DATABASE esp_demo');
  await admin.end();
  const u = new URL(server);
  u.pathname = '/esp_demo';
  databaseUrl = u.toString();
}
const db = new pg.Client({ connectionString: databaseUrl });
await db.connect();
const counts = async () => {
  const r = await db.query<{ t: string | null; r: string | null }>(
    `SELECT (SELECT count(*) FROM esp_telemetry) AS t, (SELECT count(*) FROM rejected_messages) AS r`,
  ).catch(() => ({ rows: [{ t: '0', r: '0' }] }));
  return { telemetry: Number(r.rows[0]?.t ?? 0), rejected: Number(r.rows[0]?.r ?? 0) };
};

const broker = await startEmbeddedBroker(0);
const mqttUrl = `mqtt://127.0.0.1:${broker.port}`;
say(`embedded broker on ${mqttUrl}; service log in ${values.log}`);
const service = new ServiceProcess({ DATABASE_URL: databaseUrl, MQTT_URL: mqttUrl, MQTT_PROTOCOL_VERSION: '4', MQTT_CLIENT_ID: `esp-ingest-demo-${process.pid}` }, values.log);
await service.start();
const before = await counts();

const bad = { topic: 'esp/3w/WELL-00003/telemetry', payload: '{"ts":"yesterday","intake_pressure_kpa":1}' };
say('replaying six wells (29,718 readings) plus one invalid reading');
const started = performance.now();
const replaying = replay({ url: mqttUrl, speed: Number(values.speed), perMessage: Number(values['per-message']), extra: [bad] });
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
const deadline = Date.now() + 120_000;
let now = await counts();
while (now.telemetry - before.telemetry + now.rejected - before.rejected < expected && Date.now() < deadline) {
  await new Promise((r) => setTimeout(r, 100));
  now = await counts();
}
const seconds = (performance.now() - started) / 1000;
const duplicates = await service.metric('esp_ingest_readings_duplicate_total');
const exitCode = await service.stop('SIGTERM');
now = await counts();
await broker.close();
const committed = now.telemetry - before.telemetry;
const rejected = now.rejected - before.rejected;
const reasons = (await db.query<{ reason: string; n: string }>('SELECT reason, count(*) AS n FROM rejected_messages GROUP BY 1 ORDER BY 1')).rows;
await db.end();
const ok = committed + rejected === expected && exitCode === 0;
say(`rejections by reason: ${reasons.map((r) => `${r.reason}=${r.n}`).join(', ') || 'none'}; service exit code ${exitCode}`);
process.stdout.write(
  `${JSON.stringify({
    published: expected,
    committed,
    rejected,
    duplicates,
    readings_per_second: Math.round(expected / seconds),
    table_rows: now.telemetry,
    ...(recoverySeconds !== undefined ? { crash_recovery_seconds: Number(recoverySeconds.toFixed(2)) } : {}),
    ok,
  })}\n`,
);
process.exit(ok ? 0 : 1);
