// Fault: the database stalls (COPY hanging on locks around compression: timescaledb #5986;
// keepalive lost while the consumer waits: MQTT.js #1935). The server hangs instead of refusing,
// under load. (1) Another session holds ACCESS EXCLUSIVE on esp_telemetry: every write waits
// lock_timeout, fails 55P03 and is retried. (2) Every server process is SIGSTOPped (what `docker
// pause` does): nothing answers, so only the client side can bound the wait (connect timeout, the
// writer's whole-transaction deadline); the stuck connection is discarded. Either way ingest
// resumes when the stall clears, the MQTT connection never drops, and every reading is stored once.
import { afterAll, describe, expect, it } from 'vitest';
import {
  freshDatabase,
  lockTelemetryTable,
  metric,
  privateMosquitto,
  query,
  readyz,
  type ServiceProcess,
  startService,
  Teardown,
  waitFor,
} from '../support/harness.ts';
import { privatePostgres } from '../support/private-postgres.ts';
import { expectStoredOnce, peakRssMb, RSS_BOUND_MB, steadyLoad, type WellLoad } from '../support/well-load.ts';

/** How long the database hangs. */
const STALL_MS = 5_000;

const t = new Teardown();
afterAll(() => t.run());

/** Broker, service on `databaseUrl` with short timeouts, and three wells at 50 Hz each. */
async function underLoad(databaseUrl: string, clientId: string): Promise<{ svc: ServiceProcess; load: WellLoad }> {
  const broker = await privateMosquitto(t);
  const svc = await startService(t, {
    DATABASE_URL: databaseUrl,
    MQTT_URL: broker.url,
    MQTT_CLIENT_ID: clientId,
    BATCH_FLUSH_INTERVAL_MS: '100',
    DB_LOCK_TIMEOUT_MS: '300',
    DB_STATEMENT_TIMEOUT_MS: '1000',
    DB_CONNECT_TIMEOUT_MS: '1000',
    RETRY_MAX_DELAY_MS: '500',
  });
  const load = await steadyLoad(t, broker.url, svc.httpPort);
  return { svc, load };
}

/** After the stall: ready again, every reading stored once, no MQTT reconnect, bounded memory. */
async function recovers(what: string, svc: ServiceProcess, load: WellLoad, databaseUrl: string, clearedAt: number): Promise<void> {
  await waitFor('ready again', async () => (await readyz(svc.httpPort)).status === 200, 20_000, 100);
  const readyAfterS = (performance.now() - clearedAt) / 1000;
  const sent = await expectStoredOnce(load, databaseUrl);
  const drainedAfterS = (performance.now() - clearedAt) / 1000;
  // A stalled database never starves the MQTT keepalive (MQTT.js #1935).
  expect(await metric(svc.httpPort, 'esp_ingest_mqtt_reconnects_total')).toBe(0);
  // No connection left stuck in an aborted transaction (pg-copy-streams #113, porsager/postgres #1173).
  await waitFor(
    'no esp-ingest session idle in transaction',
    async () => {
      const [r] = await query<{ n: number }>(
        databaseUrl,
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'esp-ingest' AND state LIKE 'idle in transaction%'`,
      );
      return r!.n === 0;
    },
    10_000,
  );
  const rss = peakRssMb(svc.proc.pid!);
  expect(rss).toBeLessThan(RSS_BOUND_MB);
  console.log(
    `${what}: ${sent.published} readings; ${await metric(svc.httpPort, 'esp_ingest_flush_retries_total')} retried flushes; ` +
      `ready ${readyAfterS.toFixed(2)} s and all stored ${drainedAfterS.toFixed(2)} s after the stall cleared; peak RSS ${rss.toFixed(0)} MiB`,
  );
  svc.proc.kill('SIGTERM');
  expect(await svc.exited).toBe(0);
}

describe('database stall under load', () => {
  it(`an exclusive lock held ${STALL_MS / 1000} s: writes time out (55P03), are retried, ingest resumes`, async () => {
    const databaseUrl = await freshDatabase(t);
    const { svc, load } = await underLoad(databaseUrl, 'esp-ingest-stall-lock');
    const locker = await lockTelemetryTable(t, databaseUrl);
    const locked = performance.now();
    // Each wait is bounded by lock_timeout, so the retries keep coming while the lock is held.
    await waitFor('three lock timeouts', async () => (await metric(svc.httpPort, 'esp_ingest_flush_retries_total{code="55P03"}')) >= 3, STALL_MS);
    await new Promise((r) => setTimeout(r, STALL_MS - (performance.now() - locked)));
    expect(await metric(svc.httpPort, 'esp_ingest_unacknowledged_messages')).toBeGreaterThan(0);
    await locker.release();
    await recovers('exclusive lock', svc, load, databaseUrl, performance.now());
  });

  it(`every server process SIGSTOPped ${STALL_MS / 1000} s: client-side deadlines discard the stuck connection, ingest resumes`, async () => {
    const db = await privatePostgres(t);
    const { svc, load } = await underLoad(db.url, 'esp-ingest-stall-freeze');
    db.freeze();
    t.add(() => db.thaw());
    const frozen = performance.now();
    // Reachability checks unanswered within 1 s (two in a row) or failed writes (three over 2 s) say so.
    const reason = await waitFor(
      '/readyz 503 naming the database',
      async () => {
        const r = await readyz(svc.httpPort);
        return r.status === 503 ? r.body.reasons.find((x) => x.startsWith('database_')) : undefined;
      },
      STALL_MS,
    );
    console.log(`frozen database: not ready after ${((performance.now() - frozen) / 1000).toFixed(2)} s ("${reason}")`);
    await new Promise((r) => setTimeout(r, STALL_MS - (performance.now() - frozen)));
    expect(svc.proc.exitCode).toBeNull();
    db.thaw();
    await recovers('frozen database', svc, load, db.url, performance.now());
  });
});
