// Steady load for fault tests: wells publishing QoS 1 readings with sequence numbers at a fixed
// rate, through a publisher that reconnects and keeps unacknowledged publishes to resend (as a
// device would), recording which readings the broker PUBACKed. Plus the exactly-once check
// against esp_telemetry and the service's peak RSS.
import { readFileSync } from 'node:fs';
import mqtt from 'mqtt';
import { expect } from 'vitest';
import { metric, query, type Teardown, waitFor } from './harness.ts';

export interface WellLoadOptions {
  readonly url: string;
  readonly wells: readonly string[];
  /** Messages per second per well; one reading per message. */
  readonly ratePerWellHz: number;
  /** Topic of a well; the default matches the service's default MQTT_TOPIC. */
  readonly topic?: (wellId: string) => string;
  readonly clientId?: string;
  readonly protocolVersion?: 4 | 5;
  /** Most publishes awaiting PUBACK at once; past it the wells wait (a device's buffer). */
  readonly window?: number;
  /** MQTT clean session (default true); MQTT.js resends its unacknowledged publishes on reconnect either way. */
  readonly clean?: boolean;
  /** Credentials, for a broker with authentication (a device: user name = its well id). */
  readonly username?: string;
  readonly password?: string;
}

interface Sent {
  readonly key: string;
  readonly publishedAtMs: number;
  acked: boolean;
}

/** Reading key as stored: `${well_id}#${seq}`. */
export type Key = string;

export class WellLoad {
  readonly #options: Required<Omit<WellLoadOptions, 'username' | 'password'>> & Pick<WellLoadOptions, 'username' | 'password'>;
  readonly #sent: Sent[] = [];
  #client: mqtt.MqttClient | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #inFlight = 0;
  #failed = 0;
  /** Device time of seq 0: 12 h ago, so a minute at any test rate stays in the past. */
  readonly baseTsMs = Math.floor(Date.now() / 1000) * 1000 - 12 * 3600_000;

  constructor(o: WellLoadOptions) {
    this.#options = {
      topic: (w) => `esp/fault/${w}/telemetry`,
      clientId: `well-load-${Math.random().toString(36).slice(2, 8)}`,
      protocolVersion: 4,
      window: 5_000,
      clean: true,
      ...o,
    };
  }

  get published(): number {
    return this.#sent.length;
  }

  get acked(): number {
    return this.#sent.length - this.#inFlight - this.#failed;
  }

  /** Connects, then publishes every well at the configured rate until `stop`. */
  async start(): Promise<void> {
    const o = this.#options;
    const credentials = { ...(o.username !== undefined ? { username: o.username } : {}), ...(o.password !== undefined ? { password: o.password } : {}) };
    const client = mqtt.connect(o.url, {
      clientId: o.clientId,
      clean: o.clean,
      protocolVersion: o.protocolVersion,
      reconnectPeriod: 200,
      connectTimeout: 2_000,
      reconnectOnConnackError: true,
      ...credentials,
    });
    client.on('error', () => undefined); // reconnects on its own; errors show up as missing PUBACKs
    this.#client = client;
    await new Promise<void>((resolve) => client.once('connect', () => resolve()));
    const started = performance.now();
    const next = o.wells.map(() => 1);
    this.#timer = setInterval(() => {
      const due = Math.floor(((performance.now() - started) / 1000) * o.ratePerWellHz);
      o.wells.forEach((well, i) => {
        while (next[i]! <= due && this.#inFlight < o.window) this.#publish(well, next[i]!++);
      });
    }, 10);
  }

  #publish(well: string, seq: number): void {
    const sent: Sent = { key: `${well}#${seq}`, publishedAtMs: Date.now(), acked: false };
    this.#sent.push(sent);
    this.#inFlight++;
    const payload = JSON.stringify({ ts: this.baseTsMs + seq * 1000, seq, motor_current_a: 40 + (seq % 10), intake_pressure_kpa: 8000 + (seq % 100) });
    // Publishes made while disconnected are queued by MQTT.js and sent on reconnect; unacknowledged
    // ones are resent from its outgoing store, so the callback means "the broker PUBACKed it".
    this.#client!.publish(this.#options.topic(well), payload, { qos: 1 }, (err) => {
      this.#inFlight--;
      if (err) this.#failed++;
      else sent.acked = true;
    });
  }

  /** Stops publishing, waits for outstanding PUBACKs (up to `timeoutMs`), disconnects. */
  async stop(timeoutMs = 30_000): Promise<{ published: number; acked: number }> {
    clearInterval(this.#timer);
    await waitFor('publisher PUBACKs', () => this.#inFlight === 0, timeoutMs);
    await this.#client?.endAsync();
    return { published: this.published, acked: this.acked };
  }

  /** Keys the broker PUBACKed; with `since`, only those first published at or after it (ms). */
  ackedKeys(since = 0): Set<Key> {
    return new Set(this.#sent.filter((s) => s.acked && s.publishedAtMs >= since).map((s) => s.key));
  }

  allKeys(): Set<Key> {
    return new Set(this.#sent.map((s) => s.key));
  }
}

export interface StoredCheck {
  /** Distinct (well_id, ts) stored. */
  readonly stored: number;
  /** Rows minus distinct keys: must be 0. */
  readonly duplicateRows: number;
  /** Expected keys not stored. */
  readonly missing: Key[];
}

/** Compares esp_telemetry with the keys expected there (`well#seq`; ts follows from seq). */
export async function checkStored(databaseUrl: string, expected: Set<Key>): Promise<StoredCheck> {
  const rows = await query<{ k: string; n: number }>(
    databaseUrl,
    `SELECT well_id || '#' || seq AS k, count(*)::int AS n FROM esp_telemetry GROUP BY well_id, seq, ts`,
  );
  const stored = new Set(rows.map((r) => r.k));
  const duplicateRows = rows.reduce((s, r) => s + r.n - 1, 0) + (rows.length - stored.size);
  return { stored: stored.size, duplicateRows, missing: [...expected].filter((k) => !stored.has(k)) };
}

/** Waits until every expected key is stored; returns the final check. */
export async function waitStored(databaseUrl: string, expected: Set<Key>, timeoutMs = 60_000): Promise<StoredCheck> {
  await waitFor(`${expected.size} readings stored`, async () => (await checkStored(databaseUrl, expected)).missing.length === 0, timeoutMs, 250);
  return checkStored(databaseUrl, expected);
}

/**
 * Stops `load`, then waits (up to `timeoutMs`) until every reading it published is in
 * esp_telemetry, asserting that the broker PUBACKed every publish and that each reading is stored
 * exactly once: none missing, none twice. Resolves with the publisher's counts.
 */
export async function expectStoredOnce(load: WellLoad, databaseUrl: string, timeoutMs?: number): Promise<{ published: number; acked: number }> {
  const sent = await load.stop();
  expect(sent.acked).toBe(sent.published);
  expect(await waitStored(databaseUrl, load.allKeys(), timeoutMs)).toEqual({ stored: sent.published, duplicateRows: 0, missing: [] });
  return sent;
}

/** Peak resident set size of a live process (VmHWM), in MiB. */
export function peakRssMb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** The service's documented memory bound (RSS; README, Guarantees and their limits), in MiB. */
export const RSS_BOUND_MB = 256;

/**
 * Starts a steady load (default: three wells at 50 Hz, as every fault scenario uses) on
 * `brokerUrl`, stops it at teardown, and resolves once the service on `httpPort` has committed
 * `committedAtLeast` readings (default 300), so the fault is injected mid-stream.
 */
export async function steadyLoad(
  t: Teardown,
  brokerUrl: string,
  httpPort: number,
  o: { wells?: readonly string[]; ratePerWellHz?: number; committedAtLeast?: number } = {},
): Promise<WellLoad> {
  const load = new WellLoad({ url: brokerUrl, wells: o.wells ?? ['W-1', 'W-2', 'W-3'], ratePerWellHz: o.ratePerWellHz ?? 50 });
  await load.start();
  t.add(() => load.stop(1_000).catch(() => undefined));
  const atLeast = o.committedAtLeast ?? 300;
  await waitFor('load committed', async () => (await metric(httpPort, 'esp_ingest_readings_committed_total')) >= atLeast, 20_000);
  return load;
}
