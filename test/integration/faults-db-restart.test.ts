// Fault: the database restarts: the PostgreSQL server stops (pg_ctl stop -m fast) under load and
// comes back after OUTAGE_MS. Idle pooled connections die with 57P01 and must not crash the process
// (node-postgres #1324, #2439); /readyz says 503 naming the database meanwhile; afterwards every
// reading the wells published is stored exactly once.
import { afterAll, expect, it } from 'vitest';
import { metric, privateMosquitto, readyz, startService, Teardown, waitFor } from '../support/harness.ts';
import { privatePostgres } from '../support/private-postgres.ts';
import { expectStoredOnce, peakRssMb, RSS_BOUND_MB, steadyLoad } from '../support/well-load.ts';

/** How long the server stays down (the 30 s, shortened to keep CI time down). */
const OUTAGE_MS = 10_000;

const t = new Teardown();
afterAll(() => t.run());

it(`survives a ${OUTAGE_MS / 1000} s database restart under load and stores every reading once`, async () => {
  const db = await privatePostgres(t);
  const broker = await privateMosquitto(t);
  const svc = await startService(t, {
    DATABASE_URL: db.url,
    MQTT_URL: broker.url,
    MQTT_CLIENT_ID: 'esp-ingest-db-restart',
    BATCH_FLUSH_INTERVAL_MS: '100',
    DB_CONNECT_TIMEOUT_MS: '1000',
    RETRY_MAX_DELAY_MS: '1000',
  });
  const load = await steadyLoad(t, broker.url, svc.httpPort);

  await db.stop();
  const down = performance.now();
  // Two failed reachability checks (one a second) make it database_unreachable; three failed
  // writes over 2 s, database_writes_failing (src/lifecycle/readiness.ts).
  await waitFor('/readyz 503', async () => (await readyz(svc.httpPort)).status === 503, 5_000);
  const notReadyAfterS = (performance.now() - down) / 1000;
  const reason = await waitFor(
    '/readyz naming the database',
    async () => {
      const r = await readyz(svc.httpPort);
      return r.status === 503 ? r.body.reasons.find((x) => x === 'database_unreachable') : undefined;
    },
    OUTAGE_MS - 1_000,
  );
  const namedAfterS = (performance.now() - down) / 1000;
  // The outage itself is a timed fault, not a synchronisation.
  await new Promise((r) => setTimeout(r, OUTAGE_MS - (performance.now() - down)));
  expect(svc.proc.exitCode).toBeNull();
  const retriesDuringOutage = await metric(svc.httpPort, 'esp_ingest_flush_retries_total');

  await db.start();
  const up = performance.now();
  await waitFor('ready again', async () => (await readyz(svc.httpPort)).status === 200, 20_000, 100);
  const readyAfterS = (performance.now() - up) / 1000;
  const sent = await expectStoredOnce(load, db.url);
  const drainedAfterS = (performance.now() - up) / 1000;

  // Same process throughout: no crash on the dead idle connections.
  expect(svc.proc.exitCode).toBeNull();
  expect(svc.output()).not.toMatch(/uncaught|unhandled/i);
  expect(retriesDuringOutage).toBeGreaterThan(0);
  const rss = peakRssMb(svc.proc.pid!);
  expect(rss).toBeLessThan(RSS_BOUND_MB);
  console.log(
    `database restart: ${sent.published} readings; 503 after ${notReadyAfterS.toFixed(2)} s, naming the database after ${namedAfterS.toFixed(2)} s ("${reason}"); ` +
      `ready ${readyAfterS.toFixed(2)} s and all stored ${drainedAfterS.toFixed(2)} s after the server was back; ` +
      `${retriesDuringOutage} retried flushes, ${await metric(svc.httpPort, 'esp_ingest_database_idle_client_errors_total')} idle-client errors; peak RSS ${rss.toFixed(0)} MiB`,
  );
  expect(notReadyAfterS).toBeLessThan(5);
  expect(readyAfterS).toBeLessThan(10);
  svc.proc.kill('SIGTERM');
  expect(await svc.exited).toBe(0);
});
