// Test data for the stages after decode: a decoded reading, the batch item that carries one
// message's readings to the committer, a catalog channel, and an error as node-postgres raises
// it (a SQLSTATE in `code`).
import type { BatchItem } from '../../src/batch/batcher.ts';
import { type Channel, DEFAULT_CATALOG } from '../../src/decode/catalog.ts';
import { packChannels } from '../../src/decode/channels.ts';
import type { Reading } from '../../src/decode/decode.ts';
import type { MessageWork, RejectRow } from '../../src/decode/work.ts';

/**
 * Channel values: by DEFAULT_CATALOG column name (the others null; an unknown name throws), or
 * aligned with the catalog (index i ↔ catalog[i], null: not carried; for tests of a catalog of
 * their own).
 */
export type ChannelValues = Readonly<Record<string, number>> | readonly (number | null)[];

/** A decoded reading of `wellId` at `tsUs` (µs since the epoch); site, seq and extra null unless `more` sets them. */
export function reading(wellId: string, tsUs: number, values: ChannelValues = {}, more: Partial<Pick<Reading, 'site' | 'seq' | 'extra'>> = {}): Reading {
  return { wellId, site: null, tsUs, seq: null, extra: null, ...more, ...packChannels(channelValues(values)) };
}

function channelValues(values: ChannelValues): (number | null)[] {
  if (Array.isArray(values)) return [...(values as readonly (number | null)[])];
  const v: (number | null)[] = DEFAULT_CATALOG.map(() => null);
  for (const [column, x] of Object.entries(values)) {
    const i = DEFAULT_CATALOG.findIndex((c) => c.column === column);
    if (i < 0) throw new Error(`reading(): ${column} is not a DEFAULT_CATALOG column`);
    v[i] = x;
  }
  return v;
}

/** One MQTT message's decoded work, as the batcher hands it to the committer (topic `wells/<well>/telemetry`, ack a no-op). */
export function message(readings: Reading[], rejects: RejectRow[] = []): BatchItem<MessageWork> {
  const wellId = readings[0]?.wellId ?? 'ESP-001';
  return {
    rows: readings.length,
    receivedAtMs: 0,
    ack: { acknowledge: () => undefined },
    data: { readings, rejects, topic: `wells/${wellId}/telemetry`, wellId },
  };
}

/** A catalog channel with range [min, max] and placeholder unit and description. */
export function channel(column: string, min = 0, max = 1): Channel {
  return { column, unit: 'u', min, max, description: column };
}

/** An Error carrying a SQLSTATE in `code`, as node-postgres raises a server error. */
export function pgError(code: string, message = `pg error ${code}`): Error & { code: string } {
  return Object.assign(new Error(message), { code });
}
