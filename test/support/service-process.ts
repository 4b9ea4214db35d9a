// Runs the service (the `npm start` entry point) as a child process, for the demo and the
// benchmark: start, wait until /readyz is 200, read its metrics, stop with SIGTERM or SIGKILL.
// The child ends with the script (test/support/children.ts), also on SIGINT/SIGTERM.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { adopt, stopChild } from './children.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

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

export class ServiceProcess {
  #proc: ChildProcess | undefined;
  httpPort = 0;

  /** @param logFile where the service's JSON log goes (appended). */
  constructor(
    private readonly env: Record<string, string>,
    private readonly logFile: string,
  ) {}

  async start(timeoutMs = 60_000): Promise<void> {
    this.httpPort = await freePort();
    const log = createWriteStream(this.logFile, { flags: 'a' });
    // ESP_SERVICE_NODE_ARGS: extra node flags for the service, e.g. "--cpu-prof" when profiling.
    const extra = (process.env.ESP_SERVICE_NODE_ARGS ?? '').split(' ').filter(Boolean);
    const proc = adopt(spawn(process.execPath, [...extra, '--import', 'tsx', 'src/main.ts'], {
      cwd: ROOT,
      env: { ...process.env, LOG_FORMAT: 'json', HTTP_HOST: '127.0.0.1', ...this.env, HTTP_PORT: String(this.httpPort) },
      stdio: ['ignore', 'pipe', 'pipe'],
    }));
    proc.stdout!.pipe(log);
    proc.stderr!.pipe(log);
    this.#proc = proc;
    const end = Date.now() + timeoutMs;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`esp-ingest exited with ${proc.exitCode} during start-up; see ${this.logFile}`);
      const status = await fetch(`http://127.0.0.1:${this.httpPort}/readyz`).then((r) => r.status, () => 0);
      if (status === 200) return;
      if (Date.now() > end) {
        await stopChild(proc);
        throw new Error(`esp-ingest not ready after ${timeoutMs} ms; see ${this.logFile}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Sum of a metric's samples, or 0 when absent. */
  metric(name: string): Promise<number> {
    return scrapeMetric(this.httpPort, name);
  }

  /** Sends `signal` (SIGKILL after `killAfterMs` if still running) and resolves with the exit code. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', killAfterMs?: number): Promise<number | null> {
    const p = this.#proc;
    return p ? stopChild(p, signal, killAfterMs) : null;
  }
}
