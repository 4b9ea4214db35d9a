// Shared by the benchmarks (`npm run bench`, `npm run bench:scale`): the load (the real wells,
// N times over under distinct well ids), fresh databases, a private Mosquitto with the project's
// mosquitto.conf, and a QoS 1 publisher with a bounded in-flight window.
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import pg from 'pg';
import { brokerAddress } from '../src/ingress/broker-url.ts';
import type { Progress } from '../src/tools/progress.ts';
import { adopt } from '../test/support/children.ts';
import { freePort } from '../test/support/service-process.ts';
import { loadWells, type WellSeries } from './wells.ts';

export interface BenchMessage {
  readonly topic: string;
  readonly payload: string;
}

/** The six real wells `copies` times over, under distinct well ids (`<id>-C<n>`). */
export function benchWells(copies: number): WellSeries[] {
  const base = loadWells();
  return Array.from({ length: copies }, (_, c) => base.map((w) => ({ ...w, wellId: `${w.wellId}-C${c}` }))).flat();
}

/** Every reading of `wells` as messages of `perMessage` readings on `<prefix>/3w/<well>/telemetry`. */
export function benchMessages(wells: readonly WellSeries[], perMessage: number, prefix: string): BenchMessage[] {
  const out: BenchMessage[] = [];
  for (const w of wells) {
    const topic = `${prefix}/3w/${w.wellId}/telemetry`;
    for (let i = 0; i < w.readings.length; i += perMessage) {
      const group = w.readings.slice(i, i + perMessage);
      out.push({ topic, payload: JSON.stringify(perMessage === 1 ? group[0] : group) });
    }
  }
  return out;
}

/** The database server: DATABASE_URL, else the local TimescaleDB scripts/timescaledb.sh provisions. */
export function benchServer(): string {
  return process.env.DATABASE_URL ?? execFileSync('bash', ['scripts/timescaledb.sh', 'start'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n').pop()!;
}

/** Drops and creates database `name` on `server`; returns its URL. */
export async function freshBenchDb(server: string, name: string): Promise<string> {
  const admin = new pg.Client({ connectionString: server });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const u = new URL(server);
  u.pathname = `/${name}`;
  return u.toString();
}

/** Starts Mosquitto with the project's mosquitto.conf on a free port; resolves with its URL once it accepts. */
export async function startBenchMosquitto(): Promise<{ url: string; stop: () => void }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'esp-bench-mq-'));
  chmodSync(dir, 0o777);
  const port = await freePort();
  writeFileSync(
    path.join(dir, 'mosquitto.conf'),
    readFileSync('mosquitto.conf', 'utf8').replace(/^listener 1883.*$/m, `listener ${port} 127.0.0.1`).replace(/^persistence_location .*$/m, `persistence_location ${dir}/`),
  );
  const proc = adopt(spawn('mosquitto', ['-c', path.join(dir, 'mosquitto.conf')], { stdio: 'ignore' }));
  await waitAccepting(port);
  return { url: `mqtt://127.0.0.1:${port}`, stop: () => void proc.kill('SIGTERM') };
}

/** Resolves once something accepts TCP connections on 127.0.0.1:`port` (up to 10 s). */
export async function waitAccepting(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => resolve(s.destroy() && true));
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing accepts connections on port ${port}`);
}

/** Polls `cond` every `everyMs` until true; throws naming `what` after `timeoutMs`. */
export async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 180_000, everyMs = 10): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`bench: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export interface PublishOptions {
  /** Most publishes awaiting PUBACK at once, per connection (default 1000). */
  readonly window?: number;
  /** One connection per topic (a well with its own controller) instead of one for all. */
  readonly connectionPerTopic?: boolean;
  readonly protocolVersion?: 4 | 5;
  readonly progress?: Progress;
}

/** Publishes every message at QoS 1; resolves when all were PUBACKed. */
export async function publishAll(url: string, msgs: readonly BenchMessage[], o: PublishOptions = {}): Promise<void> {
  const window = o.window ?? 1000;
  const groups = new Map<string, BenchMessage[]>();
  for (const m of msgs) {
    const key = o.connectionPerTopic ? m.topic : '';
    let g = groups.get(key);
    if (!g) groups.set(key, (g = []));
    g.push(m);
  }
  let acked = 0;
  await Promise.all(
    [...groups.values()].map(async (group, i) => {
      const client = await mqtt.connectAsync({ ...brokerAddress(url), clientId: `esp-bench-pub-${process.pid}-${i}`, clean: true, protocolVersion: o.protocolVersion ?? 5 });
      let inFlight = 0;
      let wake: (() => void) | undefined;
      for (const m of group) {
        while (inFlight >= window) await new Promise<void>((r) => (wake = r));
        inFlight++;
        client.publish(m.topic, m.payload, { qos: 1 }, () => {
          inFlight--;
          o.progress?.update(++acked);
          wake?.();
          wake = undefined;
        });
      }
      while (inFlight > 0) await new Promise<void>((r) => (wake = r));
      await client.endAsync();
    }),
  );
}
