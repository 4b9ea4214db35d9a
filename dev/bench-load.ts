// One load of `npm run bench` through an ingester, the service or the pipe ceiling
// (dev/bench-pipe.ts), each in its own process on its own fresh database: readings/s from the
// first publish to the last commit, the process's CPU time and peak RSS (proc-usage.ts), and for a
// paced load the publish→commit latency of every message. Commit times come from
// pg_xact_commit_timestamp(xmin) when the server tracks them, so no figure depends on polling.
import { execFileSync, spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { pino } from 'pino';
import { DEFAULT_CATALOG } from '../src/decode/catalog.ts';
import { migrate } from '../src/schema/migrate.ts';
import { Progress } from '../src/tools/progress.ts';
import { adopt, stopChild } from '../test/support/children.ts';
import { createDatabase, query } from '../test/support/database.ts';
import { ROOT } from '../test/support/root.ts';
import { buildBundle, ServiceProcess } from '../test/support/service-process.ts';
import { waitFor } from '../test/support/wait.ts';
import { type BenchMessage, publishAll } from './bench-support.ts';
import { cpuSeconds, peakRssBytes } from './proc-usage.ts';

export type Ingester = 'service' | 'pipe';

/** dev/bench-pipe.ts bundled as the service is (buildIngesters), so both run as plain JavaScript. */
const PIPE_BUNDLE = 'dist/bench/bench-pipe.js';

/**
 * Builds what the loads run: the service's bundle (`npm run build`, what the image runs) and the
 * pipe ceiling's, with the same esbuild settings, so that neither pays for tsx at run time.
 */
export function buildIngesters(): void {
  buildBundle();
  execFileSync(
    'npx',
    [
      'esbuild',
      'dev/bench-pipe.ts',
      '--bundle',
      '--format=esm',
      '--platform=node',
      '--target=node20',
      '--packages=external',
      `--outfile=${PIPE_BUNDLE}`,
      '--log-level=warning',
    ],
    { cwd: ROOT, stdio: 'inherit' },
  );
}

export interface LoadContext {
  readonly mqttUrl: string;
  /** Server on which the loads' databases are created, then dropped. */
  readonly server: string;
  /** Start of their names, unique to the run (a bench running beside another drops none of its databases). */
  readonly databasePrefix: string;
  /** The service's JSON log is appended here. */
  readonly logFile: string;
  /**
   * The server has track_commit_timestamp on. Without it the end of a load is when the bench saw
   * the last commit (the service's /metrics polled every 100 ms) and there is no latency.
   */
  readonly commitTimes: boolean;
}

export interface LoadResult {
  /** Readings/s from the first publish to the last commit. */
  readonly rate: number;
  /** CPU time (user + system) of the ingester's process during the load, s per 100,000 readings. */
  readonly cpuSPer100k: number;
  /** VmHWM of the ingester's process at the end of the load, bytes. */
  readonly peakRssBytes: number;
  /** Paced loads: the rate the publisher kept from its first to its last publish, readings/s. */
  readonly publishedRate: number;
  /** Paced loads on a server with commit times: percentiles of publish→commit per message, ms. */
  readonly latency: { readonly p50: number; readonly p99: number } | null;
  /** The service's batching during the load (one phrase); empty for the pipe. */
  readonly note: string;
}

/** An ingester process, subscribed to its prefix and writing to its database. */
interface Running {
  /** The node process itself (both are spawned as `node <bundle>`), for /proc. */
  readonly pid: number;
  /** Resolves once it has committed every reading of the load. */
  committed(): Promise<void>;
  /** Stops it; resolves with the note on its batching over a load of `seconds`. */
  finish(seconds: number): Promise<string>;
}

/**
 * Publishes `msgs` (topics under `prefix`, `readings` in all) QoS 1 to a new `kind` process, as
 * fast as a window of 1000 awaiting PUBACK allows, or paced at `readingsPerS`.
 */
export async function measureLoad(
  ctx: LoadContext,
  kind: Ingester,
  prefix: string,
  msgs: readonly BenchMessage[],
  readings: number,
  readingsPerS?: number,
): Promise<LoadResult> {
  const database = `${ctx.databasePrefix}_${prefix}`;
  const url = await createDatabase(ctx.server, database);
  // A paced load starts with WARMUP_S of messages at the same rate, under well ids of their own
  // and left out of every latency: the figures are the steady state's, not those of the first
  // batches of a process whose code is not compiled yet (V8 optimizes what runs hot) into a table
  // with no chunk yet. Both ingesters get the same warm-up.
  const warmup = readingsPerS ? warmupMessages(msgs, Math.round((WARMUP_S * readingsPerS * msgs.length) / readings)) : [];
  const total = readings + readingsIn(warmup);
  const ingester = kind === 'service' ? await startService(ctx, prefix, url, total) : await startPipe(ctx, prefix, url, total);
  const sentAtMs: number[] = [];
  const all = [...warmup, ...msgs];
  const progress = new Progress({ label: `  ${kind}, ${prefix}, PUBACKed`, unit: 'messages', total: all.length });
  const cpuBefore = cpuSeconds(ingester.pid);
  const publishing = publishAll(ctx.mqttUrl, all, { progress, sentAtMs, ...(readingsPerS ? { messagesPerS: (readingsPerS * msgs.length) / readings } : {}) });
  await ingester.committed();
  const cpuS = cpuSeconds(ingester.pid) - cpuBefore;
  const peakRss = peakRssBytes(ingester.pid);
  const seenMs = Date.now();
  await publishing;
  progress.end();
  const endMs = ctx.commitTimes ? await lastCommitMs(url) : seenMs;
  const seconds = (endMs - sentAtMs[0]!) / 1000;
  const latency = readingsPerS && ctx.commitTimes ? latencies(msgs, sentAtMs.slice(warmup.length), await commitMsByReading(url)) : null;
  const note = await ingester.finish(seconds);
  await query(ctx.server, `DROP DATABASE ${database} WITH (FORCE)`);
  const publishedS = (sentAtMs.at(-1)! - sentAtMs[0]!) / 1000;
  return {
    rate: total / seconds,
    cpuSPer100k: (cpuS * 100_000) / total,
    peakRssBytes: peakRss,
    publishedRate: ((all.length - 1) / publishedS) * (readings / msgs.length),
    latency,
    note,
  };
}

/** Seconds of warm-up before a paced load's measured messages (see measureLoad). */
const WARMUP_S = 2;

/** The first `count` messages again, each under its well id + `-warmup` (so no key of the measured load repeats). */
function warmupMessages(msgs: readonly BenchMessage[], count: number): BenchMessage[] {
  return msgs.slice(0, count).map((m) => ({ ...m, topic: m.topic.replace(/\/([^/]+)\/telemetry$/, '/$1-warmup/telemetry') }));
}

/** Readings in `msgs` (a payload is one reading or an array of them). */
function readingsIn(msgs: readonly BenchMessage[]): number {
  return msgs.reduce((n, m) => n + (m.payload.startsWith('[') ? (JSON.parse(m.payload) as unknown[]).length : 1), 0);
}

/** The service with its defaults (the operator's environment passed on), ready. */
async function startService(ctx: LoadContext, prefix: string, url: string, readings: number): Promise<Running> {
  const svc = new ServiceProcess(
    { DATABASE_URL: url, MQTT_URL: ctx.mqttUrl, MQTT_TOPIC: `${prefix}/{site}/{well_id}/telemetry`, MQTT_CLIENT_ID: `esp-bench-${prefix}`, LOG_LEVEL: 'warn' },
    // What the image runs: the bundle (npm run build), which the bench builds first.
    { logFile: ctx.logFile, inheritEnv: true, endWithScript: true, entry: 'bundle' },
  );
  await svc.start();
  return {
    pid: svc.proc.pid!,
    async committed() {
      // Every 250 ms, so that scraping costs the service little (Prometheus scrapes every 15 s or so): the end time is the commit's own.
      const all = async () => (await svc.metric('esp_ingest_readings_committed_total')) >= readings;
      await waitFor(`the service to commit ${readings} readings (log: ${ctx.logFile})`, all, 180_000, 250);
    },
    async finish(seconds) {
      const [batches, flushS] = await Promise.all([svc.metric('esp_ingest_batch_rows_count'), svc.metric('esp_ingest_flush_duration_seconds_sum')]);
      await svc.stop();
      return `${batches} batches, mean ${Math.round(readings / batches)} readings, mean commit ${((flushS / batches) * 1000).toFixed(1)} ms, database busy ${((flushS / seconds) * 100).toFixed(0)}% of the load`;
    },
  };
}

/** dev/bench-pipe.ts on a database migrated as the service would (the schema is not its job), subscribed. */
async function startPipe(ctx: LoadContext, prefix: string, url: string, readings: number): Promise<Running> {
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  await migrate(pool, DEFAULT_CATALOG, pino({ level: 'silent' }));
  await pool.end();
  const proc = adopt(
    spawn(process.execPath, [`${ROOT}${PIPE_BUNDLE}`, ctx.mqttUrl, `${prefix}/+/+/telemetry`, url, String(readings)], {
      stdio: ['pipe', 'pipe', 'inherit'],
    }),
  );
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', resolve));
  const printed = (word: string) => () => {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`the pipe ceiling exited with ${proc.exitCode ?? proc.signalCode}`);
    return out.includes(word);
  };
  await waitFor('the pipe ceiling to subscribe', printed('ready'), 60_000);
  return {
    pid: proc.pid!,
    committed: async () => void (await waitFor(`the pipe ceiling to commit ${readings} readings`, printed('done'), 180_000, 5)),
    async finish() {
      // Its stdin ending is its cue to exit.
      proc.stdin!.end();
      const code = await Promise.race([exited, sleep(10_000, 'still running')]);
      if (code === 'still running') await stopChild(proc, 'SIGKILL');
      if (code !== 0) throw new Error(`the pipe ceiling ended with ${code ?? proc.signalCode} (stdout ${JSON.stringify(out)})`);
      return '';
    },
  };
}

/** When the last row of esp_telemetry was committed, epoch ms. */
async function lastCommitMs(url: string): Promise<number> {
  const [row] = await query<{ ms: number }>(url, 'SELECT (extract(epoch FROM max(pg_xact_commit_timestamp(xmin))) * 1000)::float8 AS ms FROM esp_telemetry');
  return row!.ms;
}

/** Commit time (epoch ms) of every row of esp_telemetry by `<well id> <ts in epoch ms>`. */
async function commitMsByReading(url: string): Promise<Map<string, number>> {
  const rows = await query<{ well_id: string; ts_ms: string; commit_ms: number }>(
    url,
    `SELECT well_id, (extract(epoch FROM ts) * 1000)::bigint AS ts_ms,
       (extract(epoch FROM pg_xact_commit_timestamp(xmin)) * 1000)::float8 AS commit_ms
     FROM esp_telemetry`,
  );
  return new Map(rows.map((r) => [`${r.well_id} ${r.ts_ms}`, r.commit_ms]));
}

/** p50 and p99 over the messages of publish→commit, a message committed when its first reading is. */
function latencies(msgs: readonly BenchMessage[], sentAtMs: readonly number[], commitMs: ReadonlyMap<string, number>): { p50: number; p99: number } {
  const ms = msgs
    .map((m, i) => {
      const body = JSON.parse(m.payload) as { ts: string } | { ts: string }[];
      const key = `${m.topic.split('/')[2]} ${Date.parse((Array.isArray(body) ? body[0]! : body).ts)}`;
      const commit = commitMs.get(key);
      if (commit === undefined) throw new Error(`no stored reading for message ${i} (${key})`);
      return commit - sentAtMs[i]!;
    })
    .sort((a, b) => a - b);
  const rank = (q: number) => ms[Math.min(ms.length - 1, Math.ceil(q * ms.length) - 1)]!;
  return { p50: rank(0.5), p99: rank(0.99) };
}
