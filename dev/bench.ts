// `npm run bench`: the service against its yardsticks, in one run on one machine. Throughput
// (readings/s from the first publish to the last commit) side by side with (a) the COPY ceiling:
// the same rows copied straight into the same table; (b) the broker ceiling: the same messages
// published and received with no database; (c) the pipe ceiling (dev/bench-pipe.ts): the leanest
// MQTT → JSON.parse → COPY pipeline with none of the service's guarantees, the fair yardstick.
// For the service and the pipe also CPU seconds per 100,000 readings and peak RSS of the process,
// and the publish→commit latency (p50, p99) at half the pipe ceiling's rate. Loads of 10 and of 1
// readings per message. Last line: one JSON object with every figure, the ratios and the targets.
//   npm run bench -- [--copies 3] [--rounds 3]   (figures are medians over the rounds; --help)
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
import { createDatabase, localTimescaleUrl, query } from '../test/support/database.ts';
import { PrivateMosquitto } from '../test/support/mosquitto.ts';
import { waitFor } from '../test/support/wait.ts';
import { buildIngesters, type Ingester, type LoadContext, type LoadResult, measureLoad } from './bench-load.ts';
import { benchMessages, benchWells, publishAll } from './bench-support.ts';

const { values, numbers } = parseCliOrExit(process.argv.slice(2), {
  name: 'bench',
  usage: `usage: npm run bench -- [--copies N] [--rounds N] [--log FILE]
  --copies N   the six wells N times over under distinct well ids, an integer ≥ 1 (default 3)
  --rounds N   rounds; figures are medians over them, an integer ≥ 1 (default 3)
  --log FILE   the service's JSON log (default /tmp/esp-ingest-bench.log)
DATABASE_URL: a server where the bench may create and drop esp_bench_* databases; unset = the
local TimescaleDB that scripts/timescaledb.sh provisions. End times and latencies come from
commit timestamps where the server has track_commit_timestamp on (the local one does).
BATCH_FLUSH_INTERVAL_MS and the service's other settings are taken from the environment.
Needs mosquitto on the PATH.`,
  options: {
    copies: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '3' },
    log: { type: 'string', default: '/tmp/esp-ingest-bench.log' },
  },
  numbers: { copies: { min: 1, integer: true }, rounds: { min: 1, integer: true } },
});
const say = (s: string) => process.stderr.write(`bench: ${s}\n`);
const n = (x: number) => Math.round(x).toLocaleString('en-US');
const r = (x: number) => Math.round(x);
const mb = (bytes: number) => Math.round(bytes / 1e6);
const per = (k: number) => (k === 1 ? '1 reading/message' : `${k} readings/message`);
const copies = numbers.copies;

/** Each round's figures under their JSON names: readings/s, MB and ms whole, CPU seconds to 0.001. */
const runs = new Map<string, number[]>();
const add = (name: string, x: number) => runs.set(name, [...(runs.get(name) ?? []), name.includes('_cpu_s_') ? Number(x.toFixed(3)) : r(x)]);

// The load: the real wells, `copies` times over under distinct well ids.
const wells = benchWells(copies);
const totalReadings = wells.reduce((n, w) => n + w.readings.length, 0);
const messages = (perMessage: number, prefix: string) => benchMessages(wells, perMessage, prefix);

// The service as the image runs it (its bundle) and the pipe ceiling bundled alike.
buildIngesters();

// Infrastructure: TimescaleDB and a private Mosquitto with the project's mosquitto.conf.
const server = process.env.DATABASE_URL ?? localTimescaleUrl();
const mosquitto = new PrivateMosquitto({ endWithScript: true });
await mosquitto.start();
const mqttUrl = mosquitto.url;
say(`${totalReadings} readings (${copies}× the six wells); Mosquitto on ${mqttUrl}; service log ${values.log}`);
const [setting] = await query<{ track_commit_timestamp: string }>(server, 'SHOW track_commit_timestamp');
const commitTimes = setting?.track_commit_timestamp === 'on';
if (!commitTimes) {
  say('track_commit_timestamp is off on this server: loads end when the bench sees the last commit (the service polled every 100 ms), no latency figures');
}
// Database names unique to this run, each dropped after its measurement: two benches on one server (two
// engineers, two worktrees) would otherwise drop each other's databases mid-load.
const databasePrefix = `esp_bench_${process.pid}`;
const ctx: LoadContext = { mqttUrl, server, databasePrefix, logFile: values.log, commitTimes };
/** The service's flush interval, ms (its default, config.ts, unless the environment it inherits sets one): the latency target is it + 100. */
const flushIntervalMs = Number(process.env.BATCH_FLUSH_INTERVAL_MS ?? 200);

/** (a) COPY ceiling: the decoded rows, COPY'd straight into esp_telemetry in one transaction. */
async function copyCeiling(): Promise<number> {
  const url = await createDatabase(server, `${databasePrefix}_copy`);
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
  await query(server, `DROP DATABASE ${databasePrefix}_copy WITH (FORCE)`);
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
  await publishAll(mqttUrl, msgs, { progress });
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

/** A load through the service (`end to end`) or the pipe ceiling; figures under their JSON names. */
async function load(kind: Ingester, k: number, readingsPerS?: number): Promise<LoadResult> {
  const prefix = `${kind === 'service' ? 'e2e' : 'pipe'}${k}${readingsPerS ? 'half' : ''}`;
  const res = await measureLoad(ctx, kind, prefix, messages(k, prefix), totalReadings, readingsPerS);
  const name = kind === 'service' ? 'end to end' : 'pipe ceiling';
  const usage = `CPU ${res.cpuSPer100k.toFixed(2)} s/100k readings, peak RSS ${mb(res.peakRssBytes)} MB`;
  if (readingsPerS) {
    const lat = res.latency ? `latency p50 ${r(res.latency.p50)} ms, p99 ${r(res.latency.p99)} ms` : 'latency unknown';
    say(`  ${name}, ${per(k)}, half load (${n(readingsPerS)} readings/s, published at ${n(res.publishedRate)}): ${lat}, ${usage}`);
    if (res.latency) {
      add(`${kind}_latency_p50_ms_${k}_per_message`, res.latency.p50);
      add(`${kind}_latency_p99_ms_${k}_per_message`, res.latency.p99);
    }
  } else {
    say(`  ${name}, ${per(k)}: ${n(res.rate)} readings/s, ${usage}${res.note ? `; ${res.note}` : ''}`);
    add(kind === 'service' ? `end_to_end_${k}_per_message_readings_per_s` : `pipe_ceiling_${k}_per_message_readings_per_s`, res.rate);
    add(`${kind}_cpu_s_per_100k_${k}_per_message`, res.cpuSPer100k);
    // At full speed, as CPU: the half-load loads' figures are on stderr only.
    add(`${kind}_peak_rss_mb_${k}_per_message`, mb(res.peakRssBytes));
  }
  return res;
}

// Rounds interleave the measurements so that machine noise hits each alike. Per round: the COPY
// ceiling, then for 10 and for 1 readings per message the broker ceiling, the pipe ceiling, the
// service, and both again paced at half this round's pipe ceiling.
const rounds = numbers.rounds;
for (let round = 1; round <= rounds; round++) {
  say(`round ${round}/${rounds}`);
  const copy = await copyCeiling();
  add('copy_ceiling_readings_per_s', copy);
  say(`  COPY ceiling: ${n(copy)} readings/s`);
  for (const k of [10, 1]) {
    const broker = await brokerCeiling(k);
    add(`broker_ceiling_${k}_per_message_readings_per_s`, broker);
    say(`  broker ceiling, ${per(k)}: ${n(broker)} readings/s`);
    const half = (await load('pipe', k)).rate / 2;
    add(`half_load_${k}_per_message_readings_per_s`, half);
    await load('service', k);
    await load('pipe', k, half);
    await load('service', k, half);
  }
}
await mosquitto.destroy();

// Medians over the rounds (peak RSS: the maximum), null for a figure not measured.
const fig = (name: string): number | null => {
  const xs = [...(runs.get(name) ?? [])].sort((a, b) => a - b);
  if (xs.length === 0) return null;
  return name.includes('peak_rss') ? xs.at(-1)! : xs[Math.floor(xs.length / 2)]!;
};
const ratio = (a: number | null, b: number | null) => (a === null || b === null ? null : Number((a / b).toFixed(3)));
const result: Record<string, unknown> = {
  readings: totalReadings,
  rounds,
  copy_ceiling_readings_per_s: fig('copy_ceiling_readings_per_s'),
  broker_ceiling_10_per_message_readings_per_s: fig('broker_ceiling_10_per_message_readings_per_s'),
  broker_ceiling_1_per_message_readings_per_s: fig('broker_ceiling_1_per_message_readings_per_s'),
  end_to_end_10_per_message_readings_per_s: fig('end_to_end_10_per_message_readings_per_s'),
  end_to_end_1_per_message_readings_per_s: fig('end_to_end_1_per_message_readings_per_s'),
  ratio_e2e_10_to_copy_ceiling: ratio(fig('end_to_end_10_per_message_readings_per_s'), fig('copy_ceiling_readings_per_s')),
  ratio_e2e_1_to_broker_ceiling: ratio(fig('end_to_end_1_per_message_readings_per_s'), fig('broker_ceiling_1_per_message_readings_per_s')),
  end_time: commitTimes ? 'commit_timestamp' : 'seen_by_polling',
  batch_flush_interval_ms: flushIntervalMs,
};
const checks: Record<string, (boolean | null)[]> = { e2e_ge_0_9_pipe: [], cpu_le_1_5x_pipe: [], peak_rss_le_200_mb: [], p99_le_flush_plus_100_ms: [] };
for (const k of [1, 10]) {
  const e2e = fig(`end_to_end_${k}_per_message_readings_per_s`);
  const pipe = fig(`pipe_ceiling_${k}_per_message_readings_per_s`);
  const cpu = { service: fig(`service_cpu_s_per_100k_${k}_per_message`), pipe: fig(`pipe_cpu_s_per_100k_${k}_per_message`) };
  const rss = fig(`service_peak_rss_mb_${k}_per_message`);
  const p99 = fig(`service_latency_p99_ms_${k}_per_message`);
  Object.assign(result, {
    [`pipe_ceiling_${k}_per_message_readings_per_s`]: pipe,
    [`ratio_e2e_${k}_to_pipe`]: ratio(e2e, pipe),
    [`service_cpu_s_per_100k_${k}_per_message`]: cpu.service,
    [`pipe_cpu_s_per_100k_${k}_per_message`]: cpu.pipe,
    [`ratio_cpu_service_to_pipe_${k}`]: ratio(cpu.service, cpu.pipe),
    [`service_peak_rss_mb_${k}_per_message`]: rss,
    [`pipe_peak_rss_mb_${k}_per_message`]: fig(`pipe_peak_rss_mb_${k}_per_message`),
    [`half_load_${k}_per_message_readings_per_s`]: fig(`half_load_${k}_per_message_readings_per_s`),
    [`service_latency_p50_ms_${k}_per_message`]: fig(`service_latency_p50_ms_${k}_per_message`),
    [`service_latency_p99_ms_${k}_per_message`]: p99,
    [`pipe_latency_p50_ms_${k}_per_message`]: fig(`pipe_latency_p50_ms_${k}_per_message`),
    [`pipe_latency_p99_ms_${k}_per_message`]: fig(`pipe_latency_p99_ms_${k}_per_message`),
  });
  const at = (ok: boolean, ...xs: (number | null)[]) => (xs.includes(null) ? null : ok);
  checks.e2e_ge_0_9_pipe!.push(at(e2e! >= 0.9 * pipe!, e2e, pipe));
  checks.cpu_le_1_5x_pipe!.push(at(cpu.service! <= 1.5 * cpu.pipe!, cpu.service, cpu.pipe));
  checks.peak_rss_le_200_mb!.push(at(rss! <= 200, rss));
  checks.p99_le_flush_plus_100_ms!.push(at(p99! <= flushIntervalMs + 100, p99));
}
// Each target at both 1 and 10 readings per message; null when a figure is missing (no commit times).
const targets = Object.fromEntries(Object.entries(checks).map(([name, at]) => [name, at.includes(null) ? null : at.every(Boolean)]));
result.targets = targets;
result.targets_met = Object.values(targets).every((v) => v === true);
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
