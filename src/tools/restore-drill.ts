// `npm run restore-drill -- --stanza esp [--target TIME] [options]`: restores a pgBackRest backup
// to a point in time into a fresh data directory, starts it on a free port with archiving off,
// waits for recovery to end, checks it (drill-checks.ts), stops it, and prints a one-line JSON
// verdict. Exit 0 when the drill passes, 1 when it fails, 2 on bad options. Run it as the
// cluster's OS user, or as root (then pgBackRest and the server run as --os-user).
import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { parseCliOrExit } from './cli.ts';
import {
  drillProblems,
  type Inspection,
  inspect,
  probeUniqueKey,
  refreshRollups,
  rollupTotalProblems,
  schedulerRunning,
  type TsRange,
} from './drill-checks.ts';

const run = promisify(execFile);

export interface DrillOptions {
  /** pgBackRest stanza. */
  readonly stanza: string;
  /** pgBackRest config file; pgBackRest's default when undefined. */
  readonly config?: string | undefined;
  /** Recovery target time (any form PostgreSQL's recovery_target_time takes); end of the archive when undefined. */
  readonly target?: string | undefined;
  /** A backup label to restore from; pgBackRest picks the newest before the target when undefined. */
  readonly set?: string | undefined;
  /** Database to check. */
  readonly database: string;
  /** Database role to check as (connected over the private socket, trust). */
  readonly user: string;
  /** OS user that owns the restored files and runs the server when this runs as root. */
  readonly osUser: string;
  /** Directory for the drill (data directory, socket, log); a new one under the temp dir when undefined. */
  readonly workDir?: string | undefined;
  /** Device-time range the per-well sums cover. */
  readonly range: TsRange;
  /** A database to compare with (the live one): same wells, checksums, jobs and rollups over `range`. */
  readonly compareUrl?: string | undefined;
  /** PostgreSQL's bin directory; found from the backup's PG_VERSION when undefined. */
  readonly pgBin?: string | undefined;
  /** Leave the restored server running (for inspection) instead of stopping and deleting it. */
  readonly keep: boolean;
  /** Longest wait for the server to start and recovery to end, seconds. */
  readonly timeoutS: number;
}

/** The one-line verdict. Times in seconds. */
export interface Verdict {
  readonly ok: boolean;
  readonly stanza: string;
  readonly target: string | null;
  readonly restoreSeconds: number | null;
  readonly recoverySeconds: number | null;
  readonly port: number | null;
  readonly dataDirectory: string | null;
  readonly restored: Inspection | null;
  readonly uniqueKeyProbe: string | null;
  readonly rollupRefresh: Record<string, string>;
  /** TimescaleDB's job scheduler runs for the database; null without TimescaleDB. */
  readonly scheduler: boolean | null;
  readonly compared: boolean;
  readonly problems: string[];
}

/** Runs the drill; never throws: a failure is a verdict with `ok: false` and its problems. */
export async function restoreDrill(o: DrillOptions): Promise<Verdict> {
  const work = o.workDir ?? mkdtempSync(path.join(tmpdir(), 'esp-restore-drill-'));
  const dataDir = path.join(work, 'pgdata');
  const sockDir = path.join(work, 'sock');
  const logFile = path.join(work, 'postgres.log');
  const asRoot = process.getuid?.() === 0;
  const as = (cmd: string, args: string[]) => (asRoot ? run('runuser', ['-u', o.osUser, '--', cmd, ...args]) : run(cmd, args));
  const base = { stanza: o.stanza, target: o.target ?? null, compared: o.compareUrl !== undefined, rollupRefresh: {}, scheduler: null };
  let restoreSeconds: number | null = null;
  let recoverySeconds: number | null = null;
  let port: number | null = null;
  let started = false;
  let pgCtl = 'pg_ctl';
  const fail = (problem: string, restored: Inspection | null = null): Verdict => ({
    ...base,
    ok: false,
    restoreSeconds,
    recoverySeconds,
    port,
    dataDirectory: dataDir,
    restored,
    uniqueKeyProbe: null,
    problems: [problem],
  });
  try {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    mkdirSync(sockDir, { recursive: true, mode: 0o700 });
    if (asRoot) {
      const { stdout } = await run('id', ['-u', o.osUser]);
      const { stdout: gid } = await run('id', ['-g', o.osUser]);
      for (const d of [work, dataDir, sockDir]) chownSync(d, Number(stdout.trim()), Number(gid.trim()));
    }

    // 1. Restore: pgBackRest picks the backup set and writes the recovery settings.
    const restoreArgs = [
      ...(o.config ? [`--config=${o.config}`] : []),
      `--stanza=${o.stanza}`,
      `--pg1-path=${dataDir}`,
      '--archive-mode=off',
      '--log-level-console=warn',
      ...(o.set ? [`--set=${o.set}`] : []),
      ...(o.target ? ['--type=time', `--target=${o.target}`, '--target-action=promote'] : []),
      'restore',
    ];
    let t0 = performance.now();
    try {
      await as('pgbackrest', restoreArgs);
    } catch (err) {
      return fail(`pgbackrest restore failed: ${commandError(err)}`);
    }
    restoreSeconds = seconds(t0);

    // 2. Start on a free port, private socket, no archiving, local trust only (the drill's own
    // pg_hba: the restored one may need passwords or peer authentication of another user).
    const pgVersion = readFileSync(path.join(dataDir, 'PG_VERSION'), 'utf8').trim();
    const bin = o.pgBin ?? (existsSync(`/usr/lib/postgresql/${pgVersion}/bin/pg_ctl`) ? `/usr/lib/postgresql/${pgVersion}/bin` : undefined);
    pgCtl = bin ? path.join(bin, 'pg_ctl') : 'pg_ctl';
    // A cluster whose configuration lives outside the data directory (Debian's /etc/postgresql)
    // restores without it: give it the one setting TimescaleDB cannot do without.
    if (!existsSync(path.join(dataDir, 'postgresql.conf')))
      writeOwned(path.join(dataDir, 'postgresql.conf'), "shared_preload_libraries = 'timescaledb'\n", asRoot);
    const hba = path.join(work, 'pg_hba.conf');
    writeOwned(hba, 'local all all trust\n', asRoot);
    port = await freePort();
    const settings = [
      `-c port=${port}`,
      "-c listen_addresses='127.0.0.1'",
      `-c unix_socket_directories='${sockDir}'`,
      `-c hba_file='${hba}'`,
      '-c archive_mode=off',
      "-c cluster_name='esp-restore-drill'",
    ].join(' ');
    t0 = performance.now();
    try {
      await as(pgCtl, ['start', '-w', '-t', String(o.timeoutS), '-D', dataDir, '-l', logFile, '-o', settings]);
      started = true;
    } catch (err) {
      return fail(`the restored server did not start: ${commandError(err)}; ${logTail(logFile)}`);
    }
    const client = new pg.Client({ host: sockDir, port, user: o.user, database: o.database });
    client.on('error', () => undefined);
    await client.connect();
    try {
      const deadline = Date.now() + o.timeoutS * 1000;
      for (;;) {
        const { rows } = await client.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
        if (rows[0]?.r === false) break;
        if (Date.now() > deadline) return fail(`recovery did not end within ${o.timeoutS} s; ${logTail(logFile)}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      recoverySeconds = seconds(t0);

      // 3. Checks.
      const restored = await inspect(client, o.range);
      const uniqueKeyProbe = await probeUniqueKey(client);
      const rollupRefresh = await refreshRollups(client, restored.rollups);
      const rollupTotals = await rollupTotalProblems(client, restored.rollups);
      const scheduler = restored.extension !== null ? await schedulerRunning(client, 15_000) : undefined;
      let reference: Inspection | undefined;
      if (o.compareUrl) {
        const live = new pg.Client({ connectionString: o.compareUrl });
        await live.connect();
        try {
          reference = await inspect(live, o.range);
        } finally {
          await live.end();
        }
      }
      const problems = drillProblems({ restored, uniqueKeyProbe, rollupRefresh, rollupTotals, scheduler, reference });
      return {
        ...base,
        ok: problems.length === 0,
        restoreSeconds,
        recoverySeconds,
        port,
        dataDirectory: dataDir,
        restored,
        uniqueKeyProbe,
        rollupRefresh,
        scheduler: scheduler ?? null,
        problems,
      };
    } finally {
      await client.end().catch(() => undefined);
    }
  } catch (err) {
    return fail(`drill failed: ${(err as Error).message}`);
  } finally {
    if (!o.keep) {
      if (started) await as(pgCtl, ['stop', '-m', 'fast', '-w', '-D', dataDir]).catch(() => undefined);
      if (o.workDir === undefined) rmSync(work, { recursive: true, force: true });
      else rmSync(dataDir, { recursive: true, force: true });
    }
  }
}

function seconds(t0: number): number {
  return Math.round(performance.now() - t0) / 1000;
}

/** Writes a file owned like its directory (the cluster's OS user when running as root). */
function writeOwned(file: string, text: string, asRoot: boolean): void {
  writeFileSync(file, text, { mode: 0o600 });
  if (asRoot) {
    const { uid, gid } = statSync(path.dirname(file));
    chownSync(file, uid, gid);
  }
}

/** The first lines of what a failed command printed (stderr first), without the command line. */
function commandError(err: unknown): string {
  const e = err as { stderr?: string; stdout?: string; message?: string };
  const text = (e.stderr || e.stdout || e.message || String(err)).trim();
  return text.split('\n').slice(0, 6).join(' | ');
}

function logTail(file: string): string {
  try {
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    return `server log ${file}: ${lines.slice(-5).join(' | ')}`;
  } catch {
    return `no server log at ${file}`;
  }
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const { port } = s.address() as { port: number };
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const USAGE = `usage: npm run restore-drill -- --stanza NAME [options]
  --stanza NAME        pgBackRest stanza (required)
  --config FILE        pgBackRest config file (default: pgBackRest's own, /etc/pgbackrest/pgbackrest.conf)
  --target TIME        restore to this time (recovery_target_time, e.g. "2024-05-01 12:00:00+00");
                       default: the end of the archived WAL
  --set LABEL          restore this backup set (default: the newest one before the target)
  --database NAME      database to check (default esp)
  --user ROLE          role to check as, over the drill's private socket (default postgres)
  --os-user USER       OS user owning the restored files, when run as root (default postgres)
  --work-dir DIR       where the data directory, socket and log go (default: a new temp dir)
  --from TIME, --to TIME   device-time range [from, to) of the per-well sums (default: all)
  --compare-url URL    compare wells, checksums, policy jobs and rollups with this database
                       over the same range (e.g. the live one, with --to before the target)
  --pg-bin DIR         PostgreSQL bin directory (default: from the backup's PG_VERSION)
  --keep               leave the restored server running for inspection (the verdict names it)
  --timeout-s N        longest wait for start-up and recovery (default 600)
Prints one JSON line; exit 0 = passed, 1 = failed.`;

async function main(): Promise<void> {
  const { values, numbers } = parseCliOrExit(process.argv.slice(2), {
    name: 'restore-drill',
    usage: USAGE,
    options: {
      stanza: { type: 'string' },
      config: { type: 'string' },
      target: { type: 'string' },
      set: { type: 'string' },
      database: { type: 'string', default: 'esp' },
      user: { type: 'string', default: 'postgres' },
      'os-user': { type: 'string', default: 'postgres' },
      'work-dir': { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      'compare-url': { type: 'string' },
      'pg-bin': { type: 'string' },
      keep: { type: 'boolean', default: false },
      'timeout-s': { type: 'string', default: '600' },
    },
    numbers: { 'timeout-s': { min: 1, integer: true } },
  });
  if (!values.stanza) {
    process.stderr.write(`restore-drill: --stanza is required\n${USAGE}\n`);
    process.exit(2);
  }
  const verdict = await restoreDrill({
    stanza: values.stanza,
    config: values.config,
    target: values.target,
    set: values.set,
    database: values.database,
    user: values.user,
    osUser: values['os-user'],
    workDir: values['work-dir'],
    range: { from: values.from, to: values.to },
    compareUrl: values['compare-url'],
    pgBin: values['pg-bin'],
    keep: values.keep,
    timeoutS: numbers['timeout-s'],
  });
  process.stdout.write(`${JSON.stringify(verdict)}\n`);
  process.exitCode = verdict.ok ? 0 : 1;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
