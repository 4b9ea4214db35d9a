// `npm run rejects -- list [--reason X] [--since ISO]`: rejections by reason (count, latest).
// `npm run rejects -- replay --reason X [--since ISO] [--dry-run]`: publishes the raw payloads of
// the chosen rejected messages again to their original topic (QoS 1), so a fixed service (a
// catalog change, a wider range) decodes them anew; each message's rows are deleted only once
// the database shows the service took it: its readings stored, or a new rejection of it. A PUBACK
// alone is not enough: a broker that refuses the publisher acknowledges and drops (MQTT 3.1.1).
// Configured like the service (DATABASE_URL, MQTT_URL, MQTT_USERNAME, MQTT_PASSWORD or
// MQTT_PASSWORD_FILE, the MQTT TLS files; see README).
// --reason must be a known reason code (REJECT_REASONS); unknown ones exit 2 with the list.
import { pathToFileURL } from 'node:url';
import mqtt from 'mqtt';
import pg from 'pg';
import { loadConfig } from '../config/config.ts';
import { DEFAULT_CATALOG } from '../decode/catalog.ts';
import { REJECT_REASONS } from '../decode/decode.ts';
import { toWork } from '../decode/to-work.ts';
import { parseTopicTemplate } from '../decode/topic.ts';
import { brokerAddress, embeddedBrokerUrl } from '../ingress/broker-url.ts';
import { readConnectFiles } from '../ingress/connect-options.ts';
import { parseCli, usageError } from './cli.ts';
import { Progress } from './progress.ts';

export interface RejectFilter {
  /** A reason code (docs/payload.md); undefined = every reason. */
  readonly reason?: string | undefined;
  /** Only rejections received at or after this instant. */
  readonly since?: Date | undefined;
}

export interface ReasonSummary {
  readonly reason: string;
  readonly count: number;
  readonly latest: Date;
}

/** Rejections grouped by reason, most frequent first. */
export async function listRejects(db: pg.Pool | pg.Client, f: RejectFilter): Promise<ReasonSummary[]> {
  const { rows } = await db.query<{ reason: string; count: string; latest: Date }>(
    `SELECT reason, count(*) AS count, max(received_at) AS latest FROM rejected_messages
      WHERE ($1::text IS NULL OR reason = $1) AND ($2::timestamptz IS NULL OR received_at >= $2)
      GROUP BY reason ORDER BY count(*) DESC, reason`,
    [f.reason ?? null, f.since ?? null],
  );
  return rows.map((r) => ({ reason: r.reason, count: Number(r.count), latest: r.latest }));
}

export interface RejectsReplayResult {
  /** Messages chosen (one message can have several rejected readings). */
  readonly messages: number;
  /** Messages the broker acknowledged and the service was seen to take; their rows were deleted. */
  readonly published: number;
  /** Rows deleted from rejected_messages. */
  readonly rowsDeleted: number;
  /**
   * Messages kept: refused by the broker, not publishable (a topic with + or #), or acknowledged
   * but never taken by the service within the wait (a broker that drops what this publisher may
   * not publish).
   */
  readonly failed: { topic: string; error: string }[];
}

/**
 * Whether the database shows that the service took a message published at or after `since`:
 * every reading it decodes to is stored (by key; a reading stamped with the receive time, by a
 * row of its well received since), and, when it decodes to rejections, a new rejection of it.
 */
export type TakenCheck = (topic: string, payload: Buffer, since: Date) => Promise<boolean>;

/** The TakenCheck for the service configured by `config` (its topic template, decode settings and catalog). */
export function takenBy(db: pg.Pool | pg.Client, config: Pick<ReturnType<typeof loadConfig>, 'mqtt' | 'decode'>): TakenCheck {
  const template = parseTopicTemplate(config.mqtt.topicTemplate);
  const options = { catalog: DEFAULT_CATALOG, ...config.decode };
  return async (topic, payload, since) => {
    // Decoded twice with receive times 1 ms apart: a reading whose time moves was stamped.
    const at = since.getTime();
    const first = toWork({ topic, payload, receivedAtMs: at }, template, options).work;
    const second = toWork({ topic, payload, receivedAtMs: at + 1 }, template, options).work;
    if (first.rejects.length > 0) {
      const { rows } = await db.query('SELECT 1 FROM rejected_messages WHERE topic = $1 AND payload_sha256 = sha256($2) AND received_at >= $3 LIMIT 1', [
        topic,
        payload,
        since,
      ]);
      if (rows.length === 0) return false;
    }
    const keyed = first.readings.filter((r, i) => r.tsUs === second.readings[i]?.tsUs);
    const stamped = first.readings.filter((r, i) => r.tsUs !== second.readings[i]?.tsUs);
    if (keyed.length > 0) {
      const { rows } = await db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM unnest($1::text[], $2::bigint[]) AS k(well_id, us)
          WHERE EXISTS (SELECT 1 FROM esp_telemetry t WHERE t.well_id = k.well_id AND t.ts = 'epoch'::timestamptz + k.us * interval '1 microsecond')`,
        [keyed.map((r) => r.wellId), keyed.map((r) => String(r.tsUs))],
      );
      if ((rows[0]?.n ?? 0) < new Set(keyed.map((r) => `${r.wellId}\u0000${r.tsUs}`)).size) return false;
    }
    for (const wellId of new Set(stamped.map((r) => r.wellId))) {
      const { rows } = await db.query('SELECT 1 FROM esp_telemetry WHERE well_id = $1 AND received_at >= $2 LIMIT 1', [wellId, since]);
      if (rows.length === 0) return false;
    }
    return true;
  };
}

/** The narrow part of an MQTT client that replay needs. */
export interface Publisher {
  publishAsync(topic: string, payload: Buffer, opts: { qos: 1 }): Promise<unknown>;
}

/**
 * Publishes each chosen message once, in the order received, and deletes all of its rejection
 * rows (whatever their reason: the whole message is decoded again) once `taken` confirms the
 * service took it, waiting up to `takenWithinMs` (default 30 s) after the last PUBACK.
 * A message = rows with the same topic, receive time and payload SHA-256
 * (sql/002_rejects_sha256.sql). With `dryRun`, counts and publishes nothing.
 */
export async function replayRejects(
  db: pg.Pool | pg.Client,
  publisher: Publisher | undefined,
  f: RejectFilter & { reason: string; dryRun?: boolean; takenWithinMs?: number },
  taken?: TakenCheck,
): Promise<RejectsReplayResult> {
  const { rows: messages } = await db.query<{ topic: string; ids: string[] }>(
    `WITH chosen AS (
       SELECT DISTINCT topic, received_at, payload_sha256 FROM rejected_messages
        WHERE reason = $1 AND ($2::timestamptz IS NULL OR received_at >= $2))
     SELECT r.topic, array_agg(r.id ORDER BY r.id)::text[] AS ids
       FROM rejected_messages r JOIN chosen c USING (topic, received_at, payload_sha256)
      GROUP BY r.topic, r.received_at, r.payload_sha256 ORDER BY min(r.id)`,
    [f.reason, f.since ?? null],
  );
  if (f.dryRun || !publisher || !taken) return { messages: messages.length, published: 0, rowsDeleted: 0, failed: [] };
  let published = 0;
  let rowsDeleted = 0;
  const failed: { topic: string; error: string }[] = [];
  // On a terminal: messages done / total, rate, ETA on stderr (silent when piped).
  const progress = new Progress({ label: 'rejects replay', unit: 'messages', total: messages.length });
  // The database's clock, as the service's rows carry it (received_at), minus a margin for skew.
  const { rows: now } = await db.query<{ since: Date }>("SELECT now() - interval '5 seconds' AS since");
  const since = now[0]!.since;
  const acknowledged: { topic: string; ids: string[] }[] = [];
  for (const m of messages) {
    progress.update(acknowledged.length + failed.length);
    // Payloads one at a time: up to MESSAGE_MAX_BYTES each, never all in memory.
    const payload = await payloadOf(db, m.ids[0]!);
    if (!payload) continue;
    try {
      await publisher.publishAsync(m.topic, payload, { qos: 1 });
      acknowledged.push(m);
    } catch (err) {
      failed.push({ topic: m.topic, error: (err as Error).message });
    }
  }
  progress.end();
  // Delete only what the database shows the service took; poll until all is, or the wait ends.
  const deadline = Date.now() + (f.takenWithinMs ?? 30_000);
  let waiting = acknowledged;
  for (;;) {
    const still: typeof waiting = [];
    for (const m of waiting) {
      const payload = await payloadOf(db, m.ids[0]!);
      if (payload && (await taken(m.topic, payload, since))) {
        published++;
        const del = await db.query('DELETE FROM rejected_messages WHERE id = ANY($1::bigint[])', [m.ids]);
        rowsDeleted += del.rowCount ?? 0;
      } else still.push(m);
    }
    waiting = still;
    if (waiting.length === 0 || Date.now() > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  for (const m of waiting) {
    failed.push({
      topic: m.topic,
      error: 'the broker acknowledged it, but the service did not store it in time: is this publisher allowed to publish there? (rows kept)',
    });
  }
  return { messages: messages.length, published, rowsDeleted, failed };
}

async function payloadOf(db: pg.Pool | pg.Client, id: string): Promise<Buffer | undefined> {
  const { rows } = await db.query<{ payload: Buffer }>('SELECT payload FROM rejected_messages WHERE id = $1', [id]);
  return rows[0]?.payload;
}

/** Aligned text table, header first. */
export function formatTable(rows: readonly ReasonSummary[]): string {
  const cells = [['reason', 'count', 'latest'], ...rows.map((r) => [r.reason, String(r.count), r.latest.toISOString()])];
  const widths = [0, 1, 2].map((i) => Math.max(...cells.map((c) => c[i]!.length)));
  return cells
    .map((c) =>
      c
        .map((x, i) => (i === 1 ? x.padStart(widths[i]!) : x.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** The command line of `npm run rejects`. */
export const REJECTS_CLI = {
  name: 'rejects',
  usage: `usage: npm run rejects -- list [--reason X] [--since ISO]
       npm run rejects -- replay --reason X [--since ISO] [--dry-run]
  --reason X    one reason code: ${REJECT_REASONS.join(', ')}
  --since ISO   only rejections received at or after this ISO-8601 date-time
  --dry-run     replay: count the messages, publish nothing`,
  options: { reason: { type: 'string' }, since: { type: 'string' }, 'dry-run': { type: 'boolean', default: false } },
  allowPositionals: true,
  choices: { reason: REJECT_REASONS },
} as const;

async function main(argv: string[]): Promise<number> {
  const parsed = parseCli(argv, REJECTS_CLI);
  if (parsed.kind === 'help') {
    console.log(parsed.text);
    return 0;
  }
  if (parsed.kind === 'error') {
    console.error(parsed.text);
    return 2;
  }
  const { positionals, values } = parsed;
  const command = positionals[0];
  if (command !== 'list' && command !== 'replay') {
    return usageError(REJECTS_CLI, command === undefined ? 'say list or replay' : `unknown command ${JSON.stringify(command)}; say list or replay`);
  }
  if (positionals.length > 1) return usageError(REJECTS_CLI, `unexpected argument ${JSON.stringify(positionals[1])}`);
  const since = values.since === undefined ? undefined : new Date(values.since);
  if (since && Number.isNaN(since.getTime())) return usageError(REJECTS_CLI, `--since must be an ISO-8601 date-time, got ${JSON.stringify(values.since)}`);
  if (command === 'replay' && !values.reason) return usageError(REJECTS_CLI, 'replay needs --reason (see `npm run rejects -- list`)');
  const config = loadConfig(process.env);
  const db = new pg.Client({ connectionString: config.databaseUrl, application_name: 'esp-ingest-rejects' });
  await db.connect();
  try {
    if (command === 'list') {
      const rows = await listRejects(db, { reason: values.reason, since });
      console.log(rows.length === 0 ? 'no rejections' : formatTable(rows));
      return 0;
    }
    const filter = { reason: values.reason!, since, dryRun: values['dry-run'] };
    if (values['dry-run']) {
      const r = await replayRejects(db, undefined, filter);
      console.log(`dry run: ${r.messages} message(s) with reason ${filter.reason} would be published again`);
      return 0;
    }
    const files = readConnectFiles(config.mqtt);
    if (files.problems.length > 0) {
      console.error(`esp-ingest rejects: ${files.problems.join('; ')}`);
      return 1;
    }
    const url = config.broker.mode === 'embedded' ? embeddedBrokerUrl(config.broker.host, config.broker.port) : config.mqtt.url;
    const client = await mqtt.connectAsync({
      ...brokerAddress(url),
      clientId: `esp-ingest-rejects-${process.pid}`,
      clean: true,
      protocolVersion: config.broker.mode === 'embedded' ? 4 : config.mqtt.protocolVersion,
      ...(config.mqtt.username === undefined ? {} : { username: config.mqtt.username }),
      ...(config.mqtt.password === undefined ? {} : { password: config.mqtt.password }),
      // MQTT_PASSWORD_FILE and the TLS files, read as the service reads them.
      ...files.options,
    });
    try {
      const r = await replayRejects(db, client, filter, takenBy(db, config));
      console.log(`replayed ${r.published} of ${r.messages} message(s); ${r.rowsDeleted} rejection row(s) deleted once the service had taken them`);
      for (const f of r.failed) console.error(`not published (kept): ${f.topic}: ${f.error}`);
      return r.failed.length === 0 ? 0 : 1;
    } finally {
      await client.endAsync();
    }
  } finally {
    await db.end();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(err instanceof Error ? err.message : err);
      process.exit(1);
    },
  );
}
