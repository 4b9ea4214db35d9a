// Fault: graceful shutdown, SIGTERM to the service while wells publish (a drain that lost or
// replayed the last batch: sql-flow PR #172, #182). (1) Mid-batch, database healthy: intake stops,
// the buffered batch commits, its PUBACKs go out, exit 0 before SHUTDOWN_DEADLINE_MS; the next
// instance gets no redelivery of what was committed. (2) Database blocked by a lock: the deadline
// passes, exit non-zero at the deadline (not when the blocked write would have timed out), nothing
// uncommitted was PUBACKed, so the broker redelivers it to the next instance and it is stored once.
// (3) The same with a hung server (SIGSTOP): no write, connect or pooled connection may hold the
// exit past the deadline.
import { afterAll, describe, expect, it } from 'vitest';
import {
  freshDatabase,
  lockTelemetryTable,
  metric,
  privateMosquitto,
  query,
  type ServiceProcess,
  startService,
  Teardown,
  waitFor,
} from '../support/harness.ts';
import { privatePostgres } from '../support/private-postgres.ts';
import { expectStoredOnce, peakRssMb, RSS_BOUND_MB, steadyLoad, WellLoad } from '../support/well-load.ts';

/** How long the server has hung when SIGTERM arrives (the hung-server case, (3) above). */
const HUNG_BEFORE_SIGTERM_MS = 6_000;

const t = new Teardown();
afterAll(() => t.run());

/** SIGTERM; resolves with the exit code and the seconds it took. */
async function terminate(svc: ServiceProcess): Promise<{ code: number | null; seconds: number }> {
  const sent = performance.now();
  svc.proc.kill('SIGTERM');
  const code = await svc.exited;
  return { code, seconds: (performance.now() - sent) / 1000 };
}

describe('SIGTERM under load', () => {
  it('mid-batch: commits the buffered rows, PUBACKs them, exits 0 before the deadline', async () => {
    const deadlineMs = 10_000;
    const broker = await privateMosquitto(t);
    const databaseUrl = await freshDatabase(t);
    const base = { DATABASE_URL: databaseUrl, MQTT_URL: broker.url, MQTT_CLIENT_ID: 'esp-ingest-sigterm', SHUTDOWN_DEADLINE_MS: String(deadlineMs) };
    // A flush interval far beyond the test: rows stay buffered until the shutdown flushes them.
    const svc = await startService(t, { ...base, BATCH_FLUSH_INTERVAL_MS: '600000', BATCH_MAX_ROWS: '100000', BUFFER_MAX_ROWS: '100000' });
    const load = new WellLoad({ url: broker.url, wells: ['W-1', 'W-2', 'W-3'], ratePerWellHz: 50 });
    await load.start();
    t.add(() => load.stop(1_000).catch(() => undefined));
    await waitFor('300 rows buffered', async () => (await metric(svc.httpPort, 'esp_ingest_rows_buffered')) >= 300, 20_000);
    expect(await metric(svc.httpPort, 'esp_ingest_readings_committed_total')).toBe(0);
    const rss = peakRssMb(svc.proc.pid!);

    const stop = await terminate(svc);
    expect(stop.code).toBe(0);
    expect(stop.seconds).toBeLessThan(deadlineMs / 1000);
    expect(svc.output()).toMatch(/"clean":true[^\n]*"msg":"stopped"/);
    const [{ n: committed } = { n: 0 }] = await query<{ n: number }>(databaseUrl, 'SELECT count(*)::int AS n FROM esp_telemetry');
    expect(committed).toBeGreaterThanOrEqual(300);

    // The next instance: what was committed was PUBACKed, so nothing of it comes back.
    const next = await startService(t, { ...base, BATCH_FLUSH_INTERVAL_MS: '100' });
    const sent = await expectStoredOnce(load, databaseUrl);
    expect(await metric(next.httpPort, 'esp_ingest_readings_duplicate_total')).toBe(0);
    expect(rss).toBeLessThan(RSS_BOUND_MB);
    console.log(
      `SIGTERM mid-batch: exit 0 after ${stop.seconds.toFixed(2)} s (deadline ${deadlineMs / 1000} s) with ${committed} rows committed in the last flush; ${sent.published} readings stored once in all; peak RSS ${rss.toFixed(0)} MiB`,
    );
    expect((await terminate(next)).code).toBe(0);
  });

  it('database blocked: exits non-zero at the deadline; nothing uncommitted is lost, the next instance stores it', async () => {
    const deadlineMs = 1_000;
    const broker = await privateMosquitto(t);
    const databaseUrl = await freshDatabase(t);
    // lock_timeout (default 10 s) is far longer than the shutdown deadline: the write in progress
    // when SIGTERM arrives is still waiting on the lock when the deadline passes.
    const base = {
      DATABASE_URL: databaseUrl,
      MQTT_URL: broker.url,
      MQTT_CLIENT_ID: 'esp-ingest-sigterm-blocked',
      BATCH_FLUSH_INTERVAL_MS: '100',
      SHUTDOWN_DEADLINE_MS: String(deadlineMs),
    };
    const svc = await startService(t, base);
    const locker = await lockTelemetryTable(t, databaseUrl);
    const load = new WellLoad({ url: broker.url, wells: ['W-1', 'W-2', 'W-3'], ratePerWellHz: 50 });
    await load.start();
    t.add(() => load.stop(1_000).catch(() => undefined));
    await waitFor('300 messages held unacknowledged', async () => (await metric(svc.httpPort, 'esp_ingest_unacknowledged_messages')) >= 300, 20_000);
    expect(await metric(svc.httpPort, 'esp_ingest_messages_acknowledged_total')).toBe(0);

    const stop = await terminate(svc);
    expect(stop.code).not.toBe(0);
    expect(stop.seconds).toBeLessThan(deadlineMs / 1000 + 2);
    expect(svc.output()).toContain('shutdown deadline passed');

    await locker.release();
    const released = performance.now();
    const next = await startService(t, { ...base, SHUTDOWN_DEADLINE_MS: '10000' });
    const sent = await expectStoredOnce(load, databaseUrl);
    const recoveredS = (performance.now() - released) / 1000;
    const rss = peakRssMb(next.proc.pid!);
    expect(rss).toBeLessThan(RSS_BOUND_MB);
    console.log(
      `SIGTERM with the database blocked: exit ${stop.code} after ${stop.seconds.toFixed(2)} s (deadline ${deadlineMs / 1000} s); ` +
        `next instance stored all ${sent.published} readings once ${recoveredS.toFixed(2)} s after the lock was released; peak RSS ${rss.toFixed(0)} MiB`,
    );
    expect((await terminate(next)).code).toBe(0);
  });

  it('database hung (every server process SIGSTOPped): exits non-zero at the deadline; the next instance stores everything', async () => {
    const deadlineMs = 2_000;
    const db = await privatePostgres(t);
    const broker = await privateMosquitto(t);
    // Default statement timeout (30 s; the writer's own deadline is twice that): only the shutdown
    // deadline can end the write in progress, and no pooled connection may hold the exit.
    const base = {
      DATABASE_URL: db.url,
      MQTT_URL: broker.url,
      MQTT_CLIENT_ID: 'esp-ingest-sigterm-hung',
      BATCH_FLUSH_INTERVAL_MS: '100',
      SHUTDOWN_DEADLINE_MS: String(deadlineMs),
    };
    const svc = await startService(t, base);
    const load = await steadyLoad(t, broker.url, svc.httpPort);
    db.freeze();
    const frozen = performance.now();
    t.add(() => db.thaw());
    await waitFor('300 messages held unacknowledged', async () => (await metric(svc.httpPort, 'esp_ingest_unacknowledged_messages')) >= 300, 20_000);
    // Hung longer than the 5 s reachability probe period, so a probe is stuck on the server too.
    await new Promise((r) => setTimeout(r, HUNG_BEFORE_SIGTERM_MS - (performance.now() - frozen)));

    const stop = await terminate(svc);
    expect(stop.code).not.toBe(0);
    expect(stop.seconds).toBeLessThan(deadlineMs / 1000 + 2);

    db.thaw();
    const thawed = performance.now();
    const next = await startService(t, { ...base, SHUTDOWN_DEADLINE_MS: '10000' });
    const sent = await expectStoredOnce(load, db.url);
    const recoveredS = (performance.now() - thawed) / 1000;
    const rss = peakRssMb(next.proc.pid!);
    expect(rss).toBeLessThan(RSS_BOUND_MB);
    console.log(
      `SIGTERM with the database hung: exit ${stop.code} after ${stop.seconds.toFixed(2)} s (deadline ${deadlineMs / 1000} s); ` +
        `next instance stored all ${sent.published} readings once ${recoveredS.toFixed(2)} s after the server resumed; peak RSS ${rss.toFixed(0)} MiB`,
    );
    expect((await terminate(next)).code).toBe(0);
  });
});
