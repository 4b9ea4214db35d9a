// HTTP sidecar: /livez, /readyz, /startupz and /metrics on HTTP_PORT (node:http; nothing else
// listens). The decisions live in lifecycle/readiness.ts and lifecycle/liveness.ts; this file
// only turns them into status codes and JSON bodies.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { LoopBlocked } from '../lifecycle/liveness.ts';
import { type NotReady, reasonsBody } from '../lifecycle/readiness.ts';

export interface Readiness {
  /** Reasons the service is not ready; empty when ready. */
  reasons(): NotReady[];
  /** Reasons start-up is not complete; empty once it is (and from then on). */
  startupPending(): NotReady[];
  /** Extra facts for the /readyz body (storage mode, buffered rows). */
  detail(): Record<string, unknown>;
}

export interface Liveness {
  /** LIVEZ_MAX_EVENT_LOOP_BLOCK_MS. */
  readonly maxBlockMs: number;
  /** The event-loop block to report now, if any. */
  blocked(): LoopBlocked | undefined;
}

export interface SidecarDeps {
  readonly registry: Registry;
  readonly readiness: Readiness;
  readonly liveness: Liveness;
}

/**
 * - `GET /livez`: 200 `{"live":true}`; 503 `{"live":false,"reasons":["event_loop_blocked"],…}`
 *   only while the event loop is (or just was) blocked past LIVEZ_MAX_EVENT_LOOP_BLOCK_MS.
 * - `GET /readyz`: 200 `{"ready":true,"reasons":[],…}`, or 503 `{"ready":false,"reasons":[codes],
 *   "details":{code: text},…}` with the fields of `readiness.detail()`.
 * - `GET /startupz`: 503 `{"started":false,"reasons":[…]}` until migrations are applied and the
 *   subscription was active once; then 200 `{"started":true}` for the life of the process.
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
      const blocked = this.#deps.liveness.blocked();
      const body = blocked
        ? {
            live: false,
            reasons: ['event_loop_blocked'],
            eventLoopBlockedMs: Math.round(blocked.blockedMs),
            ongoing: blocked.ongoing,
            maxEventLoopBlockMs: this.#deps.liveness.maxBlockMs,
          }
        : { live: true };
      json(res, blocked ? 503 : 200, body);
    } else if (url === '/readyz') {
      const reasons = this.#deps.readiness.reasons();
      json(res, reasons.length === 0 ? 200 : 503, { ready: reasons.length === 0, ...reasonsBody(reasons), ...this.#deps.readiness.detail() });
    } else if (url === '/startupz') {
      const pending = this.#deps.readiness.startupPending();
      json(res, pending.length === 0 ? 200 : 503, { started: pending.length === 0, ...reasonsBody(pending) });
    } else if (url === '/metrics') {
      const text = await this.#deps.registry.metrics();
      res.writeHead(200, { 'content-type': this.#deps.registry.contentType }).end(text);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /livez, /readyz, /startupz, /metrics\n');
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

function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' }).end(text);
}
