// Metrics endpoint integrity, label cardinality and escaping: per-well freshness is the only
// per-well label, capped by METRICS_WELLS_MAX, so the scrape does not grow with the number of
// wells; well ids holding `"` and `\` are escaped and the scrape stays valid for promtool. (A
// newline cannot reach us in a topic: brokers refuse control characters in topic names
// [MQTT-1.5.4-1], and no WELL_ID_CHARS may allow it.) Sources: wg-easy #2699 (a
// quote in a label value made the whole scrape unparsable), prom-client #741 (every label
// combination is kept forever).
import { spawnSync } from 'node:child_process';
import type mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import { privateMosquitto, query, startInProcessWithPublisher, Teardown, waitFor } from '../support/harness.ts';

const t = new Teardown();
afterAll(() => t.run());

const WELLS_MAX = 20;
const MANY_WELLS = 3000;
let app: App;
let databaseUrl: string;
let prefix: string;
let pub: mqtt.MqttClient;
let published = 0;

beforeAll(async () => {
  const mosquitto = await privateMosquitto(t);
  // The default well-id allow-list refuses `"` and `\`; a site may allow them (WELL_ID_CHARS), and
  // then the scrape must still escape them.
  ({ app, databaseUrl, prefix, pub } = await startInProcessWithPublisher(t, mosquitto.url, {
    METRICS_WELLS_MAX: String(WELLS_MAX),
    WELL_ID_CHARS: 'A-Za-z0-9._"\\\\-',
  }));
});

async function publishWells(ids: string[]): Promise<void> {
  const ts = new Date(Date.now() - 60_000).toISOString();
  await Promise.all(ids.map((id) => pub.publishAsync(`${prefix}/north/${id}/telemetry`, JSON.stringify({ ts, motor_current_a: 40 }), { qos: 1 })));
  published += ids.length;
}

async function stored(): Promise<number> {
  const [r] = await query<{ n: string }>(databaseUrl, 'SELECT count(*) AS n FROM esp_telemetry');
  return Number(r!.n);
}

async function scrape(): Promise<{ text: string; series: number; wellSeries: number }> {
  const text = await (await fetch(`http://127.0.0.1:${app.httpPort}/metrics`)).text();
  const lines = text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
  return { text, series: lines.length, wellSeries: lines.filter((l) => l.includes('well_id=')).length };
}

function promtoolProblems(text: string): { status: number | null; problems: string } {
  const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (check.error) throw new Error(`promtool could not run (apt-get install prometheus; .ci/run does): ${check.error.message}`);
  return { status: check.status, problems: `${check.stdout}${check.stderr}`.trim() };
}

describe('metrics cardinality and escaping', () => {
  it('escapes quotes and backslashes in well ids', async () => {
    await publishWells(['W-"quoted"', 'W-back\\slash', 'W-plain']);
    await waitFor('3 rows', async () => (await stored()) === 3);
    const { text } = await scrape();
    expect(text).toContain('well_id="W-\\"quoted\\""');
    expect(text).toContain('well_id="W-back\\\\slash"');
    expect(promtoolProblems(text)).toEqual({ status: 0, problems: '' });
  });

  it(`the scrape does not grow with the number of wells beyond METRICS_WELLS_MAX (${MANY_WELLS} wells)`, async () => {
    await publishWells(Array.from({ length: WELLS_MAX }, (_, i) => `W-first-${i}`));
    await waitFor('first wells stored', async () => (await stored()) === published);
    const before = await scrape();
    expect(before.wellSeries).toBe(WELLS_MAX);

    await publishWells(Array.from({ length: MANY_WELLS }, (_, i) => `W-many-${i}`));
    await waitFor(`all ${published} readings stored`, async () => (await stored()) === published, 60_000, 100);
    const after = await scrape();
    expect(after.wellSeries).toBe(WELLS_MAX);
    // Series that appeared are first observations of bounded labels (a retry code, a GC kind),
    // never one per well.
    const names = (text: string) =>
      new Set(
        text
          .split('\n')
          .filter((l) => l !== '' && !l.startsWith('#'))
          .map((l) => l.slice(0, l.lastIndexOf(' '))),
      );
    const beforeNames = names(before.text);
    const appeared = [...names(after.text)].filter((n) => !beforeNames.has(n));
    expect(appeared.filter((n) => n.includes('well_id='))).toEqual([]);
    expect(after.text).toMatch(new RegExp(`^esp_ingest_wells_tracked ${WELLS_MAX}$`, 'm'));
    expect(after.text).toMatch(new RegExp(`^esp_ingest_untracked_well_readings_total ${published - WELLS_MAX}$`, 'm'));
    expect(promtoolProblems(after.text)).toEqual({ status: 0, problems: '' });
    console.log(
      `[figure] metrics cardinality: ${published} wells → ${after.series} series (${before.series} before), ${after.wellSeries} freshness series, ${Buffer.byteLength(after.text)} bytes`,
    );
  });
});
