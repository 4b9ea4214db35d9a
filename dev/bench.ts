// `npm run bench`: end-to-end readings/s through a real broker into TimescaleDB, side by side
// in one run with (a) the COPY ceiling: the same rows copied straight into the same table, and
// (b) the broker ceiling: the same messages published and received with no database.
// Two loads: 10 readings per message (vs the COPY ceiling) and 1 per message (vs the broker
// ceiling). Last line: one JSON object with every figure and the ratios.
//   npm run bench -- [--copies 2] [--rounds 3]   (figures are medians over the rounds; --help)
// On a terminal each load shows progress on stderr (done/total, rate, ETA); none when piped.
import { spawn } from 'node:child_process';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import copyStreams from 'pg-copy-streams';
import { pino } from 'pino';
import { DEFAULT_CATALOG } from '../src/decode/catalog.ts';
import { decodeMessage } from '../src/decode/decode.ts';
import { migrate } from '../src/schema/migrate.ts';
import { readingLines, writerSql } from '../src/sink/writer-sql.ts';
import { parseCliOrExit } from '../src/tools/cli.ts';
import { Progress } from '../src/tools/progress.ts';
import { adopt } from '../test/support/children.ts';
import { createDatabase, localTimescaleUrl } from '../test/support/database.ts';
import { PrivateMosquitto } from '../test/support/mosquitto.ts';
import { ServiceProcess } from '../test/support/service-process.ts';
import { waitFor } from '../test/support/wait.ts';
import { type BenchMessage, benchMessages, benchWells, publishAll as publishTo } from './bench-support.ts';

const { values, numbers } = parseCliOrExit(process.argv.slice(2), {
  name: 'bench',
  usage: `usage: npm run bench -- [--copies N] [--rounds N] [--log FILE]
  --copies N   the six wells N times over under distinct well ids, an integer ≥ 1 (default 2)
  --rounds N   rounds; figures are medians over them, an integer ≥ 1 (default 3)
  --log FILE   the service's JSON log (default /tmp/esp-ingest-bench.log)
DATABASE_URL: a server where the bench may drop and create esp_bench_* databases; unset = the
local TimescaleDB that scripts/timescaledb.sh provisions. Needs mosquitto on the PATH.`,
  options: {
    copies: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '3' },
    log: { type: 'string', default: '/tmp/esp-ingest-bench.log' },
  },
  numbers: { copies: { min: 1, integer: true }, rounds: { min: 1, integer: true } },
});
const say = (s: string) => process.stderr.write(`bench: ${s}\n`);
const copies = numbers.copies;

// The load: the real wells, `copies` times over under distinct well ids.
const wells = benchWells(copies);
const totalReadings = wells.reduce((n, w) => n + w.readings.length, 0);
const messages = (perMessage: number, prefix: string) => benchMessages(wells, perMessage, prefix);

// Infrastructure: TimescaleDB and a private Mosquitto with the project's mosquitto.conf.
const server = process.env.DATABASE_URL ?? localTimescaleUrl();
const mosquitto = new PrivateMosquitto({ endWithScript: true });
await mosquitto.start();
const mqttUrl = mosquitto.url;
say(`${totalReadings} readings (${copies}× the six wells); Mosquitto on ${mqttUrl}; service log ${values.log}`);

/** Publishes every message QoS 1 with up to 1000 awaiting PUBACK; `progress` counts the PUBACKs. */
const publishAll = (msgs: BenchMessage[], progress?: Progress) => publishTo(mqttUrl, msgs, progress ? { progress } : {});

/** (a) COPY ceiling: the decoded rows, COPY'd straight into esp_telemetry in one transaction. */
async function copyCeiling(): Promise<number> {
  const url = await createDatabase(server, 'esp_bench_copy');
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  await migrate(pool, DEFAULT_CATALOG, pino({ level: 'silent' }));
  const opts = { catalog: DEFAULT_CATALOG, unknownFields: 'keep' as const, messageMaxBytes: 1 << 24, tsMinMs: 0, tsMaxFutureMs: 8.64e15 };
  const rows = messages(10, 'b').flatMap(
    (m) => decodeMessage(Buffer.from(m.payload), { wellId: m.topic.split('/')[2]!, site: '3w', receivedAtMs: Date.now() }, opts).readings,
  );
  const client = await pool.connect();
  const started = performance.now();
  await client.query('BEGIN');
  // The service's own COPY text (sink/writer-sql.ts), one chunk per row as this ceiling has always
  // been measured (the writer sends 64 KiB chunks, which COPY faster).
  const perRow = function* () {
    for (const r of rows) yield* readingLines([r], DEFAULT_CATALOG.length);
  };
  await pipeline(Readable.from(perRow()), client.query(copyStreams.from(`COPY ${writerSql(DEFAULT_CATALOG).telemetryCopyTarget} FROM STDIN`)));
  await client.query('COMMIT');
  const seconds = (performance.now() - started) / 1000;
  client.release();
  await pool.end();
  return rows.length / seconds;
}

/** (b) Broker ceiling: a bare subscriber (separate process, as the service is) receives it all. */
async function brokerCeiling(perMessage: number): Promise<number> {
  const prefix = `ceil${perMessage}`;
  const msgs = messages(perMessage, prefix);
  const sub = adopt(
    spawn(process.execPath, ['--import', 'tsx', 'dev/bench-subscriber.ts', mqttUrl, `${prefix}/+/+/telemetry`, String(totalReadings), String(perMessage)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    }),
  );
  let out = '';
  sub.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  let exit: number | null | undefined;
  sub.once('exit', (code) => (exit = code));
  await waitFor('the ceiling subscriber to subscribe', () => out.includes('ready'), 30_000);
  const started = performance.now();
  const progress = new Progress({ label: `  broker ceiling, ${perMessage}/message, published`, unit: 'messages', total: msgs.length });
  await publishAll(msgs, progress);
  progress.end();
  await waitFor(
    `the ceiling subscriber to receive ${totalReadings} readings (it printed ${JSON.stringify(out)}, exit ${exit})`,
    () => out.includes('done'),
    180_000,
    5,
  );
  const seconds = (performance.now() - started) / 1000;
  await waitFor('the ceiling subscriber to exit', () => exit !== undefined, 10_000);
  return totalReadings / seconds;
}

/** End to end: the service (child process, defaults) from the first publish to the last commit. */
async function endToEnd(perMessage: number): Promise<{ rate: number; peakRssBytes: number }> {
  const prefix = `e2e${perMessage}`;
  const url = await createDatabase(server, `esp_bench_e2e${perMessage}`);
  const svc = new ServiceProcess(
    { DATABASE_URL: url, MQTT_URL: mqttUrl, MQTT_TOPIC: `${prefix}/{site}/{well_id}/telemetry`, MQTT_CLIENT_ID: `esp-bench-${perMessage}`, LOG_LEVEL: 'warn' },
    { logFile: values.log, inheritEnv: true, endWithScript: true },
  );
  await svc.start();
  const msgs = messages(perMessage, prefix);
  let peakRssBytes = 0;
  const started = performance.now();
  const progress = new Progress({ label: `  end to end, ${perMessage}/message, committed`, unit: 'readings', total: totalReadings });
  const publishing = publishAll(msgs);
  for (;;) {
    const [committed, rss] = await Promise.all([svc.metric('esp_ingest_readings_committed_total'), svc.metric('esp_ingest_process_resident_memory_bytes')]);
    peakRssBytes = Math.max(peakRssBytes, rss);
    progress.update(committed);
    if (committed >= totalReadings) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  progress.end();
  const seconds = (performance.now() - started) / 1000;
  const [batches, flushSeconds] = await Promise.all([svc.metric('esp_ingest_batch_rows_count'), svc.metric('esp_ingest_flush_duration_seconds_sum')]);
  say(
    `  ${batches} batches, mean ${Math.round(totalReadings / batches)} readings, mean commit ${((flushSeconds / batches) * 1000).toFixed(1)} ms, database busy ${((flushSeconds / seconds) * 100).toFixed(0)}% of the run`,
  );
  await publishing;
  await svc.stop();
  return { rate: totalReadings / seconds, peakRssBytes };
}

// Rounds interleave the five measurements so that machine noise hits each alike; medians.
const rounds = numbers.rounds;
const runs = { copy: [] as number[], broker10: [] as number[], e2e10: [] as number[], broker1: [] as number[], e2e1: [] as number[], rss: [] as number[] };
for (let round = 1; round <= rounds; round++) {
  say(`round ${round}/${rounds}`);
  runs.copy.push(await copyCeiling());
  say(`  COPY ceiling: ${Math.round(runs.copy.at(-1)!)} readings/s`);
  runs.broker10.push(await brokerCeiling(10));
  say(`  broker ceiling, 10 readings/message: ${Math.round(runs.broker10.at(-1)!)} readings/s`);
  const e10 = await endToEnd(10);
  runs.e2e10.push(e10.rate);
  say(`  end to end, 10 readings/message: ${Math.round(e10.rate)} readings/s (peak RSS ${(e10.peakRssBytes / 2 ** 20).toFixed(0)} MiB)`);
  runs.broker1.push(await brokerCeiling(1));
  say(`  broker ceiling, 1 reading/message: ${Math.round(runs.broker1.at(-1)!)} readings/s`);
  const e1 = await endToEnd(1);
  runs.e2e1.push(e1.rate);
  say(`  end to end, 1 reading/message: ${Math.round(e1.rate)} readings/s (peak RSS ${(e1.peakRssBytes / 2 ** 20).toFixed(0)} MiB)`);
  runs.rss.push(e10.peakRssBytes, e1.peakRssBytes);
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const copyRate = median(runs.copy);
const broker10 = median(runs.broker10);
const broker1 = median(runs.broker1);
const e2e10 = { rate: median(runs.e2e10) };
const e2e1 = { rate: median(runs.e2e1) };
await mosquitto.destroy();

const r = (x: number) => Math.round(x);
const result = {
  readings: totalReadings,
  copy_ceiling_readings_per_s: r(copyRate),
  broker_ceiling_10_per_message_readings_per_s: r(broker10),
  broker_ceiling_1_per_message_readings_per_s: r(broker1),
  end_to_end_10_per_message_readings_per_s: r(e2e10.rate),
  end_to_end_1_per_message_readings_per_s: r(e2e1.rate),
  ratio_e2e_10_to_copy_ceiling: Number((e2e10.rate / copyRate).toFixed(3)),
  ratio_e2e_1_to_broker_ceiling: Number((e2e1.rate / broker1).toFixed(3)),
  rounds,
  peak_rss_mib: r(Math.max(...runs.rss) / 2 ** 20),
  targets_met: e2e10.rate >= 0.5 * copyRate && e2e1.rate >= 0.5 * broker1,
};
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
