// Shared by the benchmarks (`npm run bench`, `npm run bench:scale`): the load (the real wells,
// N times over under distinct well ids, as messages of N readings) and a QoS 1 publisher with a
// bounded in-flight window, at full speed or paced.
import { setTimeout as sleep } from 'node:timers/promises';
import mqtt from 'mqtt';
import { brokerAddress } from '../src/ingress/broker-url.ts';
import type { Progress } from '../src/tools/progress.ts';
import { loadWells, type WellSeries } from '../test/support/wells.ts';

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

export interface PublishOptions {
  /** Most publishes awaiting PUBACK at once, per connection (default 1000). */
  readonly window?: number;
  /** One connection per topic (a well with its own controller) instead of one for all. */
  readonly connectionPerTopic?: boolean;
  /** Default 5. */
  readonly protocolVersion?: 4 | 5;
  /** Counts the PUBACKs. */
  readonly progress?: Progress;
  /**
   * Paced instead of as fast as the window allows: the j-th message of a connection is due
   * j / messagesPerS seconds after its first; everything due is published, then a timer waits.
   */
  readonly messagesPerS?: number;
  /** Filled with the wall-clock time (Date.now(), ms) each message went to the client, by its index in `msgs`. */
  readonly sentAtMs?: number[];
}

/** Publishes every message at QoS 1; resolves when all were PUBACKed. */
export async function publishAll(url: string, msgs: readonly BenchMessage[], o: PublishOptions = {}): Promise<void> {
  const window = o.window ?? 1000;
  // Message indexes by connection.
  const groups = new Map<string, number[]>();
  for (const [i, m] of msgs.entries()) {
    const key = o.connectionPerTopic ? m.topic : '';
    const g = groups.get(key);
    if (g) g.push(i);
    else groups.set(key, [i]);
  }
  let acked = 0;
  await Promise.all(
    [...groups.values()].map(async (group, i) => {
      const client = await mqtt.connectAsync({
        ...brokerAddress(url),
        clientId: `esp-bench-pub-${process.pid}-${i}`,
        clean: true,
        protocolVersion: o.protocolVersion ?? 5,
      });
      let inFlight = 0;
      let wake: (() => void) | undefined;
      const started = performance.now();
      for (const [j, i] of group.entries()) {
        while (inFlight >= window) await new Promise<void>((r) => (wake = r));
        if (o.messagesPerS) {
          const early = started + (j * 1000) / o.messagesPerS - performance.now();
          if (early > 0) await sleep(early);
        }
        const m = msgs[i]!;
        inFlight++;
        if (o.sentAtMs) o.sentAtMs[i] = Date.now();
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
