// The service (the `npm start` entry point) as a child process, for integration tests, the demo
// and the benchmark: start on a free HTTP port, wait until /readyz is 200, read its metrics and
// output, stop with a signal. Dev tools have it end with them (children.ts), also on Ctrl-C.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { adopt, stopChild } from './children.ts';
import { freePort } from './net.ts';
import { ROOT } from './root.ts';

/**
 * Sum of the samples of one metric on a service's /metrics (all label sets unless `name`
 * includes them, e.g. `x_total{reason="a"}`); 0 when absent.
 */
export async function scrapeMetric(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** GET /readyz on 127.0.0.1:`port`: the status and the JSON body. Rejects while nothing listens. */
export async function readyz(port: number): Promise<{ status: number; body: { ready: boolean; reasons: string[]; [k: string]: unknown } }> {
  const res = await fetch(`http://127.0.0.1:${port}/readyz`);
  return { status: res.status, body: (await res.json()) as { ready: boolean; reasons: string[] } };
}

export interface ServiceProcessOptions {
  /** Also append the service's output (its JSON log) to this file. */
  readonly logFile?: string;
  /**
   * Pass this process's environment on (dev tools: the operator's settings reach the service).
   * Default false: the service sees only PATH and what `env` gives, so a test is not changed by
   * the shell it runs in.
   */
  readonly inheritEnv?: boolean;
  /** Stop the service when this process ends or gets SIGINT/SIGTERM (children.ts): for dev tools. */
  readonly endWithScript?: boolean;
  /**
   * `sources` (default): src/main.ts through tsx, as `npm start` runs it. `bundle`: what the image
   * runs, `npm run build`'s dist/service/main.js (built by the caller; see buildBundle).
   */
  readonly entry?: 'sources' | 'bundle';
}

/** Characters of the service's output a ServiceProcess keeps (see output()). */
const OUTPUT_KEPT_CHARS = 4_000_000;

/** The image's command after `node` (the Dockerfile's CMD), relative to the project root. */
export const BUNDLE_ARGS = ['--enable-source-maps', 'dist/service/main.js'];

/** Runs `npm run build` (esbuild, under a second), so that `entry: 'bundle'` runs the current sources. */
export function buildBundle(): void {
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, stdio: 'inherit' });
}

/**
 * One service process at a time; `start` again after `stop` (or a kill) starts a new one on a
 * new HTTP port. Runs with LOG_FORMAT=json, LOG_LEVEL=info (unless the inherited environment has
 * one) and HTTP on 127.0.0.1, unless `env` says otherwise. ESP_SERVICE_NODE_ARGS adds node flags (e.g. "--cpu-prof" when profiling).
 */
export class ServiceProcess {
  httpPort = 0;
  #proc: ChildProcess | undefined;
  #exited: Promise<number | null> = Promise.resolve(null);
  /** What the service wrote, in chunks, the oldest dropped past OUTPUT_KEPT_CHARS. */
  readonly #out: string[] = [];
  #outChars = 0;

  constructor(
    private readonly env: Record<string, string>,
    private readonly opts: ServiceProcessOptions = {},
  ) {}

  /** The running (or last) child process. */
  get proc(): ChildProcess {
    if (!this.#proc) throw new Error('ServiceProcess: not started');
    return this.#proc;
  }

  /** Resolves with the exit code of the current child (null when ended by a signal). */
  get exited(): Promise<number | null> {
    return this.#exited;
  }

  /**
   * What the service wrote to stdout and stderr, over all its starts: the last 4,000,000
   * characters or so (whole chunks), enough for every line of a test's run at info level.
   */
  output(): string {
    return this.#out.join('');
  }

  /**
   * Spawns the service; unless `waitReady` is false, resolves once /readyz is 200. Throws with the
   * end of its output when it exits first, or after `timeoutMs` (the child is then stopped).
   */
  async start(opts: { waitReady?: boolean; timeoutMs?: number } = {}): Promise<void> {
    const timeoutMs = opts.timeoutMs ?? 60_000;
    this.httpPort = await freePort();
    const extra = (process.env.ESP_SERVICE_NODE_ARGS ?? '').split(' ').filter(Boolean);
    const base = this.opts.inheritEnv ? process.env : { PATH: process.env.PATH ?? '' };
    const entry = this.opts.entry === 'bundle' ? BUNDLE_ARGS : ['--import', 'tsx', 'src/main.ts'];
    const proc = spawn(process.execPath, [...extra, ...entry], {
      cwd: ROOT,
      env: {
        LOG_LEVEL: 'info',
        ...base,
        LOG_FORMAT: 'json',
        HTTP_HOST: '127.0.0.1',
        ...this.env,
        HTTP_PORT: String(this.httpPort),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    if (this.opts.endWithScript) adopt(proc);
    const file = this.opts.logFile ? createWriteStream(this.opts.logFile, { flags: 'a' }) : undefined;
    const keep = (d: Buffer) => {
      const text = d.toString();
      this.#out.push(text);
      this.#outChars += text.length;
      while (this.#out.length > 1 && this.#outChars - this.#out[0]!.length >= OUTPUT_KEPT_CHARS) this.#outChars -= this.#out.shift()!.length;
      file?.write(d);
    };
    proc.stdout!.on('data', keep);
    proc.stderr!.on('data', keep);
    this.#proc = proc;
    this.#exited = new Promise((r) => proc.once('exit', (code) => r(code)));
    proc.once('exit', () => file?.end());
    if (opts.waitReady === false) return;
    const seeLog = this.opts.logFile ? `; see ${this.opts.logFile}` : '';
    const end = Date.now() + timeoutMs;
    for (;;) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        throw new Error(`esp-ingest exited with ${proc.exitCode ?? proc.signalCode} during start-up${seeLog}: ${this.output().slice(-2000)}`);
      }
      if ((await readyz(this.httpPort).catch(() => undefined))?.status === 200) return;
      if (Date.now() > end) {
        await stopChild(proc);
        throw new Error(`esp-ingest not ready after ${timeoutMs} ms${seeLog}: ${this.output().slice(-2000)}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Sum of a metric's samples (see scrapeMetric), or 0 when absent. */
  metric(name: string): Promise<number> {
    return scrapeMetric(this.httpPort, name);
  }

  /** Sends `signal` (SIGKILL if still running after `killAfterMs`); resolves with the exit code. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', killAfterMs?: number): Promise<number | null> {
    const p = this.#proc;
    return p ? stopChild(p, signal, killAfterMs) : null;
  }
}
