// Point-in-time recovery with pgBackRest, end to end on a private TimescaleDB cluster with WAL
// archiving: ingest the shipped wells in three parts (by device time), a full backup after the
// first, note a time T after the second has committed, then the third; the restore drill
// (`npm run restore-drill`) restores to T into a fresh data directory and
// must find exactly the readings committed by T: same count and checksum per well as the source
// over the first two parts, none of the third, the hypertable with its chunks, the policy jobs,
// and a unique key that still refuses a duplicate.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_CATALOG } from '../../src/decode/catalog.ts';
import type { Reading } from '../../src/decode/decode.ts';
import { BackupHealth } from '../../src/lifecycle/backup-health.ts';
import { createMetrics } from '../../src/metrics/metrics.ts';
import { migrate } from '../../src/schema/migrate.ts';
import { wellSums } from '../../src/tools/drill-checks.ts';
import { restoreDrill } from '../../src/tools/restore-drill.ts';
import { query, ROOT, Teardown, waitFor } from '../support/harness.ts';
import { PgBackRestStanza } from '../support/pgbackrest.ts';
import { privatePostgres } from '../support/private-postgres.ts';
import { copyOf, wellReadings } from '../support/well-rows.ts';

const run = promisify(execFile);
const t = new Teardown();
afterAll(() => t.run());

/** One COPY of `readings` in one transaction, as the writer's fast path sends them. */
async function copyReadings(url: string, readings: readonly Reading[]): Promise<void> {
  const { target, text } = copyOf(DEFAULT_CATALOG, readings);
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query('BEGIN');
    await pipeline(Readable.from([text]), c.query(copyFrom(`COPY ${target} FROM STDIN`)));
    await c.query('COMMIT');
  } finally {
    await c.end();
  }
}

const iso = (tsUs: bigint | number) => new Date(Number(tsUs) / 1000).toISOString();

describe('restore drill: point-in-time recovery from pgBackRest', () => {
  it('restores to T and finds exactly the readings committed by T, checksums equal per well', async () => {
    const source = await privatePostgres(t);
    const stanza = new PgBackRestStanza(source);
    await stanza.create();
    const pool = new pg.Pool({ connectionString: source.url, max: 2 });
    t.add(() => pool.end());
    await migrate(pool, DEFAULT_CATALOG, pino({ level: 'silent' }));

    // The shipped wells in three parts by device time: [.., b1), [b1, b2), [b2, ..).
    const readings = wellReadings(DEFAULT_CATALOG).sort((a, b) => Number(a.tsUs - b.tsUs));
    const b1 = readings[Math.floor(readings.length * 0.5)]!.tsUs;
    const b2 = readings[Math.floor(readings.length * 0.75)]!.tsUs;
    const parts = [readings.filter((r) => r.tsUs < b1), readings.filter((r) => r.tsUs >= b1 && r.tsUs < b2), readings.filter((r) => r.tsUs >= b2)];
    expect(parts.every((p) => p.length > 0)).toBe(true);

    await copyReadings(source.url, parts[0]!);
    let t0 = performance.now();
    await stanza.backup('full');
    const backupSeconds = (performance.now() - t0) / 1000;
    const backup = await stanza.newestBackup();
    // pgBackRest picks the newest backup that stopped before the target, by its stop time in
    // whole seconds: T must be later than that.
    await waitFor(
      "the clock past the backup's stop second",
      async () => (await query<{ ok: boolean }>(source.url, 'SELECT clock_timestamp() >= to_timestamp($1) AS ok', [backup.stopS + 1]))[0]?.ok,
      5_000,
      50,
    );
    await copyReadings(source.url, parts[1]!);
    const [{ t: target } = { t: '' }] = await query<{ t: string }>(source.url, `SELECT clock_timestamp()::text AS t`);
    await copyReadings(source.url, parts[2]!);
    // WAL up to and past T in the repository: switch segments and wait for the archiver.
    const [{ wal } = { wal: '' }] = await query<{ wal: string }>(source.url, `SELECT pg_walfile_name(pg_switch_wal()) AS wal`);
    await waitFor(
      'WAL past T archived',
      async () => {
        const [a] = await query<{ last: string | null }>(source.url, 'SELECT last_archived_wal AS last FROM pg_stat_archiver');
        return a?.last != null && a.last >= wal;
      },
      30_000,
      100,
    );

    // Backup health as the service exports it: the archiver's statistics, and the info file the
    // backup job writes.
    const infoFile = path.join(source.dir, 'backup-info.json');
    writeFileSync(infoFile, await stanza.pgbackrest('info', '--output=json'));
    const metrics = createMetrics();
    const health = new BackupHealth({ db: pool, metrics, log: pino({ level: 'silent' }), infoFile });
    await health.tick();
    const gauge = async (name: string) => (await metrics.registry.getSingleMetric(name)!.get()).values;
    expect((await gauge('esp_ingest_backup_newest_timestamp_seconds')).map((v) => [v.labels.stanza, v.value])).toEqual([['esp', backup.stopS]]);
    const [archived] = await gauge('esp_ingest_wal_archived_last_timestamp_seconds');
    expect(archived!.value).toBeGreaterThanOrEqual(backup.stopS - 60);
    expect((await gauge('esp_ingest_wal_archive_failed_last_timestamp_seconds'))[0]!.value).toBe(0);

    // An info file that cannot be read before any backup was seen: a series at 0, so the
    // no-backup alert fires instead of staying silent.
    const blind = createMetrics();
    const missing = new BackupHealth({
      db: pool,
      metrics: blind,
      log: pino({ level: 'silent' }),
      infoFile: path.join(source.dir, 'no-such-info.json'),
      intervalMs: 60_000,
    });
    missing.start();
    await missing.tick();
    await missing.stop();
    const blindSeries = (await blind.registry.getSingleMetric('esp_ingest_backup_newest_timestamp_seconds')!.get()).values;
    expect(blindSeries.map((v) => [v.labels.stanza, v.value])).toEqual([['', 0]]);

    const workDir = path.join(source.dir, 'drill');
    t0 = performance.now();
    const verdict = await restoreDrill({
      stanza: stanza.name,
      config: stanza.configFile,
      target,
      database: 'esp',
      user: 'postgres',
      osUser: 'postgres',
      workDir,
      range: { to: iso(b2) },
      compareUrl: source.url,
      keep: true,
      timeoutS: 120,
    });
    const drillSeconds = (performance.now() - t0) / 1000;
    const restoredUrl = `postgres://postgres@${encodeURIComponent(path.join(workDir, 'sock'))}:${verdict.port}/esp`;
    t.add(() => run('runuser', ['-u', 'postgres', '--', '/usr/lib/postgresql/15/bin/pg_ctl', 'stop', '-m', 'immediate', '-D', path.join(workDir, 'pgdata')]));

    expect(verdict.problems).toEqual([]);
    expect(verdict.ok).toBe(true);
    expect(verdict.target).toBe(target);
    // Exactly what was committed by T: the first two parts, per well, by count and checksum.
    const expected = await wellSums(pool, { to: iso(b2) });
    expect(verdict.restored?.wells).toEqual(expected);
    expect(verdict.restored?.rows).toBe(parts[0]!.length + parts[1]!.length);
    expect(verdict.restored?.allRows).toBe(parts[0]!.length + parts[1]!.length);
    const [all] = await query<{ n: number; later: number }>(
      restoredUrl,
      `SELECT count(*)::int AS n, count(*) FILTER (WHERE ts >= $1)::int AS later FROM esp_telemetry`,
      [iso(b2)],
    );
    expect(all).toEqual({ n: parts[0]!.length + parts[1]!.length, later: 0 });
    // The structure: hypertable, chunks, the same policy jobs as the source, the unique key.
    expect(verdict.restored?.hypertable).toBe(true);
    expect(verdict.restored?.chunks).toBeGreaterThan(0);
    expect(verdict.restored?.uniqueKey).toEqual({ present: true, duplicates: 0 });
    expect(verdict.uniqueKeyProbe).toBe('rejected');
    expect(verdict.scheduler).toBe(true);

    // The command: one JSON line, exit 1 when the drill fails (here: a target before any backup).
    const cli = await run(
      process.execPath,
      ['--import', 'tsx', 'src/tools/restore-drill.ts', '--stanza', stanza.name, '--config', stanza.configFile, '--target', '2000-01-01 00:00:00+00'],
      { cwd: ROOT },
    ).then(
      (r) => ({ code: 0, stdout: r.stdout }),
      (err: { code?: number; stdout?: string }) => ({ code: err.code, stdout: err.stdout ?? '' }),
    );
    expect(cli.code).toBe(1);
    const cliLines = cli.stdout.trim().split('\n');
    expect(cliLines).toHaveLength(1);
    expect(JSON.parse(cliLines[0]!)).toMatchObject({
      ok: false,
      stanza: 'esp',
      target: '2000-01-01 00:00:00+00',
      problems: [expect.stringMatching(/pgbackrest restore failed: .*backup set/)],
    });

    // Figures for the README's Backups section (the shipped wells; this machine).
    const [size] = await query<{ bytes: string }>(source.url, `SELECT pg_database_size('esp')::text AS bytes`);
    console.info(
      JSON.stringify({
        figures: {
          rows: readings.length,
          backupRows: parts[0]!.length,
          databaseBytes: Number(size?.bytes),
          backup,
          backupSeconds,
          drillSeconds,
          restoreSeconds: verdict.restoreSeconds,
          recoverySeconds: verdict.recoverySeconds,
        },
      }),
    );
  }, 120_000);
});
