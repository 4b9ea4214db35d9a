// Integration-test harness: fresh databases on the test TimescaleDB, a private Mosquitto with
// the project's mosquitto.conf, polling, and a teardown registry. No mocks: real servers only.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { pino } from 'pino';
import { startApp, type App } from '../../src/app.ts';
import { loadConfig } from '../../src/config/config.ts';
import { freePort, scrapeMetric } from './service-process.ts';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** TimescaleDB server for tests; scripts/test.sh provisions it and sets TEST_DATABASE_URL. */
export function serverUrl(): string {
  const url = process.env.TEST_DATABASE_URL;
  if (!url) throw new Error('TEST_DATABASE_URL is not set: run the tests with `npm test` (scripts/test.sh provisions TimescaleDB)');
  return url;
}

/**
 * Holds an ACCESS EXCLUSIVE lock on esp_telemetry from another session, so every write waits
 * (and times out at lock_timeout). `release()` commits, letting writes through; the session is
 * closed at teardown.
 */
export async function lockTelemetryTable(t: Teardown, databaseUrl: string): Promise<{ release(): Promise<void> }> {
  const locker = new pg.Client({ connectionString: databaseUrl });
  await locker.connect();
  t.add(() => locker.end());
  await locker.query('BEGIN');
  await locker.query('LOCK TABLE esp_telemetry IN ACCESS EXCLUSIVE MODE');
  return { release: async () => void (await locker.query('COMMIT')) };
}

/** Plain PostgreSQL (no TimescaleDB) for the fallback path: the machine's own server. */
export const PLAIN_PG_URL = process.env.TEST_PLAIN_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Runs registered clean-ups in reverse order. */
export class Teardown {
  #fns: (() => unknown)[] = [];
  add(fn: () => unknown): void {
    this.#fns.push(fn);
  }
  async run(): Promise<void> {
    const fns = this.#fns.reverse();
    this.#fns = [];
    for (const fn of fns) {
      try {
        await fn();
      } catch {
        // keep tearing down
      }
    }
  }
}

/** Creates an empty database on the server of `baseUrl`; returns its URL. Dropped at teardown. */
export async function freshDatabase(t: Teardown, baseUrl = serverUrl()): Promise<string> {
  const name = `esp_t_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = new pg.Client({ connectionString: baseUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const u = new URL(baseUrl);
  u.pathname = `/${name}`;
  t.add(async () => {
    const c = new pg.Client({ connectionString: baseUrl });
    await c.connect();
    await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await c.end();
  });
  return u.toString();
}

/** One query on a short-lived connection. */
export async function query<T extends pg.QueryResultRow = Record<string, unknown>>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<T>(sql, params)).rows;
  } finally {
    await c.end();
  }
}

/** Polls `fn` until it returns a truthy value; throws with `what` after `timeoutMs`. */
export async function waitFor<T>(what: string, fn: () => T | Promise<T>, timeoutMs = 30_000, everyMs = 50): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export { freePort };

/**
 * A Mosquitto started with the project's mosquitto.conf on a free port, persistence in a temp dir;
 * `overrides` replace (or add) directives, e.g. `{ max_queued_messages: '1000' }` for Debian's
 * stock queue limit.
 */
export class PrivateMosquitto {
  readonly dir = mkdtempSync(path.join(tmpdir(), 'esp-mosq-'));
  port = 0;
  #proc: ChildProcess | undefined;
  log = '';
  readonly #overrides: Record<string, string>;

  constructor(overrides: Record<string, string> = {}) {
    this.#overrides = overrides;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    if (!this.port) this.port = await freePort();
    // Started as root, mosquitto drops to its own user, which must be able to write here.
    chmodSync(this.dir, 0o777);
    let conf = readFileSync(path.join(ROOT, 'mosquitto.conf'), 'utf8');
    for (const [name, value] of Object.entries(this.#overrides)) {
      const line = new RegExp(`^${name} .*$`, 'm');
      conf = line.test(conf) ? conf.replace(line, `${name} ${value}`) : `${conf}\n${name} ${value}\n`;
    }
    conf = conf
      .replace(/^listener 1883.*$/m, `listener ${this.port} 127.0.0.1`)
      .replace(/^persistence_location .*$/m, `persistence_location ${this.dir}/`)
      .replace(/^log_dest .*$/gm, '')
      .concat('\nlog_dest stderr\n');
    const file = path.join(this.dir, 'mosquitto.conf');
    writeFileSync(file, conf);
    const proc = spawn('mosquitto', ['-c', file], { stdio: ['ignore', 'ignore', 'pipe'] });
    proc.stderr!.on('data', (d: Buffer) => (this.log = (this.log + d.toString()).slice(-20_000)));
    this.#proc = proc;
    await waitFor(`mosquitto on ${this.port}`, () => this.log.includes('Opening ipv4 listen socket') || this.log.includes(`port ${this.port}`), 10_000);
    await waitFor('mosquitto accepting', async () => {
      const { connect } = await import('node:net');
      return new Promise<boolean>((r) => {
        const s = connect(this.port, '127.0.0.1', () => {
          s.destroy();
          r(true);
        });
        s.on('error', () => r(false));
      });
    }, 10_000);
  }

  /** SIGTERM: Mosquitto saves its persistence file and exits. The directory is kept (restarts). */
  async stop(): Promise<void> {
    const p = this.#proc;
    this.#proc = undefined;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await exited;
  }

  /** Stops the broker and deletes its directory. */
  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface ServiceProcess {
  readonly proc: ChildProcess;
  readonly httpPort: number;
  output(): string;
  exited: Promise<number | null>;
}

/** Starts `npm start`'s entry point as a child process; resolves when /readyz says ready. */
export async function startService(env: Record<string, string>, opts: { waitReady?: boolean } = {}): Promise<ServiceProcess> {
  const httpPort = await freePort();
  const proc = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', LOG_FORMAT: 'json', LOG_LEVEL: 'info', HTTP_HOST: '127.0.0.1', HTTP_PORT: String(httpPort), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const keep = (d: Buffer) => (out = (out + d.toString()).slice(-200_000));
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  const svc: ServiceProcess = { proc, httpPort, output: () => out, exited };
  if (opts.waitReady !== false) {
    await waitFor('service ready', async () => {
      if (proc.exitCode !== null) throw new Error(`service exited ${proc.exitCode}: ${out.slice(-2000)}`);
      return (await readyz(httpPort)).status === 200;
    }, 60_000, 100);
  }
  return svc;
}

export async function readyz(port: number): Promise<{ status: number; body: { ready: boolean; reasons: string[]; [k: string]: unknown } }> {
  const res = await fetch(`http://127.0.0.1:${port}/readyz`);
  return { status: res.status, body: (await res.json()) as { ready: boolean; reasons: string[] } };
}

/** Sum of one metric's samples on a service's /metrics (see scrapeMetric). */
export const metric = scrapeMetric;

/**
 * The service in-process (startApp, silent log) on topics `<prefix>/{site}/{well_id}/telemetry`
 * with client id `esp-ingest-<prefix>`, HTTP on an ephemeral port and 50 ms flushes; `env`
 * overrides (it must give DATABASE_URL). Resolves once /readyz is 200; stopped at teardown.
 */
export async function startInProcess(t: Teardown, prefix: string, env: Record<string, string>): Promise<App> {
  const config = loadConfig({
    MQTT_TOPIC: `${prefix}/{site}/{well_id}/telemetry`,
    MQTT_CLIENT_ID: `esp-ingest-${prefix}`,
    HTTP_PORT: '0',
    HTTP_HOST: '127.0.0.1',
    BATCH_FLUSH_INTERVAL_MS: '50',
    ...env,
  });
  const app = await startApp({ config, log: pino({ level: 'silent' }) });
  t.add(() => app.stop());
  await waitFor('ready', async () => (await readyz(app.httpPort)).status === 200, 20_000);
  return app;
}
