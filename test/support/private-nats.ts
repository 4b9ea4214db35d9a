// A private nats-server (2.9, JetStream) with its MQTT listener on a free port, for tests of a
// broker that speaks MQTT 3.1.1 but has no shared subscriptions (nats-io/nats-server #2386).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from './net.ts';
import { waitFor } from './wait.ts';

export class PrivateNats {
  readonly dir = mkdtempSync(path.join(tmpdir(), 'esp-nats-'));
  mqttPort = 0;
  log = '';
  #proc: ChildProcess | undefined;

  get mqttUrl(): string {
    return `mqtt://127.0.0.1:${this.mqttPort}`;
  }

  async start(): Promise<void> {
    this.mqttPort = await freePort();
    const conf = path.join(this.dir, 'nats.conf');
    writeFileSync(
      conf,
      `server_name: "esp-test-${process.pid}"\nlisten: "127.0.0.1:-1"\njetstream { store_dir: "${this.dir}/js" }\nmqtt { listen: "127.0.0.1:${this.mqttPort}" }\n`,
    );
    const proc = spawn('nats-server', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    proc.stderr!.on('data', (d: Buffer) => (this.log = (this.log + d.toString()).slice(-20_000)));
    this.#proc = proc;
    await waitFor(`nats-server MQTT listener on ${this.mqttPort}`, () => this.log.includes('Listening for MQTT clients'), 15_000);
  }

  async destroy(): Promise<void> {
    const p = this.#proc;
    if (p && p.exitCode === null) {
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
