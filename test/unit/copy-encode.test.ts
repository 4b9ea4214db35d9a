// Unit tests for the COPY text-format encoders (PostgreSQL docs, "COPY", Text Format).
import { describe, expect, it } from 'vitest';
import { parseTimestamp } from '../../src/decode/decode.ts';
import { COPY_NULL, copyBytea, copyFloat, copyInt, copyJson, copyText, copyTimestampUs } from '../../src/sink/copy-encode.ts';

/** What the server does with one field of the text format (the escapes the encoder emits, and more). */
function unescapeField(field: string): string | null {
  if (field === '\\N') return null;
  const map: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };
  return field.replace(/\\(.)/gs, (_m, c: string) => map[c] ?? c);
}

describe('copyText', () => {
  it.each([
    ['plain ASCII', 'well-17', 'well-17'],
    ['a tab', 'a\tb', 'a\\tb'],
    ['a newline', 'a\nb', 'a\\nb'],
    ['a carriage return', 'a\rb', 'a\\rb'],
    ['CRLF', 'a\r\nb', 'a\\r\\nb'],
    ['a backslash', 'a\\b', 'a\\\\b'],
    ['a trailing backslash', 'a\\', 'a\\\\'],
    ['two backslashes', '\\\\', '\\\\\\\\'],
    ['literal \\N text (not NULL)', '\\N', '\\\\N'],
    ['\\. (end-of-data marker)', '\\.', '\\\\.'],
    ['the empty string (not NULL)', '', ''],
    ['accents', 'poço São João', 'poço São João'],
    ['emoji (surrogate pair)', 'pump 🛢️ ok', 'pump 🛢️ ok'],
    ['CJK', '油井', '油井'],
    ['a space and quotes', ' "x" \'y\' ', ' "x" \'y\' '],
    ['a vertical tab and form feed (legal raw)', 'a\vb\fc', 'a\vb\fc'],
    ['everything at once', '\\\t\n\r\\N', '\\\\\\t\\n\\r\\\\N'],
  ])('%s', (_what, value, encoded) => {
    expect(copyText(value)).toBe(encoded);
    expect(unescapeField(encoded)).toBe(value);
  });

  it('encodes null as \\N', () => {
    expect(copyText(null)).toBe(COPY_NULL);
    expect(COPY_NULL).toBe('\\N');
  });

  it('never lets a non-null value encode to \\N', () => {
    for (const v of ['\\N', 'N', '\\', '', '\\\\N']) expect(copyText(v)).not.toBe(COPY_NULL);
  });

  it('never emits a raw delimiter or row terminator', () => {
    const nasty = ['\t', '\n', '\r', 'a\tb\nc\rd', '\\\t\\\n'];
    for (const v of nasty) expect(copyText(v)).not.toMatch(/[\t\n\r]/);
  });

  it('round-trips every single code unit except NUL', () => {
    for (let c = 1; c < 0x3000; c++) {
      const s = `x${String.fromCharCode(c)}y`;
      expect(unescapeField(copyText(s))).toBe(s);
    }
  });

  it.each([
    ['a NUL alone', '\u0000'],
    ['a NUL between text', 'a\u0000b'],
    ['a NUL beside a tab', '\t\u0000'],
  ])('throws RangeError on %s', (_what, v) => {
    expect(() => copyText(v)).toThrow(RangeError);
  });
});

describe('copyFloat', () => {
  it.each([
    [0, '0'],
    [12.5, '12.5'],
    [-40, '-40'],
    [0.1, '0.1'],
    [1e21, '1e+21'],
    [2e8, '200000000'],
    [1.7976931348623157e308, '1.7976931348623157e+308'],
    [5e-324, '5e-324'],
  ])('%s → %s (round-trips)', (v, s) => {
    expect(copyFloat(v)).toBe(s);
    expect(Number(copyFloat(v))).toBe(v);
  });

  it('encodes null as \\N', () => {
    expect(copyFloat(null)).toBe('\\N');
  });

  it.each([[Number.NaN], [Number.POSITIVE_INFINITY], [Number.NEGATIVE_INFINITY]])('throws RangeError on %s', (v) => {
    expect(() => copyFloat(v)).toThrow(RangeError);
  });
});

describe('copyInt', () => {
  it.each([
    [null, '\\N'],
    [0, '0'],
    [42, '42'],
    [Number.MAX_SAFE_INTEGER, '9007199254740991'],
  ])('%s → %s', (v, s) => {
    expect(copyInt(v)).toBe(s);
  });
});

describe('copyTimestampUs', () => {
  const at = (iso: string, extraUs = 0) => Date.parse(iso) * 1000 + extraUs;

  it.each([
    ['0 µs', 0, '1970-01-01T00:00:00.000000Z'],
    ['1 µs', 1, '1970-01-01T00:00:00.000001Z'],
    ['999 µs', 999, '1970-01-01T00:00:00.000999Z'],
    ['1000 µs', 1000, '1970-01-01T00:00:00.001000Z'],
    ['1 s minus 1 µs', 999_999, '1970-01-01T00:00:00.999999Z'],
    ['a 2017 instant with µs', at('2017-03-14T15:09:26.535Z', 897), '2017-03-14T15:09:26.535897Z'],
    ['a 2024 leap day', at('2024-02-29T23:59:59.999Z', 999), '2024-02-29T23:59:59.999999Z'],
    ['-1 µs (before 1970)', -1, '1969-12-31T23:59:59.999999Z'],
    ['-1000 µs', -1000, '1969-12-31T23:59:59.999000Z'],
    ['-1000001 µs', -1_000_001, '1969-12-31T23:59:58.999999Z'],
  ])('%s → %s', (_what, us, text) => {
    expect(copyTimestampUs(us)).toBe(text);
  });

  it('round-trips through parseTimestamp', () => {
    for (const us of [0, 1, 999, 1_489_504_166_535_897, 1_714_564_800_123_456, -1, -999_999]) {
      expect(parseTimestamp(copyTimestampUs(us))).toEqual({ ok: true, us });
    }
  });
});

describe('copyBytea', () => {
  it.each([
    ['empty', [], '\\\\x'],
    ['bytes', [0x00, 0x01, 0xab, 0xff], '\\\\x0001abff'],
    ['a tab and newline byte', [0x09, 0x0a, 0x5c], '\\\\x090a5c'],
  ])('%s', (_what, raw, encoded) => {
    expect(copyBytea(new Uint8Array(raw))).toBe(encoded);
    // What the server hands bytea input after text-format unescaping: \x + hex.
    expect(unescapeField(encoded)).toBe(`\\x${Buffer.from(raw).toString('hex')}`);
  });

  it('encodes only the bytes of a view, not its whole buffer', () => {
    const whole = new Uint8Array([1, 2, 3, 4, 5]);
    expect(copyBytea(whole.subarray(1, 3))).toBe('\\\\x0203');
  });
});

describe('copyJson', () => {
  it.each([[null], [undefined]])('encodes %s as \\N', (v) => {
    expect(copyJson(v)).toBe('\\N');
  });

  it.each([
    ['an object', { a: 1, b: 'x' }, '{"a":1,"b":"x"}'],
    ['an embedded newline', { a: 'x\ny' }, '{"a":"x\\\\ny"}'],
    ['an embedded tab', { a: 'x\ty' }, '{"a":"x\\\\ty"}'],
    ['an embedded backslash', { a: 'x\\y' }, '{"a":"x\\\\\\\\y"}'],
    ['literal \\N text', { a: '\\N' }, '{"a":"\\\\\\\\N"}'],
    ['Unicode', { poço: '🛢️' }, '{"poço":"🛢️"}'],
    ['an empty object', {}, '{}'],
    ['a JSON string', 'x', '"x"'],
  ])('%s', (_what, value, encoded) => {
    expect(copyJson(value)).toBe(encoded);
    expect(copyJson(value)).not.toMatch(/[\t\n\r]/);
    expect(JSON.parse(unescapeField(encoded)!)).toEqual(value);
  });
});

describe('copyTimestampUs against Date.prototype.toISOString', () => {
  it('agrees on every day from 1900 to 2100 and on random instants of the exact µs range (years 1685 to 2255)', () => {
    const iso = (us: number) => {
      const ms = Math.floor(us / 1000);
      return `${new Date(ms).toISOString().slice(0, 23)}${String(us - ms * 1000).padStart(3, '0')}Z`;
    };
    for (let day = Date.UTC(1900, 0, 1) / 86_400_000; day <= Date.UTC(2100, 0, 1) / 86_400_000; day++) {
      const us = day * 86_400_000_000 + 86_399_999_999;
      expect(copyTimestampUs(us)).toBe(iso(us));
    }
    let seed = 7;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let i = 0; i < 20_000; i++) {
      const us = Math.floor((random() * 2 - 1) * Number.MAX_SAFE_INTEGER);
      expect(copyTimestampUs(us)).toBe(iso(us));
    }
  });

  it('writes years past 9999 in the expanded form PostgreSQL reads', () => {
    expect(copyTimestampUs(Date.UTC(10_000, 0, 1) * 1000)).toBe('+010000-01-01T00:00:00.000000Z');
    expect(copyTimestampUs(Date.UTC(-1, 0, 1) * 1000)).toBe('-000001-01-01T00:00:00.000000Z');
  });
});
