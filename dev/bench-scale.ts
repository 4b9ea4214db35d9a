// `npm run bench:scale`: side by side in one run, (a) scale-out: 1, 2 and 3 instances in one
// shared subscription group on a private Mosquitto, all writing to one database; (b) the
// embedded broker (BROKER=embedded: in-process, each device's PUBACK after commit) against the
// external path (Mosquitto, then the service's own PUBACK after commit), at 10 and 1 readings
// per message. Each well publishes on its own connection (QoS 1, MQTT 3.1.1, up to 1000
// awaiting PUBACK), as wells with their own controllers do. Per instance it also reports the
// cost: CPU milliseconds and database-connection milliseconds per 1000 readings, the figures a
// sizing on other machines starts from. Last line: one JSON object.
//   npm run bench:scale -- [--copies 2] [--rounds 1]   (figures are medians over the rounds)
import { parseCliOrExit } from '../src/tools/cli.ts';
import { createDatabase, localTimescaleUrl } from '../test/support/database.ts';
import { PrivateMosquitto } from '../test/support/mosquitto.ts';
import { freePort } from '../test/support/net.ts';
import { ServiceProcess } from '../test/support/service-process.ts';
import { type BenchMessage, benchMessages, benchWells, publishAll } from './bench-support.ts';

const { values, numbers } = parseCliOrExit(process.argv.slice(2), {
  name: 'bench:scale',
  usage: `usage: npm run bench:scale -- [--copies N] [--rounds N] [--log FILE]
  --copies N   the six wells N times over under distinct well ids, an integer ≥ 1 (default 2)
  --rounds N   rounds; figures are medians over them, an integer ≥ 1 (default 1)
  --log FILE   the services' JSON log (default /tmp/esp-ingest-bench-scale.log)
DATABASE_URL: a server where the bench may drop and create esp_bench_* databases; unset = the
local TimescaleDB that scripts/timescaledb.sh provisions. Needs mosquitto on the PATH.`,
  options: {
    copies: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '1' },
    log: { type: 'string', default: '/tmp/esp-ingest-bench-scale.log' },
  },
  numbers: { copies: { min: 1, integer: true }, rounds: { min: 1, integer: true } },
});
const say = (s: string) => process.stderr.write(`bench:scale: ${s}\n`);
const wells = benchWells(numbers.copies);
const totalReadings = wells.reduce((n, w) => n + w.readings.length, 0);
const server = process.env.DATABASE_URL ?? localTimescaleUrl();
const mosquitto = new PrivateMosquitto({ endWithScript: true });
await mosquitto.start();
say(`${totalReadings} readings over ${wells.length} wells; Mosquitto on ${mosquitto.url}; service log ${values.log}`);

const serviceOptions = { logFile: values.log, inheritEnv: true, endWithScript: true };

interface Run {
  /** Readings committed per second, first publish to last commit. */
  readonly rate: number;
  /** CPU milliseconds of the service processes per 1000 readings (all instances). */
  readonly cpuMsPer1000: number;
  /** Milliseconds of committing (database connection busy) per 1000 readings. */
  readonly dbMsPer1000: number;
}

const sum = async (svcs: ServiceProcess[], name: string) => (await Promise.all(svcs.map((s) => s.metric(name)))).reduce((a, b) => a + b, 0);

/** Starts `svcs`, publishes `msgs` to `url`, waits until every reading is committed. */
async function measure(svcs: ServiceProcess[], url: string, msgs: BenchMessage[]): Promise<Run> {
  await Promise.all(svcs.map((s) => s.start()));
  const cpu0 = await sum(svcs, 'esp_ingest_process_cpu_seconds_total');
  const started = performance.now();
  const publishing = publishAll(url, msgs, { connectionPerTopic: true, protocolVersion: 4 });
  while ((await sum(svcs, 'esp_ingest_readings_committed_total')) < totalReadings) await new Promise((r) => setTimeout(r, 10));
  const seconds = (performance.now() - started) / 1000;
  const [cpu1, flushSeconds] = [await sum(svcs, 'esp_ingest_process_cpu_seconds_total'), await sum(svcs, 'esp_ingest_flush_duration_seconds_sum')];
  await publishing;
  await Promise.all(svcs.map((s) => s.stop()));
  return { rate: totalReadings / seconds, cpuMsPer1000: ((cpu1 - cpu0) * 1e6) / totalReadings, dbMsPer1000: (flushSeconds * 1e6) / totalReadings };
}

/** `instances` services in one shared group on Mosquitto, one database. */
async function external(instances: number, perMessage: number): Promise<Run> {
  const prefix = `x${instances}p${perMessage}`;
  const db = await createDatabase(server, `esp_bench_scale_${prefix}`);
  const svcs = Array.from(
    { length: instances },
    (_, i) =>
      new ServiceProcess(
        {
          DATABASE_URL: db,
          MQTT_URL: mosquitto.url,
          MQTT_TOPIC: `${prefix}/{site}/{well_id}/telemetry`,
          MQTT_CLIENT_ID: `esp-bench-${prefix}-${i}`,
          ...(instances > 1 ? { MQTT_SHARED_GROUP: `bench-${prefix}` } : {}),
          LOG_LEVEL: 'warn',
        },
        serviceOptions,
      ),
  );
  return measure(svcs, mosquitto.url, benchMessages(wells, perMessage, prefix));
}

/** One service with BROKER=embedded; the wells publish to it. */
async function embedded(perMessage: number): Promise<Run> {
  const prefix = `e1p${perMessage}`;
  const db = await createDatabase(server, `esp_bench_scale_${prefix}`);
  const port = await freePort();
  const svc = new ServiceProcess(
    { DATABASE_URL: db, BROKER: 'embedded', BROKER_PORT: String(port), MQTT_TOPIC: `${prefix}/{site}/{well_id}/telemetry`, LOG_LEVEL: 'warn' },
    serviceOptions,
  );
  return measure([svc], `mqtt://127.0.0.1:${port}`, benchMessages(wells, perMessage, prefix));
}

const cases = {
  external_1_instance_1_per_message: () => external(1, 1),
  external_2_instances_1_per_message: () => external(2, 1),
  external_3_instances_1_per_message: () => external(3, 1),
  embedded_1_per_message: () => embedded(1),
  external_1_instance_10_per_message: () => external(1, 10),
  external_2_instances_10_per_message: () => external(2, 10),
  external_3_instances_10_per_message: () => external(3, 10),
  embedded_10_per_message: () => embedded(10),
};
type Case = keyof typeof cases;
const runs = Object.fromEntries(Object.keys(cases).map((k) => [k, [] as Run[]])) as Record<Case, Run[]>;
// Rounds interleave the cases so that machine noise hits each alike; medians per figure.
for (let round = 1; round <= numbers.rounds; round++) {
  say(`round ${round}/${numbers.rounds}`);
  for (const [name, run] of Object.entries(cases) as [Case, () => Promise<Run>][]) {
    const r = await run();
    runs[name].push(r);
    say(`  ${name}: ${Math.round(r.rate)} readings/s; ${r.cpuMsPer1000.toFixed(1)} CPU ms and ${r.dbMsPer1000.toFixed(1)} commit ms per 1000 readings`);
  }
}
await mosquitto.destroy();
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const result = Object.fromEntries(
  (Object.entries(runs) as [Case, Run[]][]).map(([name, rs]) => [
    name,
    {
      readings_per_s: Math.round(median(rs.map((r) => r.rate))),
      cpu_ms_per_1000_readings: Number(median(rs.map((r) => r.cpuMsPer1000)).toFixed(1)),
      commit_ms_per_1000_readings: Number(median(rs.map((r) => r.dbMsPer1000)).toFixed(1)),
    },
  ]),
);
process.stdout.write(`${JSON.stringify({ readings: totalReadings, wells: wells.length, rounds: numbers.rounds, ...result })}\n`);
process.exit(0);
