// A private TimescaleDB cluster for fault injection: scripts/timescaledb.sh on its own free port
// and data directory, so a test can stop, restart and freeze the server without touching the
// shared test server that other test files use at the same time.
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './net.ts';
import { ROOT } from './root.ts';
import type { Teardown } from './teardown.ts';

const run = promisify(execFile);
/** Under the script's work directory; each cluster gets its own sub-directory (data, socket, log). */
const BASE_DIR = '/var/tmp/esp-ingest';

export class PrivatePostgres {
  readonly dir = path.join(BASE_DIR, `fault-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
  port = 0;
  #frozen: number[] = [];

  /** The cluster's `esp` database (TimescaleDB extension created by the script). */
  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/esp`;
  }

  get #env(): NodeJS.ProcessEnv {
    return { ...process.env, ESP_PGPORT: String(this.port), ESP_PGDATA: path.join(this.dir, 'pgdata') };
  }

  /** initdb on first use, then start; resolves once connections are accepted (pg_ctl -w). */
  async start(): Promise<void> {
    if (!this.port) this.port = await freePort();
    await run('bash', ['scripts/timescaledb.sh', 'start'], { cwd: ROOT, env: this.#env });
  }

  /** `pg_ctl stop -m fast`: backends are terminated (57P01), the server refuses connections. */
  async stop(): Promise<void> {
    this.thaw();
    await run('bash', ['scripts/timescaledb.sh', 'stop'], { cwd: ROOT, env: this.#env });
  }

  /**
   * SIGSTOP of the postmaster and every server process (what `docker pause` does): connections
   * stay open and the kernel still accepts new ones, but nothing answers. Postmaster first, so
   * it cannot fork a process the list misses.
   */
  freeze(): void {
    const postmaster = Number(readFileSync(path.join(this.dir, 'pgdata', 'postmaster.pid'), 'utf8').split('\n')[0]);
    process.kill(postmaster, 'SIGSTOP');
    this.#frozen = [postmaster, ...childrenOf(postmaster)];
    for (const pid of this.#frozen.slice(1)) process.kill(pid, 'SIGSTOP');
  }

  /** SIGCONT to what `freeze` stopped. Idempotent. */
  thaw(): void {
    for (const pid of this.#frozen) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // already gone
      }
    }
    this.#frozen = [];
  }

  /** Stops the server and deletes its directory. */
  async destroy(): Promise<void> {
    await this.stop().catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Starts a private cluster and registers its destruction. */
export async function privatePostgres(t: Teardown): Promise<PrivatePostgres> {
  const pg = new PrivatePostgres();
  t.add(() => pg.destroy());
  await pg.start();
  return pg;
}

function childrenOf(ppid: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after ')'.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === ppid) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}
