// A sentinel password in DATABASE_URL and MQTT_PASSWORD must appear nowhere a person or a
// scraper can read: stdout and stderr, /metrics, /readyz, /startupz, rejected_messages.detail.
// Fault states: the database down, a bad URL, a TLS failure (a broker refusal is in
// security-refusal.test.ts). The probes also keep internal addresses to themselves.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { testCa } from '../support/certs.ts';
import { freePort, freshDatabase, PrivateMosquitto, query, readyz, startService, Teardown, waitFor } from '../support/harness.ts';
import { identities } from '../support/identity.ts';

const t = new Teardown();
afterAll(() => t.run());
const SENTINEL = 'S3cr3t-pw%23x';
const LEAK = /S3cr3t/;

async function probes(port: number): Promise<Record<string, string>> {
  const get = async (p: string) => (await fetch(`http://127.0.0.1:${port}${p}`)).text();
  return { metrics: await get('/metrics'), readyz: await get('/readyz'), startupz: await get('/startupz') };
}

describe('the sentinel password appears nowhere', () => {
  it('database down: probes name the reason without the password or the address; the log lines carry no password', async () => {
    const port = await freePort();
    const broker = new PrivateMosquitto();
    await broker.start();
    t.add(() => broker.destroy());
    const svc = await startService(
      t,
      {
        DATABASE_URL: `postgres://postgres:${SENTINEL}@127.0.0.1:${port}/esp`,
        MQTT_URL: broker.url,
        MQTT_PASSWORD: SENTINEL,
        DB_CONNECT_TIMEOUT_MS: '500',
        RETRY_MAX_DELAY_MS: '200',
      },
      { waitReady: false },
    );
    const body = await waitFor(
      'database reason in /readyz',
      async () => {
        const r = await readyz(svc.httpPort);
        return r.body.reasons.includes('database_unreachable') ? JSON.stringify(r.body) : undefined;
      },
      20_000,
      100,
    );
    await waitFor('the outage logged', () => svc.output().includes('"event":"database_unavailable"'), 10_000);
    const captured = { ...(await probes(svc.httpPort)), output: svc.output() };
    expect(
      Object.entries(captured)
        .filter(([, text]) => LEAK.test(text))
        .map(([where]) => where),
    ).toEqual([]);
    expect(body).not.toContain(`127.0.0.1:${port}`);
    expect(body).toContain('ECONNREFUSED');
  });

  it('a bad URL: exit 2 with a message that repeats neither the URL nor the password', async () => {
    const svc = await startService(t, { DATABASE_URL: `postgres://postgres:S3cr3t-pw#x@127.0.0.1:5432/esp`, MQTT_PASSWORD: SENTINEL }, { waitReady: false });
    expect(await svc.exited).toBe(2);
    expect(svc.output()).toContain('DATABASE_URL');
    expect(svc.output()).not.toMatch(LEAK);
  });

  it('a TLS failure (a broker certificate from a CA the service does not trust): /readyz says tls and the code; nothing leaks, and the rejects table holds no secret', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'esp-ca-'));
    t.add(() => rmSync(dir, { recursive: true, force: true }));
    const ca = testCa(dir);
    const ids = await identities(t, []);
    const broker = new PrivateMosquitto({
      auth: { passwordFile: ids.passwordFile, tls: { certFile: ca.serverCertFile, keyFile: ca.serverKeyFile, caFile: ca.caFile } },
    });
    await broker.start();
    t.add(() => broker.destroy());
    const databaseUrl = await freshDatabase(t);
    const withPassword = new URL(databaseUrl);
    withPassword.password = SENTINEL;
    const svc = await startService(
      t,
      { DATABASE_URL: withPassword.toString(), MQTT_URL: `mqtts://localhost:${broker.tlsPort}`, MQTT_USERNAME: 'esp-ingest', MQTT_PASSWORD: SENTINEL },
      { waitReady: false },
    );
    const detail = await waitFor(
      'tls reason in /readyz',
      async () => {
        const r = await readyz(svc.httpPort);
        const d = (r.body.details as Record<string, string> | undefined)?.mqtt_subscription_inactive;
        return d && /tls: /.test(d) ? d : undefined;
      },
      20_000,
      100,
    );
    const captured = { ...(await probes(svc.httpPort)), output: svc.output() };
    expect(
      Object.entries(captured)
        .filter(([, text]) => LEAK.test(text))
        .map(([where]) => where),
    ).toEqual([]);
    expect(detail).toMatch(/tls: (SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)/);
    expect(detail).not.toMatch(/127\.0\.0\.1|localhost:/);
    const rejected = await query<{ n: number }>(databaseUrl, `SELECT count(*)::int AS n FROM rejected_messages WHERE detail LIKE '%S3cr3t%'`);
    expect(rejected[0]!.n).toBe(0);
  });
});
