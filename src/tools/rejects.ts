// `npm run rejects -- list [--reason X] [--since ISO]`: rejections by reason (count, latest).
// `npm run rejects -- replay --reason X [--since ISO] [--dry-run]`: publishes the raw payloads of
// the chosen rejected messages again to their original topic (QoS 1), so a fixed service (a
// catalog change, a wider range) decodes them anew; each message's rows are deleted only after
// the broker's PUBACK. A replayed message that is still bad comes back as a new rejection.
// Configured like the service (DATABASE_URL, MQTT_URL, MQTT_USERNAME/PASSWORD; see README).
// --reason must be a known reason code (REJECT_REASONS); unknown ones exit 2 with the list.
import { pathToFileURL } from 'node:url';
import mqtt from 'mqtt';
import pg from 'pg';
import { loadConfig } from '../config/config.ts';
import { REJECT_REASONS } from '../decode/decode.ts';
import { brokerAddress, embeddedBrokerUrl } from '../ingress/broker-url.ts';
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
  /** Messages the broker acknowledged, whose rows were then deleted. */
  readonly published: number;
  /** Rows deleted from rejected_messages. */
  readonly rowsDeleted: number;
  /** Messages the broker refused or that could not be published (e.g. a topic with + or #); kept. */
  readonly failed: { topic: string; error: string }[];
}

/** The narrow part of an MQTT client that replay needs. */
export interface Publisher {
  publishAsync(topic: string, payload: Buffer, opts: { qos: 1 }): Promise<unknown>;
}

/**
 * Publishes each chosen message once, in the order received, and deletes all of its rejection
 * rows (whatever their reason: the whole message is decoded again) after its PUBACK.
 * A message = rows with the same topic, receive time and payload SHA-256
 * (sql/002_rejects_sha256.sql). With `dryRun`, counts and publishes nothing.
 */
export async function replayRejects(
  db: pg.Pool | pg.Client,
  publisher: Publisher | undefined,
  f: RejectFilter & { reason: string; dryRun?: boolean },
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
  if (f.dryRun || !publisher) return { messages: messages.length, published: 0, rowsDeleted: 0, failed: [] };
  let published = 0;
  let rowsDeleted = 0;
  const failed: { topic: string; error: string }[] = [];
  // On a terminal: messages done / total, rate, ETA on stderr (silent when piped).
  const progress = new Progress({ label: 'rejects replay', unit: 'messages', total: messages.length });
  for (const m of messages) {
    progress.update(published + failed.length);
    // Payloads one at a time: up to MESSAGE_MAX_BYTES each, never all in memory.
    const { rows } = await db.query<{ payload: Buffer }>('SELECT payload FROM rejected_messages WHERE id = $1', [m.ids[0]]);
    const payload = rows[0]?.payload;
    if (!payload) continue;
    try {
      await publisher.publishAsync(m.topic, payload, { qos: 1 });
    } catch (err) {
      failed.push({ topic: m.topic, error: (err as Error).message });
      continue;
    }
    published++;
    const del = await db.query('DELETE FROM rejected_messages WHERE id = ANY($1::bigint[])', [m.ids]);
    rowsDeleted += del.rowCount ?? 0;
  }
  progress.end();
  return { messages: messages.length, published, rowsDeleted, failed };
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
    const url = config.broker.mode === 'embedded' ? embeddedBrokerUrl(config.broker.host, config.broker.port) : config.mqtt.url;
    const client = await mqtt.connectAsync({
      ...brokerAddress(url),
      clientId: `esp-ingest-rejects-${process.pid}`,
      clean: true,
      protocolVersion: config.broker.mode === 'embedded' ? 4 : config.mqtt.protocolVersion,
      ...(config.mqtt.username === undefined ? {} : { username: config.mqtt.username }),
      ...(config.mqtt.password === undefined ? {} : { password: config.mqtt.password }),
    });
    try {
      const r = await replayRejects(db, client, filter);
      console.log(`replayed ${r.published} of ${r.messages} message(s); ${r.rowsDeleted} rejection row(s) deleted after PUBACK`);
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
