// A private Prometheus (Debian's `prometheus` binary) for integration tests: its own config,
// storage and port in a temp dir, so it never depends on or collides with a system Prometheus.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from './net.ts';
import { waitFor } from './wait.ts';

export interface PrometheusOptions {
  /** `host:port` targets of the scrape job `esp-ingest`. */
  readonly targets: readonly string[];
  /** Absolute paths of rule files to load. */
  readonly ruleFiles?: readonly string[];
  /** Scrape and rule evaluation interval, seconds (default 1). */
  readonly intervalS?: number;
}

/** One sample of an instant query: labels and value. */
export interface Sample {
  readonly metric: Record<string, string>;
  readonly value: number;
}

export class PrivatePrometheus {
  readonly dir = mkdtempSync(path.join(tmpdir(), 'esp-prom-'));
  port = 0;
  log = '';
  #proc: ChildProcess | undefined;

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Starts Prometheus; resolves when /-/ready answers 200. */
  async start(o: PrometheusOptions): Promise<void> {
    const version = spawnSync('prometheus', ['--version'], { encoding: 'utf8' });
    if (version.error) throw new Error(`prometheus could not run (apt-get install prometheus; .ci/run does): ${version.error.message}`);
    this.port = await freePort();
    const interval = `${o.intervalS ?? 1}s`;
    const config = [
      'global:',
      `  scrape_interval: ${interval}`,
      `  evaluation_interval: ${interval}`,
      'rule_files:',
      ...(o.ruleFiles ?? []).map((f) => `  - ${JSON.stringify(f)}`),
      'scrape_configs:',
      '  - job_name: esp-ingest',
      '    static_configs:',
      `      - targets: ${JSON.stringify(o.targets)}`,
      '',
    ].join('\n');
    const file = path.join(this.dir, 'prometheus.yml');
    writeFileSync(file, config);
    const proc = spawn(
      'prometheus',
      [`--config.file=${file}`, `--storage.tsdb.path=${path.join(this.dir, 'data')}`, `--web.listen-address=127.0.0.1:${this.port}`, '--log.level=warn'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    proc.stderr!.on('data', (d: Buffer) => (this.log = (this.log + d.toString()).slice(-20_000)));
    this.#proc = proc;
    await waitFor(
      `prometheus ready on ${this.port}`,
      async () => {
        if (proc.exitCode !== null) throw new Error(`prometheus exited ${proc.exitCode}: ${this.log}`);
        return (await fetch(`${this.url}/-/ready`)).status === 200;
      },
      30_000,
      100,
    );
  }

  /** GET /api/v1/<endpoint>; throws unless the answer's status is "success". */
  async api<T>(endpoint: string, params: Record<string, string> = {}): Promise<T> {
    const res = await fetch(`${this.url}/api/v1/${endpoint}?${new URLSearchParams(params)}`);
    const body = (await res.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`prometheus ${endpoint}: ${body.error ?? res.status}`);
    return body.data;
  }

  /** Instant query: one sample per series. */
  async query(promql: string): Promise<Sample[]> {
    const data = await this.api<{ result: { metric: Record<string, string>; value: [number, string] }[] }>('query', { query: promql });
    return data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
  }

  /** SIGTERM, wait for the exit, delete the directory. Idempotent. */
  async destroy(): Promise<void> {
    const p = this.#proc;
    this.#proc = undefined;
    if (p && p.exitCode === null && p.signalCode === null) {
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
