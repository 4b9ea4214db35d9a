// HTTP sidecar: /livez, /readyz and /metrics on HTTP_PORT (node:http; nothing else listens).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface Readiness {
  /** Reasons the service is not ready; empty when ready. */
  reasons(): string[];
  /** Extra facts for the body (storage mode, buffered rows). */
  detail(): Record<string, unknown>;
}

export interface SidecarDeps {
  readonly registry: Registry;
  readonly readiness: Readiness;
}

/**
 * - `GET /livez`: 200 while the process serves requests.
 * - `GET /readyz`: 200 `{"ready":true,…}`, or 503 `{"ready":false,"reasons":[…],…}`.
 * - `GET /metrics`: Prometheus text format from the service's own registry.
 */
export class Sidecar {
  readonly #deps: SidecarDeps;
  #server: http.Server | undefined;

  constructor(deps: SidecarDeps) {
    this.#deps = deps;
  }

  /** Listens; resolves with the bound port (useful with port 0). */
  async start(port: number, host: string): Promise<number> {
    const server = http.createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(String(err));
      });
    });
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    return (server.address() as AddressInfo).port;
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (url === '/livez') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (url === '/readyz') {
      const reasons = this.#deps.readiness.reasons();
      const body = JSON.stringify({ ready: reasons.length === 0, reasons, ...this.#deps.readiness.detail() });
      res.writeHead(reasons.length === 0 ? 200 : 503, { 'content-type': 'application/json' }).end(body + '\n');
    } else if (url === '/metrics') {
      const text = await this.#deps.registry.metrics();
      res.writeHead(200, { 'content-type': this.#deps.registry.contentType }).end(text);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /livez, /readyz, /metrics\n');
    }
  }

  /** Stops listening and closes idle keep-alive sockets. Idempotent. */
  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (!server) return;
    server.closeIdleConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
