// The rejects table (payload SHA-256 from the server) and the rejects command: list by reason;
// replay after a fix publishes each message once through the embedded broker to the in-process
// service, deletes its rows only after the PUBACK, and what is still bad comes back as a new
// rejection.

import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import { startEmbeddedBroker } from '../../src/broker/embedded-broker.ts';
import { loadConfig } from '../../src/config/config.ts';
import { formatTable, listRejects, replayRejects, takenBy } from '../../src/tools/rejects.ts';
import { freshDatabase, migratedDatabase, query, ROOT, startInProcess, Teardown, waitFor } from '../support/harness.ts';

const t = new Teardown();
afterAll(() => t.run());

function startServiceInProcess(databaseUrl: string, mqttUrl: string, prefix: string, env: Record<string, string>): Promise<App> {
  return startInProcess(t, prefix, { DATABASE_URL: databaseUrl, MQTT_URL: mqttUrl, MQTT_PROTOCOL_VERSION: '4', ...env });
}

describe('rejects command', () => {
  it('lists by reason, replays after a fix, deletes only what the service was seen to store', async () => {
    const broker = await startEmbeddedBroker(0);
    t.add(() => broker.close());
    const mqttUrl = `mqtt://127.0.0.1:${broker.port}`;
    const databaseUrl = await freshDatabase(t);
    const prefix = `r${Math.random().toString(36).slice(2, 10)}`;
    const topic = `${prefix}/north/W-1/telemetry`;

    // 1. A service that refuses unknown fields: two messages land in rejected_messages.
    const strict = await startServiceInProcess(databaseUrl, mqttUrl, prefix, { UNKNOWN_FIELDS: 'reject' });
    const pub = await mqtt.connectAsync(mqttUrl, { clientId: `pub-${prefix}`, clean: true });
    t.add(() => pub.endAsync());
    const fixable = '{"ts":"2024-05-01T00:00:00Z","motor_current_a":10,"sand_rate_g_s":1}';
    // One array message: reading 0 fixable, reading 1 still bad after the fix (out of range).
    const mixedFixable = '{"ts":"2024-05-01T00:00:01Z","motor_current_a":11,"fw":"2.1"}';
    const mixedBad = '{"ts":"2024-05-01T00:00:02Z","motor_current_a":5000}';
    const mixed = `[${mixedFixable},${mixedBad}]`;
    const other = '{"ts":"yesterday","motor_current_a":1}';
    for (const p of [fixable, mixed, other]) await pub.publishAsync(topic, p, { qos: 1 });
    await waitFor(
      '4 rejections',
      async () => Number((await query<{ n: string }>(databaseUrl, 'SELECT count(*) AS n FROM rejected_messages'))[0]!.n) === 4 || undefined,
    );
    await strict.stop();

    // The server computed each payload's SHA-256 (sql/002_rejects_sha256.sql).
    const sha = await query<{ reason: string; h: string }>(databaseUrl, "SELECT reason, encode(payload_sha256, 'hex') AS h FROM rejected_messages ORDER BY id");
    const hex = (s: string) => createHash('sha256').update(s).digest('hex');
    expect(sha).toEqual([
      { reason: 'unknown_field', h: hex(fixable) },
      // A refused element of an array keeps its own JSON, not the whole message.
      { reason: 'unknown_field', h: hex(mixedFixable) },
      { reason: 'out_of_range', h: hex(mixedBad) },
      { reason: 'invalid_ts', h: hex(other) },
    ]);

    const db = new pg.Client({ connectionString: databaseUrl });
    await db.connect();
    t.add(() => db.end());
    const listed = await listRejects(db, {});
    expect(listed.map((r) => [r.reason, r.count])).toEqual([
      ['unknown_field', 2],
      ['invalid_ts', 1],
      ['out_of_range', 1],
    ]);
    expect(formatTable(listed).split('\n')[0]).toMatch(/^reason\s+count\s+latest$/);
    expect((await listRejects(db, { reason: 'invalid_ts' })).map((r) => r.count)).toEqual([1]);
    expect(await listRejects(db, { since: new Date(Date.now() + 60_000) })).toEqual([]);

    // 2. Dry run: counts the messages it would publish, publishes and deletes nothing.
    expect(await replayRejects(db, pub, { reason: 'unknown_field', dryRun: true })).toEqual({ messages: 2, published: 0, rowsDeleted: 0, failed: [] });
    expect(Number((await db.query('SELECT count(*) AS n FROM rejected_messages')).rows[0].n)).toBe(4);

    // 3. The fix: the service keeps unknown fields. Replay the unknown_field messages.
    await startServiceInProcess(databaseUrl, mqttUrl, prefix, { UNKNOWN_FIELDS: 'keep' });
    const taken = takenBy(db, loadConfig({ DATABASE_URL: databaseUrl, MQTT_TOPIC: `${prefix}/{site}/{well_id}/telemetry`, UNKNOWN_FIELDS: 'keep' }));
    const r = await replayRejects(db, pub, { reason: 'unknown_field' }, taken);
    // Only the refused readings are republished; the still-bad element keeps its row.
    expect(r).toEqual({ messages: 2, published: 2, rowsDeleted: 2, failed: [] });
    await waitFor(
      'replayed readings stored',
      async () => Number((await query<{ n: string }>(databaseUrl, 'SELECT count(*) AS n FROM esp_telemetry'))[0]!.n) === 2 || undefined,
    );
    const stored = await query(databaseUrl, 'SELECT well_id, site, motor_current_a, extra FROM esp_telemetry ORDER BY ts');
    expect(stored).toEqual([
      { well_id: 'W-1', site: 'north', motor_current_a: 10, extra: { sand_rate_g_s: 1 } },
      { well_id: 'W-1', site: 'north', motor_current_a: 11, extra: { fw: '2.1' } },
    ]);
    const left = await query(databaseUrl, "SELECT reason, reading_index, topic, encode(payload_sha256, 'hex') AS h FROM rejected_messages ORDER BY id");
    expect(left).toEqual([
      { reason: 'out_of_range', reading_index: 1, topic, h: hex(mixedBad) },
      { reason: 'invalid_ts', reading_index: null, topic, h: hex(other) },
    ]);
  });

  it('the CLI prints the table and refuses a replay without --reason', async () => {
    const databaseUrl = await migratedDatabase(t);
    await query(
      databaseUrl,
      "INSERT INTO rejected_messages (received_at, topic, reason, detail, payload) VALUES ('2024-05-01T00:00:00Z', 't', 'invalid_json', 'x', '\\x00')",
    );
    const run = promisify(execFile);
    const env = { ...process.env, DATABASE_URL: databaseUrl };
    const list = await run('npx', ['tsx', 'src/tools/rejects.ts', 'list'], { cwd: ROOT, env });
    expect(list.stdout.trim().split('\n')).toEqual(['reason        count  latest', 'invalid_json      1  2024-05-01T00:00:00.000Z']);
    await expect(run('npx', ['tsx', 'src/tools/rejects.ts', 'replay'], { cwd: ROOT, env })).rejects.toMatchObject({ code: 2 });
  }, 30_000);
});
