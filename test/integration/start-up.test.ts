// Start-up that does not complete: a failed start stops what had already started (the sidecar,
// the pool, the reachability probe), and a shutdown signal during the wait for the database ends
// the wait at once instead of sleeping out the backoff.
import net from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { startApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config/config.ts';
import { EspError } from '../../src/errors.ts';
import { freePort, freshDatabase, query, Teardown, waitFor } from '../support/harness.ts';

const t = new Teardown();
afterEach(() => t.run());

/** True when nothing accepts connections on 127.0.0.1:`port`. */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

/** A TCP server on a free port that accepts and at once closes each connection, counting them. */
async function closingServer(): Promise<{ port: number; connections: () => number }> {
  let connections = 0;
  const server = net.createServer((socket) => {
    connections++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.add(() => new Promise((resolve) => server.close(resolve)));
  return { port: (server.address() as net.AddressInfo).port, connections: () => connections };
}

describe('a start that fails or is aborted', () => {
  it('embedded broker port taken: startApp rejects, and the sidecar and the database connections it had opened are closed', async () => {
    const databaseUrl = await freshDatabase(t);
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    t.add(() => new Promise((resolve) => taken.close(resolve)));
    const httpPort = await freePort();
    const config = loadConfig({
      DATABASE_URL: databaseUrl,
      BROKER: 'embedded',
      BROKER_PORT: String((taken.address() as net.AddressInfo).port),
      HTTP_PORT: String(httpPort),
      HTTP_HOST: '127.0.0.1',
    });

    await expect(startApp({ config, log: pino({ level: 'silent' }) })).rejects.toMatchObject({ code: 'EADDRINUSE' });

    expect(await refused(httpPort)).toBe(true);
    const name = new URL(databaseUrl).pathname.slice(1);
    await waitFor(
      'no esp-ingest connection left',
      async () =>
        (await query(databaseUrl, `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND application_name LIKE 'esp-ingest%'`, [name]))[0]
          ?.n === 0,
    );
  });

  it('aborted while the database is unreachable: rejects with ESP_ABORTED before the pending backoff ends, and retries no more', async () => {
    const db = await closingServer();
    const httpPort = await freePort();
    const config = loadConfig({
      DATABASE_URL: `postgres://esp@127.0.0.1:${db.port}/esp`,
      RETRY_MAX_DELAY_MS: '60000',
      HTTP_PORT: String(httpPort),
      HTTP_HOST: '127.0.0.1',
    });
    const abort = new AbortController();
    const starting = startApp({ config, log: pino({ level: 'silent' }), signal: abort.signal });
    const outcome = starting.then(
      () => undefined,
      (err: unknown) => err,
    );

    // After 5 failed attempts the next backoff is at least 800 ms (100 ms · 2^4, jittered to 50–100 %).
    await waitFor('5 connection attempts', () => db.connections() >= 5);
    const attempts = db.connections();
    const abortedAt = performance.now();
    abort.abort();
    const err = await outcome;
    const waitedMs = performance.now() - abortedAt;

    expect(err).toBeInstanceOf(EspError);
    expect((err as EspError).code).toBe('ESP_ABORTED');
    expect(waitedMs).toBeLessThan(800);
    expect(db.connections()).toBeLessThanOrEqual(attempts + 1);
    expect(await refused(httpPort)).toBe(true);
  });
});
