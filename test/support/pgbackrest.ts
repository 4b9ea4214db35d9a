// A pgBackRest stanza for a private cluster (private-postgres.ts): repository, logs and locks in
// the cluster's own directory, WAL archiving switched on (ALTER SYSTEM, then a restart), backups
// and `info` through the real pgbackrest binary, run as the cluster's OS user.
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { query } from './harness.ts';
import type { PrivatePostgres } from './private-postgres.ts';

const run = promisify(execFile);
const OS_USER = 'postgres';

export class PgBackRestStanza {
  readonly name = 'esp';
  readonly dir: string;
  readonly configFile: string;

  constructor(readonly pg: PrivatePostgres) {
    this.dir = path.join(pg.dir, 'pgbackrest');
    this.configFile = path.join(this.dir, 'pgbackrest.conf');
  }

  /** Writes the config, turns archiving on (restart), creates the stanza and checks archiving works. */
  async create(): Promise<void> {
    for (const d of ['repo', 'log', 'lock', 'spool']) mkdirSync(path.join(this.dir, d), { recursive: true });
    writeFileSync(
      this.configFile,
      [
        '[global]',
        `repo1-path=${path.join(this.dir, 'repo')}`,
        'repo1-retention-full=2',
        'compress-type=zst',
        'start-fast=y',
        `log-path=${path.join(this.dir, 'log')}`,
        `lock-path=${path.join(this.dir, 'lock')}`,
        `spool-path=${path.join(this.dir, 'spool')}`,
        'log-level-console=warn',
        'log-level-file=info',
        '',
        `[${this.name}]`,
        `pg1-path=${path.join(this.pg.dir, 'pgdata')}`,
        `pg1-port=${this.pg.port}`,
        `pg1-socket-path=${path.join(this.pg.dir, 'sock')}`,
        '',
      ].join('\n'),
    );
    await run('chown', ['-R', `${OS_USER}:${OS_USER}`, this.dir]);
    await query(this.pg.url, `ALTER SYSTEM SET archive_mode = 'on'`);
    await query(this.pg.url, `ALTER SYSTEM SET archive_command = 'pgbackrest --config=${this.configFile} --stanza=${this.name} archive-push %p'`);
    await this.pg.stop();
    await this.pg.start();
    await this.pgbackrest('stanza-create');
    await this.pgbackrest('check');
  }

  /** `pgbackrest <command>` with this stanza's config, as the cluster's OS user; stdout. */
  async pgbackrest(command: string, ...options: string[]): Promise<string> {
    const { stdout } = await run('runuser', ['-u', OS_USER, '--', 'pgbackrest', `--config=${this.configFile}`, `--stanza=${this.name}`, ...options, command]);
    return stdout;
  }

  /** A backup of `type`; resolves when pgBackRest has it (and the WAL to make it consistent). */
  async backup(type: 'full' | 'diff' | 'incr'): Promise<void> {
    await this.pgbackrest('backup', `--type=${type}`);
  }

  /** The newest backup as `pgbackrest info --output=json` describes it (sizes in bytes, times in Unix seconds). */
  async newestBackup(): Promise<{ label: string; type: string; sizeBytes: number; repoSizeBytes: number; startS: number; stopS: number }> {
    const info = JSON.parse(await this.pgbackrest('info', '--output=json')) as {
      backup: { label: string; type: string; info: { size: number; repository: { size: number } }; timestamp: { start: number; stop: number } }[];
    }[];
    const b = info[0]?.backup.at(-1);
    if (!b) throw new Error('pgbackrest info lists no backup');
    return { label: b.label, type: b.type, sizeBytes: b.info.size, repoSizeBytes: b.info.repository.size, startS: b.timestamp.start, stopS: b.timestamp.stop };
  }
}
