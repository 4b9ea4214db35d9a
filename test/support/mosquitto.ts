// A private Mosquitto for tests and the benchmark: the project's mosquitto.conf on a free port,
// persistence in a temp directory. Debian's stock broker on 1883 drops QoS 1 messages past 1000
// queued per subscriber, so whatever must lose nothing runs against one of these.
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { adopt, stopChild } from './children.ts';
import { deriveMosquittoConf } from './mosquitto-conf.ts';
import { acceptsConnections, freePort } from './net.ts';
import { ROOT } from './root.ts';
import type { Teardown } from './teardown.ts';
import { waitFor } from './wait.ts';

/** Identity files for a PrivateMosquitto run with the shipped authentication (see identity.ts). */
export interface MosquittoAuth {
  readonly passwordFile: string;
  /** Default: ops/mosquitto/mosquitto.acl. */
  readonly aclFile?: string;
  /** PEM files of the TLS listener (then `tlsPort` is set). */
  readonly tls?: { readonly certFile: string; readonly keyFile: string; readonly caFile: string };
}

export interface PrivateMosquittoOptions {
  /** Stop the broker when this process ends or gets SIGINT/SIGTERM (children.ts): for dev tools. */
  readonly endWithScript?: boolean;
  /**
   * The shipped authentication with these files. Without it, the identity lines are taken out
   * and anonymous clients let in (the tests of delivery and faults, the benchmark).
   */
  readonly auth?: MosquittoAuth;
  /** Directives replaced (or added), e.g. `{ max_queued_messages: '1000' }` for Debian's stock queue limit. */
  readonly overrides?: Record<string, string>;
}

export class PrivateMosquitto {
  readonly dir = mkdtempSync(path.join(tmpdir(), 'esp-mosq-'));
  port = 0;
  tlsPort = 0;
  #proc: ChildProcess | undefined;
  /** The last 20,000 characters the broker logged. */
  log = '';

  constructor(private readonly opts: PrivateMosquittoOptions = {}) {}

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  /** The running broker's process id (for SIGHUP). */
  get pid(): number | undefined {
    return this.#proc?.pid;
  }

  /** Starts the broker (on the same port again after `stop`); resolves once it accepts connections. */
  async start(): Promise<void> {
    if (!this.port) this.port = await freePort();
    const a = this.opts.auth;
    if (a?.tls && !this.tlsPort) this.tlsPort = await freePort();
    // Started as root, mosquitto drops to its own user, which must be able to write here.
    chmodSync(this.dir, 0o777);
    let conf = deriveMosquittoConf(readFileSync(path.join(ROOT, 'mosquitto.conf'), 'utf8'), {
      port: this.port,
      persistenceDir: this.dir,
      ...(a
        ? {
            auth: {
              passwordFile: a.passwordFile,
              aclFile: a.aclFile ?? path.join(ROOT, 'ops/mosquitto/mosquitto.acl'),
              ...(a.tls ? { tls: { port: this.tlsPort, ...a.tls } } : {}),
            },
          }
        : {}),
    });
    for (const [name, value] of Object.entries(this.opts.overrides ?? {})) {
      const line = new RegExp(`^${name} .*$`, 'm');
      conf = line.test(conf) ? conf.replace(line, `${name} ${value}`) : `${conf}\n${name} ${value}\n`;
    }
    conf = conf.replace(/^log_dest .*$/gm, '').concat('\nlog_dest stderr\n');
    const file = path.join(this.dir, 'mosquitto.conf');
    writeFileSync(file, conf);
    const proc = spawn('mosquitto', ['-c', file], { stdio: ['ignore', 'ignore', 'pipe'] });
    if (this.opts.endWithScript) adopt(proc);
    proc.stderr!.on('data', (d: Buffer) => (this.log = (this.log + d.toString()).slice(-20_000)));
    this.#proc = proc;
    await waitFor(`mosquitto on ${this.port}`, () => this.log.includes('Opening ipv4 listen socket') || this.log.includes(`port ${this.port}`), 10_000);
    await waitFor('mosquitto accepting', () => acceptsConnections(this.port), 10_000);
  }

  /** SIGTERM: Mosquitto saves its persistence file and exits. The directory is kept (restarts). */
  async stop(): Promise<void> {
    const p = this.#proc;
    this.#proc = undefined;
    if (p) await stopChild(p);
  }

  /** Stops the broker and deletes its directory. */
  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Starts a private Mosquitto and registers its destruction. */
export async function privateMosquitto(t: Teardown): Promise<PrivateMosquitto> {
  const broker = new PrivateMosquitto();
  t.add(() => broker.destroy());
  await broker.start();
  return broker;
}
