// Replay: publishes the real well data as the wells would: one topic per well, `ts` from the
// file, QoS 1, at a chosen speed-up. Library (used by demo, bench and tests) and CLI:
//   npm run replay -- --url mqtt://127.0.0.1:1883 --speed 600 --per-message 1   (--help for all)
// On a terminal the CLI shows progress on stderr (readings acknowledged by the broker, rate, ETA).

import { pathToFileURL } from 'node:url';
import mqtt from 'mqtt';
import { brokerAddress } from '../src/ingress/broker-url.ts';
import { parseCliOrExit } from '../src/tools/cli.ts';
import { Progress } from '../src/tools/progress.ts';
import { loadWells, WELLS_DIR, type WellSeries } from '../test/support/wells.ts';

export interface ReplayOptions {
  readonly url: string;
  /** Topic per well; `{site}` and `{well_id}` are filled in. */
  readonly topicTemplate?: string;
  readonly site?: string;
  /** Real-time multiple (600 = ten minutes of data per second); 0 = as fast as the broker takes. */
  readonly speed: number;
  /** Readings per message (a gateway batching); 1 = one JSON object per message. */
  readonly perMessage: number;
  /** Most QoS 1 publishes awaiting PUBACK at once, per connection. */
  readonly window?: number;
  readonly wells?: WellSeries[];
  readonly clientId?: string;
  /** Extra messages published as-is at the start (e.g. a bad reading for the demo). */
  readonly extra?: { topic: string; payload: string }[];
  /** Progress line on stderr while it runs, when stderr is a terminal. Default false. */
  readonly progress?: boolean;
  /**
   * One MQTT connection per well (client id `<clientId>-<well>`), clean session off so that a
   * restarted broker's MQTT.js resend is exercised; implied by `credentials`. Default false.
   */
  readonly clientPerWell?: boolean;
  /**
   * Each well's own credentials (a broker with authentication): then every well publishes on a
   * connection of its own, as a device would. The `extra` messages go out on the first well's.
   */
  readonly credentials?: (wellId: string) => { readonly username: string; readonly password: string };
}

export interface ReplayResult {
  readonly readings: number;
  readonly messages: number;
  readonly seconds: number;
}

/**
 * Publishes every well concurrently; resolves when every publish was PUBACKed by the broker.
 * Throws a RangeError, before connecting, for a `speed` below 0 or a `perMessage` or `window`
 * that is not an integer ≥ 1.
 */
export async function replay(o: ReplayOptions): Promise<ReplayResult> {
  if (!(o.speed >= 0) || !Number.isFinite(o.speed)) throw new RangeError(`replay: speed must be a number ≥ 0, got ${o.speed}`);
  if (!Number.isInteger(o.perMessage) || o.perMessage < 1) throw new RangeError(`replay: perMessage must be an integer ≥ 1, got ${o.perMessage}`);
  if (o.window !== undefined && (!Number.isInteger(o.window) || o.window < 1)) throw new RangeError(`replay: window must be an integer ≥ 1, got ${o.window}`);
  const wells = o.wells ?? loadWells();
  const template = o.topicTemplate ?? 'esp/{site}/{well_id}/telemetry';
  const perWell = o.clientPerWell === true || o.credentials !== undefined;
  const connect = (suffix: string, credentials?: { username: string; password: string }) =>
    mqtt.connectAsync({
      ...brokerAddress(o.url),
      clientId: `${o.clientId ?? `esp-replay-${process.pid}`}${suffix}`,
      clean: o.clientPerWell !== true,
      protocolVersion: 4,
      reconnectPeriod: 500,
      ...credentials,
    });
  const clients = new Map<string, mqtt.MqttClient>();
  if (perWell) {
    for (const w of wells) clients.set(w.wellId, await connect(`-${w.wellId}`, o.credentials?.(w.wellId)));
  }
  const client = perWell ? clients.get(wells[0]?.wellId ?? '')! : await connect('');
  const connections = [...new Set([client, ...clients.values()])];
  const started = performance.now();
  const window = o.window ?? 500;
  const inFlight = new Map<mqtt.MqttClient, number>(connections.map((c) => [c, 0]));
  let waiters: (() => void)[] = [];
  const wakeAll = () => {
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  };
  let readings = 0;
  let messages = 0;
  const extra = o.extra ?? [];
  const progress = o.progress
    ? new Progress({ label: 'replay', unit: 'readings', total: extra.length + wells.reduce((n, w) => n + w.readings.length, 0) })
    : undefined;
  let acked = 0;
  const publish = async (topic: string, payload: string, count: number, via = client) => {
    while (inFlight.get(via)! >= window) await new Promise<void>((r) => waiters.push(r));
    inFlight.set(via, inFlight.get(via)! + 1);
    messages++;
    // MQTT.js resends what was not PUBACKed when it reconnects; a publish it queued meanwhile and
    // then failed ("Connection closed") is sent again here, as a device would.
    const send = () =>
      via.publish(topic, payload, { qos: 1 }, (err) => {
        if (err) return void setTimeout(send, 50);
        inFlight.set(via, inFlight.get(via)! - 1);
        acked += count;
        progress?.update(acked);
        wakeAll();
      });
    send();
  };
  for (const m of extra) {
    // On the connection of the well the topic names, when each well has its own.
    await publish(m.topic, m.payload, 1, clients.get(m.topic.split('/').find((level) => clients.has(level)) ?? '') ?? client);
    readings++;
  }
  await Promise.all(
    wells.map(async (w) => {
      const topic = template.replace('{site}', o.site ?? '3w').replace('{well_id}', w.wellId);
      // The wells were recorded in different months: each replays from its own first reading.
      const t0 = Date.parse(String(w.readings[0]?.ts));
      for (let i = 0; i < w.readings.length; i += o.perMessage) {
        const group = w.readings.slice(i, i + o.perMessage);
        if (o.speed > 0) {
          const due = started + (Date.parse(String(group[0]!.ts)) - t0) / o.speed;
          const wait = due - performance.now();
          if (wait > 1) await new Promise((r) => setTimeout(r, wait));
        }
        await publish(topic, JSON.stringify(o.perMessage === 1 ? group[0] : group), group.length, clients.get(w.wellId) ?? client);
        readings += group.length;
      }
    }),
  );
  while ([...inFlight.values()].some((n) => n > 0)) await new Promise<void>((r) => waiters.push(r));
  await Promise.all(connections.map((c) => c.endAsync()));
  progress?.end(true);
  return { readings, messages, seconds: (performance.now() - started) / 1000 };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values, numbers } = parseCliOrExit(process.argv.slice(2), {
    name: 'replay',
    usage: `usage: npm run replay -- [--url URL] [--speed N] [--per-message N] [--site NAME] [--dir DIR] [--since TIME]
  --url URL         the broker (default MQTT_URL, else mqtt://127.0.0.1:1883)
  --speed N         N× real time (600 = ten minutes of data per second); 0 = as fast as the broker takes (default 0)
  --per-message N   readings per MQTT message, an integer ≥ 1 (default 1)
  --site NAME       the {site} of the topic esp/{site}/{well_id}/telemetry (default 3w)
  --dir DIR         the CSV files to publish, one well per file (columns well_id, ts, then 3W or
                    catalog column names; default data/wells/): e.g. an export after a restore
  --since TIME      only readings with ts at or after this ISO-8601 time (default: all)`,
    options: {
      url: { type: 'string', default: process.env.MQTT_URL ?? 'mqtt://127.0.0.1:1883' },
      speed: { type: 'string', default: '0' },
      'per-message': { type: 'string', default: '1' },
      site: { type: 'string', default: '3w' },
      dir: { type: 'string', default: WELLS_DIR },
      since: { type: 'string' },
    },
    numbers: { speed: { min: 0 }, 'per-message': { min: 1, integer: true } },
  });
  // V8's Date.parse takes much that is not a time ("WELL-00003"): ISO-8601 with a zone only.
  const sinceMs =
    values.since === undefined ? undefined : /^\d{4}-\d{2}-\d{2}T[\d:.]+(Z|[+-]\d{2}:\d{2})$/.test(values.since) ? Date.parse(values.since) : Number.NaN;
  if (sinceMs !== undefined && Number.isNaN(sinceMs)) {
    process.stderr.write(`replay: --since must be an ISO-8601 time, got ${JSON.stringify(values.since)}\n`);
    process.exit(2);
  }
  const wells = loadWells(values.dir).map((w) => ({ ...w, readings: w.readings.filter((r) => sinceMs === undefined || Date.parse(String(r.ts)) >= sinceMs) }));
  const r = await replay({ url: values.url, speed: numbers.speed, perMessage: numbers['per-message'], site: values.site, wells, progress: true });
  process.stdout.write(`${JSON.stringify(r)}\n`);
}
