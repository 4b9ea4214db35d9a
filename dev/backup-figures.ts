// The README's backup figures (`npx tsx dev/backup-figures.ts`, with TEST_DATABASE_URL or the
// local TimescaleDB running): a private cluster with WAL archiving to pgBackRest, the six shipped
// wells (29,718 readings), a full backup, a change and a differential, one WAL file's archiving
// time, then `npm run restore-drill` to the end of the archive. Prints one JSON object.
import { execFile } from 'node:child_process';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { pino } from 'pino';
import { DEFAULT_CATALOG } from '../src/decode/catalog.ts';
import { migrate } from '../src/schema/migrate.ts';
import { query, Teardown, waitFor } from '../test/support/harness.ts';
import { PgBackRestStanza } from '../test/support/pgbackrest.ts';
import { privatePostgres } from '../test/support/private-postgres.ts';
import { copyOf, wellReadings } from '../test/support/well-rows.ts';

const run = promisify(execFile);
const t = new Teardown();
try {
  const src = await privatePostgres(t);
  const st = new PgBackRestStanza(src);
  await st.create();
  const pool = new pg.Pool({ connectionString: src.url, max: 2 });
  await migrate(pool, DEFAULT_CATALOG, pino({ level: 'silent' }));
  const readings = wellReadings(DEFAULT_CATALOG);
  const { target, text } = copyOf(DEFAULT_CATALOG, readings);
  const c = await pool.connect();
  await pipeline(Readable.from([text]), c.query(copyFrom(`COPY ${target} FROM STDIN`)));
  c.release();
  const [db] = await query<{ b: string; tb: string }>(src.url, `SELECT pg_database_size('esp')::text AS b, hypertable_size('esp_telemetry')::text AS tb`);
  const [cl] = await query<{ b: string }>(src.url, `SELECT sum(pg_database_size(datname))::text AS b FROM pg_database`);
  let t0 = performance.now();
  await st.backup('full');
  const fullS = (performance.now() - t0) / 1000;
  const full = await st.newestBackup();
  await query(src.url, `UPDATE esp_telemetry SET seq = 1 WHERE well_id = (SELECT min(well_id) FROM esp_telemetry)`);
  t0 = performance.now();
  await st.backup('diff');
  const diffS = (performance.now() - t0) / 1000;
  const diff = await st.newestBackup();
  // archive latency: switch and wait
  t0 = performance.now();
  const [{ wal } = { wal: '' }] = await query<{ wal: string }>(src.url, `SELECT pg_walfile_name(pg_switch_wal()) AS wal`);
  await waitFor(
    'archived',
    async () => {
      const [a] = await query<{ last: string | null }>(src.url, 'SELECT last_archived_wal AS last FROM pg_stat_archiver');
      return a?.last != null && a.last >= wal;
    },
    30_000,
    20,
  );
  const archiveS = (performance.now() - t0) / 1000;
  const [{ now } = { now: '' }] = await query<{ now: string }>(src.url, 'SELECT clock_timestamp()::text AS now');
  const { stdout: repoDu } = await run('du', ['-sb', `${st.dir}/repo`]);
  t0 = performance.now();
  const { stdout } = await run(process.execPath, [
    '--import',
    'tsx',
    'src/tools/restore-drill.ts',
    '--stanza',
    'esp',
    '--config',
    st.configFile,
    '--compare-url',
    src.url,
    '--work-dir',
    `${src.dir}/drill`,
  ]).catch((e) => e);
  const drillS = (performance.now() - t0) / 1000;
  const v = JSON.parse(stdout.trim());
  process.stdout.write(
    `${JSON.stringify({ rows: readings.length, clusterBytes: Number(cl?.b), dbBytes: Number(db?.b), hypertableBytes: Number(db?.tb), full: { ...full, seconds: fullS }, diff: { ...diff, seconds: diffS }, archiveS, repoDu: repoDu.split('\t')[0], drill: { ok: v.ok, problems: v.problems, restoreSeconds: v.restoreSeconds, recoverySeconds: v.recoverySeconds, totalSeconds: drillS }, now }, null, 1)}\n`,
  );
  await pool.end();
} finally {
  await t.run();
}
