// The logical path: `npm run logical-backup -- export` (pg_dump -Fc, versions recorded beside the
// dump) and `import` into an empty database, wrapped in timescaledb_pre_restore() /
// timescaledb_post_restore(): same readings per well (count and checksum), still a hypertable
// with its chunks, the unique key still refusing a duplicate, restore mode off afterwards. An
// import whose recorded TimescaleDB version is not the server's is refused with the fix, and
// touches nothing (timescale/timescaledb #1797, #7383).
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_CATALOG } from '../../src/decode/catalog.ts';
import { migrate } from '../../src/schema/migrate.ts';
import { inspect, probeUniqueKey } from '../../src/tools/drill-checks.ts';
import { importDatabase } from '../../src/tools/logical-backup.ts';
import { freshDatabase, query, ROOT, Teardown } from '../support/harness.ts';
import { copyOf, wellReadings } from '../support/well-rows.ts';

const run = promisify(execFile);
const t = new Teardown();
afterAll(() => t.run());

const tool = (url: string, ...args: string[]) =>
  run(process.execPath, ['--import', 'tsx', 'src/tools/logical-backup.ts', ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', DATABASE_URL: url },
  }).then(
    (r) => ({ code: 0, ...r }),
    (err: { code?: number; stdout?: string; stderr?: string }) => ({ code: err.code ?? -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' }),
  );

describe('logical export and import', () => {
  it('round-trips the shipped wells through pg_dump/pg_restore with the TimescaleDB hooks; refuses another version', async () => {
    const source = await freshDatabase(t);
    const pool = new pg.Pool({ connectionString: source, max: 2 });
    t.add(() => pool.end());
    await migrate(pool, DEFAULT_CATALOG, pino({ level: 'silent' }));
    const readings = wellReadings(DEFAULT_CATALOG);
    const { target, text } = copyOf(DEFAULT_CATALOG, readings);
    const c = await pool.connect();
    await pipeline(Readable.from([text]), c.query(copyFrom(`COPY ${target} FROM STDIN`)));
    c.release();
    const dir = mkdtempSync(path.join(tmpdir(), 'esp-dump-'));
    t.add(() => rmSync(dir, { recursive: true, force: true }));

    const exported = await tool(source, 'export', '--dir', dir);
    expect(exported.code, exported.stderr).toBe(0);
    const manifest = JSON.parse(readFileSync(path.join(dir, 'esp.dump.json'), 'utf8')) as { timescaledb: string; postgresNum: number };
    const [v] = await query<{ v: string }>(source, `SELECT extversion AS v FROM pg_extension WHERE extname = 'timescaledb'`);
    expect(manifest.timescaledb).toBe(v?.v);

    // Another version recorded: refused, with the fix, and the target untouched.
    const refusedDb = await freshDatabase(t);
    const otherDir = mkdtempSync(path.join(tmpdir(), 'esp-dump-other-'));
    t.add(() => rmSync(otherDir, { recursive: true, force: true }));
    writeFileSync(path.join(otherDir, 'esp.dump.json'), JSON.stringify({ ...manifest, timescaledb: '2.17.1' }));
    writeFileSync(path.join(otherDir, 'esp.dump'), readFileSync(path.join(dir, 'esp.dump')));
    const refused = await tool(refusedDb, 'import', '--dir', otherDir);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/dump holds TimescaleDB 2\.17\.1 but this server would load \d+\.\d+\.\d+/);
    expect(refused.stderr).toContain('timescale/timescaledb:2.17.1-pg');
    expect(refused.stderr).toContain('ALTER EXTENSION timescaledb UPDATE;');
    const [untouched] = await query<{ n: number }>(refusedDb, `SELECT count(*)::int AS n FROM pg_extension WHERE extname = 'timescaledb'`);
    expect(untouched?.n).toBe(0);

    // The same version: restored, equal, and out of restore mode.
    const restored = await freshDatabase(t);
    const imported = await importDatabase(restored, dir);
    expect(imported).toMatchObject({ ok: true, manifest: { timescaledb: manifest.timescaledb } });
    const r = new pg.Client({ connectionString: restored });
    await r.connect();
    t.add(() => r.end());
    const after = await inspect(r, {});
    const before = await inspect(pool, {});
    expect(after.wells).toEqual(before.wells);
    expect(after.rows).toBe(readings.length);
    expect(after).toMatchObject({ hypertable: true, chunks: before.chunks, restoreModeOn: false, uniqueKey: { present: true, duplicates: 0 } });
    expect(await probeUniqueKey(r)).toBe('rejected');
    const [mode] = await query<{ on: boolean }>(restored, `SELECT coalesce(current_setting('timescaledb.restoring', true), 'off') = 'on' AS on`);
    expect(mode?.on).toBe(false);
  }, 90_000);
});
