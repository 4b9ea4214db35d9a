// The metrics as Prometheus sees them: a live scrape of the in-process service (private
// Mosquitto, real TimescaleDB) passes `promtool check metrics`; a private Prometheus scraping it
// every second ends up with the same committed and rejected totals as the database, one
// freshness series per well, and the alert rules of ops/prometheus/alerts.yml evaluating cleanly.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import type mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import { privateMosquitto, query, ROOT, startInProcessWithPublisher, Teardown, waitFor } from '../support/harness.ts';
import { PrivatePrometheus } from '../support/prometheus.ts';

const t = new Teardown();
afterAll(() => t.run());

const READINGS_PER_MESSAGE = 10;
let app: App;
let databaseUrl: string;
let prefix: string;
let pub: mqtt.MqttClient;
/** Device time of the next reading, ms: one second apart, an hour ago, never repeated. */
let nextTsMs = Date.now() - 3_600_000;
/** Totals published so far, by construction: rows new to esp_telemetry, rows of rejected_messages. */
const sent = { rows: 0, rejects: 0 };

beforeAll(async () => {
  const mosquitto = await privateMosquitto(t);
  ({ app, databaseUrl, prefix, pub } = await startInProcessWithPublisher(t, mosquitto.url));
});

/** `messages` messages of READINGS_PER_MESSAGE new readings to each of `wells` wells, QoS 1. */
async function publishReadings(wells: number, messages: number): Promise<void> {
  const sends: Promise<unknown>[] = [];
  for (let m = 0; m < messages; m++) {
    for (let w = 1; w <= wells; w++) {
      const readings = Array.from({ length: READINGS_PER_MESSAGE }, (_, i) => ({
        ts: new Date(nextTsMs + i * 1000).toISOString(),
        intake_pressure_kpa: 8000 + i,
        motor_current_a: 40,
      }));
      sends.push(pub.publishAsync(`${prefix}/north/W-${w}/telemetry`, JSON.stringify(readings), { qos: 1 }));
    }
    nextTsMs += READINGS_PER_MESSAGE * 1000;
  }
  await Promise.all(sends);
  sent.rows += wells * messages * READINGS_PER_MESSAGE;
}

/** Three rejections of two reasons, one good reading beside them, and a redelivered duplicate. */
async function publishMixed(): Promise<void> {
  const topic = `${prefix}/north/W-1/telemetry`;
  const good = { ts: new Date(nextTsMs).toISOString(), motor_current_a: 41 };
  nextTsMs += 1000;
  await pub.publishAsync(topic, 'not json', { qos: 1 });
  await pub.publishAsync(topic, JSON.stringify([good, { ts: good.ts, motor_current_a: 5000 }]), { qos: 1 });
  await pub.publishAsync(topic, '{"ts":"yesterday","motor_current_a":1}', { qos: 1 });
  await pub.publishAsync(topic, JSON.stringify(good), { qos: 1 });
  sent.rows += 1;
  sent.rejects += 3;
}

async function databaseTotals(): Promise<{ rows: number; rejects: number; wells: number }> {
  const [r] = await query<{ rows: string; rejects: string; wells: string }>(
    databaseUrl,
    'SELECT (SELECT count(*) FROM esp_telemetry) AS rows, (SELECT count(*) FROM rejected_messages) AS rejects, (SELECT count(DISTINCT well_id) FROM esp_telemetry) AS wells',
  );
  return { rows: Number(r!.rows), rejects: Number(r!.rejects), wells: Number(r!.wells) };
}

async function settled(): Promise<{ rows: number; rejects: number; wells: number }> {
  return waitFor(
    `database holds ${sent.rows} rows and ${sent.rejects} rejections`,
    async () => {
      const db = await databaseTotals();
      return db.rows === sent.rows && db.rejects === sent.rejects ? db : undefined;
    },
    60_000,
    100,
  );
}

describe('metrics seen by Prometheus', () => {
  it('a live scrape passes promtool check metrics', async () => {
    await publishReadings(3, 5);
    await publishMixed();
    await settled();
    const res = await fetch(`http://127.0.0.1:${app.httpPort}/metrics`);
    const text = await res.text();
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    if (check.error) throw new Error(`promtool could not run (apt-get install prometheus; .ci/run does): ${check.error.message}`);
    expect({ status: check.status, problems: `${check.stdout}${check.stderr}`.trim() }).toEqual({ status: 0, problems: '' });

    // The scrape carries what the rules read: one freshness series per well, readiness, rejections by reason.
    for (const w of [1, 2, 3]) expect(text).toMatch(new RegExp(`^esp_ingest_well_last_reading_age_seconds\\{well_id="W-${w}"\\} \\d`, 'm'));
    expect(text).toMatch(/^esp_ingest_ready 1$/m);
    expect(text).toMatch(/^esp_ingest_wells_tracked 3$/m);
    expect(text).toMatch(/^esp_ingest_readings_rejected_total\{reason="invalid_json"\} 1$/m);
    expect(text).toMatch(/^esp_ingest_readings_rejected_total\{reason="invalid_ts"\} 1$/m);
    expect(text).toMatch(/^esp_ingest_readings_rejected_total\{reason="out_of_range"\} 1$/m);
    const series = text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length;
    const families = text.split('\n').filter((l) => l.startsWith('# TYPE ')).length;
    console.log(`[figure] /metrics scrape: ${Buffer.byteLength(text)} bytes, ${families} metric families, ${series} series (3 wells)`);
  });

  it('Prometheus holds the totals the database holds, and the alert rules evaluate', async () => {
    const prom = new PrivatePrometheus();
    t.add(() => prom.destroy());
    await prom.start({ targets: [`127.0.0.1:${app.httpPort}`], ruleFiles: [path.join(ROOT, 'ops/prometheus/alerts.yml')] });
    await waitFor('esp-ingest target up', async () => (await prom.query('up{job="esp-ingest"}'))[0]?.value === 1, 30_000, 200);

    await publishReadings(5, 40);
    await publishMixed();
    const db = await settled();
    const dbSettledAt = performance.now();
    const totals = async () => {
      const [committed] = await prom.query('esp_ingest_readings_committed_total{job="esp-ingest"}');
      const [rejected] = await prom.query('sum(esp_ingest_readings_rejected_total{job="esp-ingest"})');
      return { rows: committed?.value, rejects: rejected?.value };
    };
    await waitFor(
      'Prometheus totals equal the database',
      async () => {
        const p = await totals();
        return p.rows === db.rows && p.rejects === db.rejects;
      },
      30_000,
      100,
    );
    const convergedS = (performance.now() - dbSettledAt) / 1000;
    expect(await totals()).toEqual({ rows: db.rows, rejects: db.rejects });
    expect(db).toEqual({ rows: sent.rows, rejects: sent.rejects, wells: 5 });
    // Duplicates were counted, not stored.
    expect((await prom.query('esp_ingest_readings_duplicate_total{job="esp-ingest"}'))[0]?.value).toBe(2);

    // One freshness series per well stored; the service ready; every rule loaded and evaluated.
    const ages = await prom.query('esp_ingest_well_last_reading_age_seconds{job="esp-ingest"}');
    expect(ages.map((s) => s.metric.well_id).sort()).toEqual(['W-1', 'W-2', 'W-3', 'W-4', 'W-5']);
    expect((await prom.query('esp_ingest_ready{job="esp-ingest"}'))[0]?.value).toBe(1);
    type Rule = { name: string; type: string; health: string; lastError?: string };
    const rules = await waitFor(
      'every alert rule evaluated',
      async () => {
        const data = await prom.api<{ groups: { rules: Rule[] }[] }>('rules');
        const all = data.groups.flatMap((g) => g.rules);
        return all.length > 0 && all.every((r) => r.health !== 'unknown') ? all : undefined;
      },
      30_000,
      200,
    );
    expect(rules.filter((r) => r.health !== 'ok' || r.type !== 'alerting')).toEqual([]);
    expect(rules.map((r) => r.name)).toEqual(
      expect.arrayContaining([
        'EspIngestDown',
        'EspIngestStalled',
        'EspIngestCommitLagHigh',
        'EspIngestRejectRateHigh',
        'EspIngestDatabaseDown',
        'EspIngestWellSilent',
      ]),
    );
    // The readings are an hour old by their device time: the commit-lag rule sees it on the real
    // histogram (pending: its `for:` is 10 minutes). Nothing fires.
    const alerts = async () => (await prom.api<{ alerts: { labels: Record<string, string>; state: string }[] }>('alerts')).alerts;
    await waitFor(
      'EspIngestCommitLagHigh pending',
      async () => (await alerts()).some((a) => a.labels.alertname === 'EspIngestCommitLagHigh' && a.state === 'pending'),
      30_000,
      200,
    );
    expect((await alerts()).filter((a) => a.state === 'firing')).toEqual([]);

    const tsdb = await prom.api<{ headStats: { numSeries: number } }>('status/tsdb');
    const [samples] = await prom.query('scrape_samples_scraped{job="esp-ingest"}');
    console.log(
      `[figure] Prometheus (1 s scrape) equal to the database ${convergedS.toFixed(2)} s after the last commit; ${db.rows} rows, ${db.rejects} rejections; ${samples?.value} samples per scrape (5 wells); ${tsdb.headStats.numSeries} series in its head; ${rules.length} rules healthy`,
    );
  });
});
