// Pipe ceiling for `npm run bench`, the yardstick the service is measured against: the leanest
// pipeline doing the service's job with none of its guarantees. MQTT.js QoS 1 subscriber (PUBACK
// on receipt), JSON.parse, batches of 5,000 rows or 200 ms, one COPY at a time on one connection,
// each its own transaction. No validation, no dedupe, no ack-after-commit.
//   node --import tsx dev/bench-pipe.ts <mqtt url> <topic filter> <database url> <expected readings>
// Prints "ready" once subscribed and "done" once the expected readings are committed; exits 0 when
// its stdin ends (so that the bench can read its /proc entries first).
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import mqtt from 'mqtt';
import pg from 'pg';
import copyStreams from 'pg-copy-streams';
import { DEFAULT_CATALOG } from '../src/decode/catalog.ts';
import { brokerAddress } from '../src/ingress/broker-url.ts';

const BATCH_ROWS = 5_000;
const BATCH_MS = 200;
const CHANNELS = new Set(DEFAULT_CATALOG.map((c) => c.column));
/** COPY text format escapes; JSON.stringify leaves only the backslash in practice. */
const ESCAPES: Readonly<Record<string, string>> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

type Reading = Record<string, unknown>;
/** One reading with the well and site of its topic (`<prefix>/<site>/<well_id>/telemetry`). */
interface Row {
  readonly well: string;
  readonly site: string;
  readonly r: Reading;
}

const [url, filter, databaseUrl, expectedArg] = process.argv.slice(2);
const expected = Number(expectedArg);
const db = new pg.Client({ connectionString: databaseUrl });
await db.connect();

let batch: Row[] = [];
let timer: NodeJS.Timeout | undefined;
const full: Row[][] = [];
let writing = false;
let committed = 0;

const field = (v: unknown) => (v === undefined || v === null ? '\\N' : String(v));

function extraOf(r: Reading): string {
  let extra: Reading | undefined;
  for (const k in r) {
    if (k === 'ts' || k === 'seq' || CHANNELS.has(k)) continue;
    extra ??= {};
    extra[k] = r[k];
  }
  if (!extra) return '\\N';
  const json = JSON.stringify(extra);
  return /[\\\t\n\r]/.test(json) ? json.replace(/[\\\t\n\r]/g, (c) => ESCAPES[c]!) : json;
}

/** COPY text of a batch: only the columns some reading of it has. Topic parts go unescaped (the bench's ids are plain). */
function copyOf(rows: readonly Row[]): { columns: string; text: string } {
  const channels = new Set<string>();
  let seq = false;
  let extra = false;
  for (const { r } of rows) {
    for (const k in r) {
      if (CHANNELS.has(k)) channels.add(k);
      else if (k === 'seq') seq = true;
      else if (k !== 'ts') extra = true;
    }
  }
  const cols = [...channels];
  let text = '';
  for (const { well, site, r } of rows) {
    let line = `${field(r.ts)}\t${well}\t${site}`;
    if (seq) line += `\t${field(r.seq)}`;
    if (extra) line += `\t${extraOf(r)}`;
    for (const c of cols) line += `\t${field(r[c])}`;
    text += `${line}\n`;
  }
  return { columns: ['ts', 'well_id', 'site', ...(seq ? ['seq'] : []), ...(extra ? ['extra'] : []), ...cols].join(', '), text };
}

function cut(): void {
  clearTimeout(timer);
  timer = undefined;
  if (batch.length === 0) return;
  full.push(batch);
  batch = [];
  if (!writing) drain().catch((err: unknown) => fail(err));
}

async function drain(): Promise<void> {
  writing = true;
  for (let rows = full.shift(); rows; rows = full.shift()) {
    const { columns, text } = copyOf(rows);
    await pipeline(Readable.from([text]), db.query(copyStreams.from(`COPY esp_telemetry (${columns}) FROM STDIN`)));
    const before = committed;
    committed += rows.length;
    if (before < expected && committed >= expected) process.stdout.write('done\n');
  }
  writing = false;
}

function fail(err: unknown): never {
  process.stderr.write(`bench-pipe: ${String(err)}\n`);
  process.exit(1);
}

const client = mqtt.connect({
  ...brokerAddress(url!),
  // One client id per topic prefix: a later round resumes the (empty) session instead of leaving one behind.
  clientId: `esp-bench-pipe-${filter!.split('/')[0]}`,
  clean: false,
  protocolVersion: 5,
  properties: { sessionExpiryInterval: 60, receiveMaximum: 4096 },
});
client.on('error', fail);
client.on('message', (topic, payload) => {
  const [, site, well] = topic.split('/');
  const parsed = JSON.parse(payload.toString()) as Reading | Reading[];
  for (const r of Array.isArray(parsed) ? parsed : [parsed]) batch.push({ well: well!, site: site!, r });
  if (batch.length >= BATCH_ROWS) cut();
  else timer ??= setTimeout(cut, BATCH_MS);
});
await new Promise((resolve) => client.once('connect', resolve));
await client.subscribeAsync(filter!, { qos: 1 });
process.stdout.write('ready\n');
process.stdin.on('end', () => void client.endAsync().then(() => db.end().then(() => process.exit(0)), fail));
process.stdin.resume();
