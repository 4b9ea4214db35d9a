// Storage capability detection against real servers: the machine's TimescaleDB (2.19.3,
// Apache-only: hypertable yes, compression/retention/rollups SQLSTATE 0A000) and plain
// PostgreSQL. The service stores every reading and reports each feature's state exactly in
// /readyz, the metrics and one log line. On a Timescale-licensed server (the official image in
// GitHub Actions) the same tests expect `applied`.
import { Writable } from 'node:stream';
import mqtt from 'mqtt';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_CATALOG } from '../../src/decode/catalog.ts';
import { migrate } from '../../src/schema/migrate.ts';
import { DEFAULT_STORAGE_SETTINGS } from '../../src/schema/settings.ts';
import { freshDatabase, metric, PLAIN_PG_URL, query, readyz, serverUrl, startInProcess, Teardown, waitFor } from '../support/harness.ts';
import { loadWells } from '../support/wells.ts';

const t = new Teardown();
afterAll(() => t.run());

/** The smallest shipped well (3,586 readings of real 3W data). */
const WELL = loadWells().sort((a, b) => a.readings.length - b.readings.length)[0]!;

async function serverLicense(url: string): Promise<string | null> {
  const [r] = await query<{ l: string | null }>(url, `SELECT current_setting('timescaledb.license', true) AS l`);
  return r?.l ?? null;
}

/** Starts the service in process on `databaseUrl` with an embedded broker, publishes WELL in arrays of 100, waits until all are stored. */
async function ingestWell(databaseUrl: string, env: Record<string, string>) {
  const prefix = `st${Math.random().toString(36).slice(2, 8)}`;
  const app = await startInProcess(t, prefix, { DATABASE_URL: databaseUrl, BROKER: 'embedded', BROKER_PORT: '0', ...env });
  const pub = await mqtt.connectAsync(app.mqttUrl, { clientId: `pub-${prefix}`, protocolVersion: 4 });
  t.add(() => pub.endAsync());
  for (let i = 0; i < WELL.readings.length; i += 100) {
    await pub.publishAsync(`${prefix}/s1/${WELL.wellId}/telemetry`, JSON.stringify(WELL.readings.slice(i, i + 100)), { qos: 1 });
  }
  await waitFor(
    'every reading stored',
    async () => Number((await query<{ n: string }>(databaseUrl, 'SELECT count(*) AS n FROM esp_telemetry'))[0]!.n) === WELL.readings.length,
  );
  return app;
}

describe('capability detection', () => {
  it('on the TimescaleDB server: hypertable applied, the rest as its license allows, every reading stored', async () => {
    const databaseUrl = await freshDatabase(t);
    const licensed = (await serverLicense(serverUrl())) === 'timescale';
    // Retention on, so its state is the server's answer rather than "disabled".
    const app = await ingestWell(databaseUrl, { STORAGE_RETENTION: '36500 days' });
    const { body } = await readyz(app.httpPort);
    const storage = body.storage as {
      timescaledb: string;
      license: string;
      mode: string;
      features: Record<string, { state: string; sqlstate?: string | null; reason?: string }>;
    };
    expect(storage.timescaledb).toMatch(/^2\.\d+/);
    expect(storage.features.hypertable).toEqual({ state: 'applied', detail: 'chunks of 1 day' });
    if (licensed) {
      expect(storage.license).toBe('timescale');
      expect(storage.mode).toBe('timescaledb_compressed');
      for (const f of ['compression', 'compression_policy', 'retention_policy', 'rollups']) expect(storage.features[f]!.state).toBe('applied');
    } else {
      expect(storage.license).toBe('apache');
      expect(storage.mode).toBe('timescaledb_hypertable');
      expect(storage.features.compression).toEqual({ state: 'unsupported', sqlstate: '0A000', reason: expect.stringContaining('"apache" license') });
      expect(storage.features.compression_policy).toEqual({ state: 'unsupported', sqlstate: '0A000', reason: 'needs compression, which is unsupported' });
      expect(storage.features.retention_policy).toEqual({
        state: 'unsupported',
        sqlstate: '0A000',
        reason: 'function "add_retention_policy" is not supported under the current "apache" license',
      });
      expect(storage.features.rollups).toEqual({ state: 'unsupported', sqlstate: '0A000', reason: expect.stringContaining('"apache" license') });
      expect(await metric(app.httpPort, 'esp_ingest_storage_feature{feature="rollups",state="unsupported"}')).toBe(1);
      expect(await metric(app.httpPort, 'esp_ingest_storage_feature{feature="rollups",state="applied"}')).toBe(0);
      expect(await metric(app.httpPort, 'esp_ingest_storage_mode{mode="timescaledb_hypertable"}')).toBe(1);
    }
    expect(await metric(app.httpPort, 'esp_ingest_storage_feature{feature="hypertable",state="applied"}')).toBe(1);
    // One series per feature is 1: every feature has exactly one state.
    expect(await metric(app.httpPort, 'esp_ingest_storage_feature')).toBe(5);
    const [chunks] = await query<{ n: string }>(
      databaseUrl,
      `SELECT count(*) AS n FROM timescaledb_information.chunks WHERE hypertable_name = 'esp_telemetry'`,
    );
    expect(Number(chunks!.n)).toBeGreaterThan(0);
  });

  it('on plain PostgreSQL: every feature unsupported, a plain table, every reading stored', async () => {
    const databaseUrl = await freshDatabase(t, PLAIN_PG_URL);
    const app = await ingestWell(databaseUrl, {});
    const { body } = await readyz(app.httpPort);
    const storage = body.storage as { timescaledb: unknown; mode: string; features: Record<string, { state: string; sqlstate: unknown; reason: string }> };
    expect(storage.timescaledb).toBeNull();
    expect(storage.mode).toBe('postgresql_table');
    for (const f of ['hypertable', 'compression', 'compression_policy', 'retention_policy', 'rollups']) {
      expect(storage.features[f]).toEqual({
        state: 'unsupported',
        sqlstate: null,
        reason: expect.stringMatching(/TimescaleDB is (not installed|installed but not in shared_preload_libraries|not loaded)/),
      });
      expect(await metric(app.httpPort, `esp_ingest_storage_feature{feature="${f}",state="unsupported"}`)).toBe(1);
    }
    expect(await metric(app.httpPort, 'esp_ingest_storage_mode{mode="postgresql_table"}')).toBe(1);
  });

  it('changes the chunk interval in place on restart, reports settings turned off as disabled, in one log line', async () => {
    const databaseUrl = await freshDatabase(t);
    const licensed = (await serverLicense(serverUrl())) === 'timescale';
    const pool = new pg.Pool({ connectionString: databaseUrl, max: 1 });
    t.add(() => pool.end());
    await migrate(pool, DEFAULT_CATALOG, pino({ level: 'silent' }));
    const lines: string[] = [];
    const sink = new Writable({
      write: (chunk: Buffer, _enc, done) => {
        lines.push(chunk.toString());
        done();
      },
    });
    const settings = { ...DEFAULT_STORAGE_SETTINGS, chunkIntervalS: 43_200, compressAfterS: null, rollups: [] };
    const { storage } = await migrate(pool, DEFAULT_CATALOG, pino({ level: 'info' }, sink), settings);
    expect(storage.features.hypertable).toEqual({ state: 'applied', detail: 'chunks of 12 hours' });
    // Where the first start enabled the columnstore, turning it off keeps what is compressed.
    const kept = licensed ? '; chunks already compressed stay compressed' : '';
    expect(storage.features.compression).toEqual({ state: 'disabled', reason: `STORAGE_COMPRESS_AFTER=off${kept}` });
    expect(storage.features.compression_policy).toEqual({ state: 'disabled', reason: 'STORAGE_COMPRESS_AFTER=off' });
    expect(storage.features.retention_policy).toEqual({ state: 'disabled', reason: 'STORAGE_RETENTION=off' });
    expect(storage.features.rollups.state).toBe('disabled');
    const [dim] = await query<{ s: number }>(
      databaseUrl,
      `SELECT EXTRACT(epoch FROM time_interval)::float8 AS s FROM timescaledb_information.dimensions WHERE hypertable_name = 'esp_telemetry'`,
    );
    expect(dim!.s).toBe(43_200);
    const summary = lines.map((l) => JSON.parse(l) as { msg: string }).filter((l) => l.msg.startsWith('storage on '));
    expect(summary).toHaveLength(1);
    expect(summary[0]!.msg).toMatch(
      /^storage on TimescaleDB 2\.\d+\S* \((apache|timescale) license\): hypertable applied; compression disabled; compression_policy disabled; retention_policy disabled; rollups disabled$/,
    );
  });
});
