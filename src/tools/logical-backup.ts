// `npm run logical-backup -- export --dir DIR` / `import --dir DIR`: a logical copy of the
// database at DATABASE_URL with `pg_dump -Fc`, and its restore with `pg_restore` wrapped in
// TimescaleDB's `timescaledb_pre_restore()` / `timescaledb_post_restore()`. The TimescaleDB and
// PostgreSQL versions are recorded beside the dump (`esp.dump.json`); an import into a server
// that would load another TimescaleDB version is refused with the command that fixes it,
// because a dump restored across versions can come back without data (timescale/timescaledb
// #1797, #7383, #3198: restore into the same version, then ALTER EXTENSION … UPDATE).
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { parseCliOrExit } from './cli.ts';

const run = promisify(execFile);
const DUMP = 'esp.dump';
const MANIFEST = 'esp.dump.json';

/** What is recorded beside the dump. */
export interface DumpManifest {
  /** `pg_extension.extversion` of timescaledb in the dumped database; null without it. */
  readonly timescaledb: string | null;
  /** `server_version_num` of the dumped server. */
  readonly postgresNum: number;
  readonly database: string;
  /** ISO time the dump started. */
  readonly dumpedAt: string;
}

/** What the import target offers. */
export interface TargetServer {
  /** `pg_available_extensions.default_version` of timescaledb; null when the server has none. */
  readonly timescaledb: string | null;
  readonly postgresNum: number;
  /** Tables in the target database's public schema (an import needs an empty database). */
  readonly tables: number;
}

/** Why an import must not run, with the command that fixes it; undefined when it may. Pure. */
export function importRefusal(m: DumpManifest, t: TargetServer): string | undefined {
  if (m.timescaledb !== null && t.timescaledb === null) {
    return `the dump holds TimescaleDB ${m.timescaledb} but this server has no TimescaleDB: restore into a server with TimescaleDB ${m.timescaledb} installed (e.g. the image timescale/timescaledb:${m.timescaledb}-pg${Math.floor(m.postgresNum / 10000)})`;
  }
  if (m.timescaledb !== null && t.timescaledb !== m.timescaledb) {
    return (
      `the dump holds TimescaleDB ${m.timescaledb} but this server would load ${t.timescaledb}; a restore across versions can come back without data. ` +
      `Restore into a server with TimescaleDB ${m.timescaledb} (e.g. the image timescale/timescaledb:${m.timescaledb}-pg${Math.floor(m.postgresNum / 10000)}), ` +
      `then install the new version's files there and run \`ALTER EXTENSION timescaledb UPDATE;\` as the first command of a new session (psql -X), and dump again`
    );
  }
  if (Math.floor(t.postgresNum / 10000) < Math.floor(m.postgresNum / 10000)) {
    return `the dump comes from PostgreSQL ${Math.floor(m.postgresNum / 10000)} and this server is ${Math.floor(t.postgresNum / 10000)}: restore into PostgreSQL ${Math.floor(m.postgresNum / 10000)} or later`;
  }
  if (t.tables > 0) return `the target database already has ${t.tables} tables; create an empty one (CREATE DATABASE …) and import into it`;
  return undefined;
}

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** pg_dump -Fc of `url` into `dir` (created), and the manifest beside it. */
export async function exportDatabase(url: string, dir: string): Promise<DumpManifest> {
  mkdirSync(dir, { recursive: true });
  const manifest = await withClient(url, async (c) => {
    const { rows } = await c.query<{ ext: string | null; num: string; db: string }>(`SELECT
        (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb') AS ext,
        current_setting('server_version_num') AS num, current_database() AS db`);
    const r = rows[0]!;
    return { timescaledb: r.ext, postgresNum: Number(r.num), database: r.db, dumpedAt: new Date().toISOString() };
  });
  await run('pg_dump', ['-Fc', '-f', path.join(dir, DUMP), '-d', url], { maxBuffer: 16 * 1024 * 1024 });
  writeFileSync(path.join(dir, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

/** The result of an import: refused (nothing done) or restored. */
export type ImportResult = { readonly ok: false; readonly refusal: string } | { readonly ok: true; readonly manifest: DumpManifest; readonly warnings: string };

/**
 * Restores `dir` into the empty database at `url`: checks the versions, creates the extension at
 * the dump's version, `timescaledb_pre_restore()`, `pg_restore`, `timescaledb_post_restore()`
 * (also when pg_restore fails, so the database is never left in restore mode).
 * @throws when pg_restore reports errors (its stderr in the message).
 */
export async function importDatabase(url: string, dir: string): Promise<ImportResult> {
  const manifest = JSON.parse(readFileSync(path.join(dir, MANIFEST), 'utf8')) as DumpManifest;
  const target = await withClient(url, async (c) => {
    const { rows } = await c.query<{ ext: string | null; num: string; tables: number }>(`SELECT
        (SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb') AS ext,
        current_setting('server_version_num') AS num,
        (SELECT count(*)::int FROM pg_tables WHERE schemaname = 'public') AS tables`);
    const r = rows[0]!;
    return { timescaledb: r.ext, postgresNum: Number(r.num), tables: r.tables };
  });
  const refusal = importRefusal(manifest, target);
  if (refusal) return { ok: false, refusal };
  if (manifest.timescaledb !== null) {
    await withClient(url, async (c) => {
      await c.query(`CREATE EXTENSION IF NOT EXISTS timescaledb VERSION '${manifest.timescaledb!.replace(/'/g, "''")}'`);
      await c.query('SELECT timescaledb_pre_restore()');
    });
  }
  let warnings = '';
  try {
    const r = await run('pg_restore', ['--exit-on-error', '-d', url, path.join(dir, DUMP)], { maxBuffer: 16 * 1024 * 1024 });
    warnings = r.stderr;
  } catch (err) {
    throw new Error(`pg_restore failed: ${((err as { stderr?: string }).stderr ?? (err as Error).message).trim().split('\n').slice(0, 8).join(' | ')}`, {
      cause: err,
    });
  } finally {
    if (manifest.timescaledb !== null) await withClient(url, (c) => c.query('SELECT timescaledb_post_restore()'));
  }
  return { ok: true, manifest, warnings };
}

const USAGE = `usage: npm run logical-backup -- export --dir DIR
       npm run logical-backup -- import --dir DIR
  export   pg_dump -Fc of DATABASE_URL into DIR/${DUMP}, versions recorded in DIR/${MANIFEST}
  import   into the empty database at DATABASE_URL, wrapped in timescaledb_pre_restore() and
           timescaledb_post_restore(); refused (exit 1) when the server's TimescaleDB version is
           not the dump's, with the command that fixes it
Needs pg_dump / pg_restore of the server's PostgreSQL major (or later) on PATH.`;

async function main(): Promise<void> {
  const { values, positionals } = parseCliOrExit(process.argv.slice(2), {
    name: 'logical-backup',
    usage: USAGE,
    options: { dir: { type: 'string' } },
    allowPositionals: true,
  });
  const [command] = positionals;
  const url = process.env.DATABASE_URL;
  if ((command !== 'export' && command !== 'import') || positionals.length !== 1 || !values.dir || !url) {
    process.stderr.write(`logical-backup: ${!url ? 'DATABASE_URL is not set' : 'give export or import, and --dir'}\n${USAGE}\n`);
    process.exit(2);
  }
  if (command === 'export') {
    const m = await exportDatabase(url, values.dir);
    process.stdout.write(`${JSON.stringify({ ok: true, dir: values.dir, ...m })}\n`);
    return;
  }
  const r = await importDatabase(url, values.dir);
  if (!r.ok) {
    process.stderr.write(`logical-backup: import refused: ${r.refusal}\n`);
    process.exitCode = 1;
    return;
  }
  process.stdout.write(`${JSON.stringify({ ok: true, dir: values.dir, ...r.manifest })}\n`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
