// Concurrent writers of the same keys on the test TimescaleDB (Apache build: uncompressed
// hypertable), through the real TelemetryWriter and Committer on separate pools: the same batch
// from two connections (ON CONFLICT DO NOTHING racing on one key: timescaledb #5448) and writers
// racing at a chunk boundary (chunk creation blocking or deadlocking: timescaledb #4800, #7429).
// Every key is stored once; nothing goes to rejected_messages; whatever the server refused in
// between (23505, 40P01, 55P03) was retried. The compressed-chunk side runs in
// test/licensed/late-data.test.ts.
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_CATALOG } from '../../src/decode/catalog.ts';
import { createMetrics, type Metrics } from '../../src/metrics/metrics.ts';
import { Committer } from '../../src/sink/committer.ts';
import { TelemetryWriter } from '../../src/sink/writer.ts';
import { message, reading } from '../support/fixtures.ts';
import { migratedDatabase, query, Teardown } from '../support/harness.ts';

const log = pino({ level: 'silent' });
const t = new Teardown();
afterAll(() => t.run());

/** Codes the committer may meet while racing for the same keys (and, on a licensed server, its compression policy); any other is a failure. */
const TRANSIENT = new Set(['23505', '40P01', '55P03', '57014', '42704']);

/** A reading with a motor current that depends on its second, so repeated keys carry the same values. */
const at = (wellId: string, tsUs: number) => reading(wellId, tsUs, { motor_current_a: 40 + ((tsUs / 1_000_000) % 7) });

/** One service instance's sink: its own pool (session timeouts as app.ts sets them) and committer. */
function instance(url: string): { committer: Committer; metrics: Metrics } {
  const pool = new pg.Pool({ connectionString: url, max: 2, statement_timeout: 10_000, lock_timeout: 2_000, application_name: 'esp-ingest-test' });
  pool.on('error', () => undefined);
  t.add(() => pool.end());
  const metrics = createMetrics();
  const abort = new AbortController();
  t.add(() => abort.abort());
  const committer = new Committer({
    writer: new TelemetryWriter(pool, DEFAULT_CATALOG, 30_000),
    catalog: DEFAULT_CATALOG,
    metrics,
    log,
    retryMaxDelayMs: 500,
    signal: abort.signal,
    clock: () => Date.now(),
    onDbState: () => undefined,
  });
  return { committer, metrics };
}

async function retryCodes(metrics: Metrics): Promise<string[]> {
  const m = (await metrics.registry.getMetricsAsJSON()).find((x) => x.name === 'esp_ingest_flush_retries_total');
  return (m?.values ?? []).filter((v) => Number(v.value) > 0).map((v) => String(v.labels.code));
}

async function stored(url: string): Promise<{ rows: number; keys: number; rejected: number }> {
  const [r] = await query<{ rows: string; keys: string; rejected: string }>(
    url,
    `SELECT (SELECT count(*) FROM esp_telemetry) AS rows, (SELECT count(DISTINCT (well_id, ts)) FROM esp_telemetry) AS keys, (SELECT count(*) FROM rejected_messages) AS rejected`,
  );
  return { rows: Number(r!.rows), keys: Number(r!.keys), rejected: Number(r!.rejected) };
}

/** Deterministic shuffle (xorshift), so each writer sends the same messages in its own order. */
function shuffled<T>(xs: readonly T[], seed: number): T[] {
  const out = [...xs];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    const j = Math.abs(s) % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

describe('concurrent writers of the same keys', () => {
  it('two instances commit the same batch at once (late data: A already stored, B…): every key once, none in rejected_messages', async () => {
    const url = await migratedDatabase(t);
    const a = instance(url);
    const b = instance(url);
    const day = Date.UTC(2024, 4, 1) * 1000;
    const wells = ['ESP-006', 'ESP-007', 'ESP-008'];
    const messages = wells.map((w) => Array.from({ length: 600 }, (_, s) => at(w, day + s * 1_000_000)));
    // A: the first reading of each well is already stored.
    await a.committer.commit(wells.map((w) => message([at(w, day)])));
    const batch = messages.map((rs) => message(rs));
    await Promise.all([a.committer.commit(batch), b.committer.commit(batch)]);
    expect(await stored(url)).toEqual({ rows: 1800, keys: 1800, rejected: 0 });
    for (const m of [a.metrics, b.metrics]) for (const code of await retryCodes(m)) expect(TRANSIENT).toContain(code);
  });

  it('four instances race at a chunk boundary (200 new wells, 23:59:50–00:00:10, each in its own order): stored = published, none rejected', async () => {
    const url = await migratedDatabase(t);
    const writers = [instance(url), instance(url), instance(url), instance(url)];
    const midnight = Date.UTC(2024, 5, 2) * 1000;
    const wells = Array.from({ length: 200 }, (_, i) => `ESP-${String(i + 100).padStart(3, '0')}`);
    const messages = wells.map((w) => Array.from({ length: 21 }, (_, s) => at(w, midnight + (s - 10) * 1_000_000)));
    await Promise.all(
      writers.map(async (w, i) => {
        const mine = shuffled(messages, 0x9e3779b1 + i).map((rs) => message(rs));
        for (let k = 0; k < mine.length; k += 50) await w.committer.commit(mine.slice(k, k + 50));
      }),
    );
    expect(await stored(url)).toEqual({ rows: 200 * 21, keys: 200 * 21, rejected: 0 });
    const [chunks] = await query<{ n: string }>(url, `SELECT count(*) AS n FROM timescaledb_information.chunks WHERE hypertable_name = 'esp_telemetry'`);
    expect(Number(chunks!.n)).toBe(2);
    const codes = (await Promise.all(writers.map((w) => retryCodes(w.metrics)))).flat();
    for (const code of codes) expect(TRANSIENT).toContain(code);
    console.log(`chunk-boundary race: 4 writers × 4200 readings, retried SQLSTATEs: ${codes.length ? [...new Set(codes)].join(', ') : 'none'}`);
  });
});
