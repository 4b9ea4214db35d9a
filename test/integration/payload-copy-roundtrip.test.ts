// COPY text-format escaping (empty strings turned into NULL: pgstream #1050; a literal \N read as
// NULL: psycopg2 #1711): every string that reaches COPY (well id, site, jsonb extras) reads back
// byte-identical from the real database. A fast-check property over ≥ 10,000 generated strings
// (full Unicode incl. non-BMP, and a dense mix of COPY's syntax characters), plus the fixed cases
// of tab, newline, CR, backslash, `\N` and the empty string. U+0000 is excluded: PostgreSQL text
// and jsonb cannot hold it (decode rejects it before COPY: invalid_json for a raw byte,
// invalid_text or invalid_well_id escaped).
import fc from 'fast-check';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_CATALOG } from '../../src/decode/catalog.ts';
import { packChannels } from '../../src/decode/channels.ts';
import type { Reading } from '../../src/decode/decode.ts';
import { migrate } from '../../src/schema/migrate.ts';
import { TelemetryWriter } from '../../src/sink/writer.ts';
import { freshDatabase, Teardown } from '../support/harness.ts';

const t = new Teardown();
afterAll(() => t.run());

const BATCH = 1_000;
const RUNS = 10;
const BASE_US = Date.parse('2024-05-01T00:00:00Z') * 1000;
const CURRENT = DEFAULT_CATALOG.findIndex((c) => c.column === 'motor_current_a');

/** Strings PostgreSQL can store: no U+0000, no lone surrogate (it has no UTF-8 encoding). */
const storable = (s: string): boolean => !s.includes('\u0000') && !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s);

const SPECIALS = [
  '',
  '\t',
  '\n',
  '\r',
  '\r\n',
  '\\',
  '\\N',
  '\\\\N',
  '\\.',
  '"',
  "'",
  ',',
  ' ',
  'N',
  '🛢',
  'é',
  '\u202e',
  '\u00a0',
  '\ufeff',
  '{',
  '}',
  '\u0001',
  '\u007f',
];
const text = fc
  .oneof(
    fc.constantFrom(...SPECIALS),
    fc.string({ unit: 'binary', maxLength: 40 }),
    fc.string({ unit: fc.constantFrom(...SPECIALS.filter((s) => s !== '')), maxLength: 12 }),
  )
  .filter(storable);

async function setup() {
  const url = await freshDatabase(t);
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  pool.on('error', () => undefined);
  t.add(() => pool.end());
  await migrate(pool, DEFAULT_CATALOG, pino({ level: 'silent' }));
  return { pool, writer: new TelemetryWriter(pool, DEFAULT_CATALOG, 30_000) };
}

const hex = (s: string) => Buffer.from(s, 'utf8').toString('hex');

function row(s: string, tsUs: number, i: number): Reading {
  const values: (number | null)[] = DEFAULT_CATALOG.map(() => null);
  values[CURRENT] = i % 1000;
  return { wellId: s, site: s, tsUs, seq: i, ...packChannels(values), extra: { v: s, keys: { [s]: true }, list: [s, s] } };
}

/** Writes `strings` as one batch (ts = base + offset + i µs) and asserts each reads back byte-identical. */
async function roundTrip(pool: pg.Pool, writer: TelemetryWriter, strings: readonly string[], offsetUs: number): Promise<void> {
  const res = await writer.write(
    strings.map((s, i) => row(s, BASE_US + offsetUs + i, i)),
    [],
  );
  expect(res.inserted).toBe(strings.length);
  const { rows } = await pool.query<{ i: string; w: string; s: string; v: string; k: string; l0: string; l1: string }>(
    `SELECT (extract(epoch FROM ts) * 1000000)::bigint - $1::bigint AS i,
            encode(convert_to(well_id, 'UTF8'), 'hex') AS w,
            encode(convert_to(site, 'UTF8'), 'hex') AS s,
            encode(convert_to(extra->>'v', 'UTF8'), 'hex') AS v,
            (SELECT encode(convert_to(k, 'UTF8'), 'hex') FROM jsonb_object_keys(extra->'keys') k) AS k,
            encode(convert_to(extra->'list'->>0, 'UTF8'), 'hex') AS l0,
            encode(convert_to(extra->'list'->>1, 'UTF8'), 'hex') AS l1
       FROM esp_telemetry WHERE ts >= to_timestamp($1::float8 / 1e6) AND ts < to_timestamp(($1::float8 + $2) / 1e6) ORDER BY ts`,
    [BASE_US + offsetUs, strings.length],
  );
  expect(rows).toHaveLength(strings.length);
  for (const r of rows) {
    const s = strings[Number(r.i)]!;
    const want = hex(s);
    // One comparison per row keeps a failure readable: the string, and what came back.
    expect({ s, w: r.w, site: r.s, v: r.v, k: r.k, l0: r.l0, l1: r.l1 }).toEqual({ s, w: want, site: want, v: want, k: want, l0: want, l1: want });
  }
}

describe('COPY round trip', () => {
  it('stores the fixed escaping cases byte-for-byte; "\\N" is a 2-character string, "" is not NULL', async () => {
    const { pool, writer } = await setup();
    const fixed = ['ESP\t01', 'ESP\n01', 'ESP\r01', 'ESP\\01', 'ESP"01', 'ESP,01', 'Ünïcødé-🛢-01', '\\N', '', 'a\\Nb', '\\\\N'];
    await roundTrip(pool, writer, fixed, 0);
    const { rows } = await pool.query<{ n: string; empty: string; backslash_n: string }>(
      `SELECT count(*) FILTER (WHERE well_id IS NULL OR site IS NULL) AS n,
              count(*) FILTER (WHERE well_id = '' AND site = '' AND extra->>'v' = '') AS empty,
              count(*) FILTER (WHERE well_id = E'\\\\N' AND length(well_id) = 2) AS backslash_n
         FROM esp_telemetry`,
    );
    expect(rows[0]).toEqual({ n: '0', empty: '1', backslash_n: '1' });
  });

  it(`round-trips ${RUNS * BATCH} generated strings (fast-check, ${RUNS} batches of ${BATCH})`, async () => {
    const { pool, writer } = await setup();
    let run = 0;
    let total = 0;
    const started = performance.now();
    await fc.assert(
      fc.asyncProperty(fc.array(text, { minLength: BATCH, maxLength: BATCH }), async (strings) => {
        // Each run (and each shrink attempt) gets its own time range, so keys never collide.
        const offsetUs = ++run * 10_000_000;
        await roundTrip(pool, writer, strings, offsetUs);
        total += strings.length;
      }),
      { numRuns: RUNS },
    );
    const seconds = (performance.now() - started) / 1000;
    console.log(`fast-check COPY round trip: ${total} strings in ${seconds.toFixed(1)} s`);
    expect(total).toBeGreaterThanOrEqual(10_000);
  }, 120_000);
});
