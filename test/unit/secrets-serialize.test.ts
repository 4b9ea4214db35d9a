// Unit tests: secrets and internal addresses kept out of log lines and probe bodies. pg-pool puts
// the whole client on an idle error (`err.client`), and util.inspect of a pg Pool shows its
// connection string with the password (brianc/node-postgres #1568).
import { Writable } from 'node:stream';
import pg from 'pg';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { serializeError } from '../../src/log/logger.ts';
import { scrubAddresses } from '../../src/log/scrub.ts';

const SENTINEL = 'S3cr3t-pw%23x';

describe('serializeError', () => {
  it('drops err.client (a pg Client) and any object-valued field, keeping code and message', () => {
    const pool = new pg.Pool({ connectionString: `postgres://u:${SENTINEL}@127.0.0.1:1/db` });
    const err = Object.assign(new Error('Connection terminated unexpectedly'), {
      code: 'ECONNRESET',
      client: new pg.Client({ connectionString: `postgres://u:${SENTINEL}@127.0.0.1:1/db` }),
      pool,
    });
    let out = '';
    const log = pino(
      { serializers: { err: serializeError } },
      new Writable({
        write: (c, _e, cb) => {
          out += String(c);
          cb();
        },
      }),
    );
    log.warn({ err }, 'idle database connection failed');
    expect(out).toContain('Connection terminated unexpectedly');
    expect(out).toContain('ECONNRESET');
    expect(out).not.toContain('S3cr3t');
    expect(out).not.toContain('processID');
    expect(out.length).toBeLessThan(1500);
    void pool.end();
  });

  it('keeps causes and aggregate errors, shallowly', () => {
    const inner = Object.assign(new Error('inner'), { code: '57P01' });
    const out = serializeError(new AggregateError([new Error('a')], 'outer', { cause: inner })) as Record<string, unknown>;
    expect(out).toMatchObject({ message: 'outer', cause: { message: 'inner', code: '57P01' }, errors: [{ message: 'a' }] });
  });
});

describe('scrubAddresses', () => {
  it.each([
    ['connect ECONNREFUSED 127.0.0.1:55432', 'connect ECONNREFUSED [address]'],
    ['connect ECONNREFUSED ::1:5432', 'connect ECONNREFUSED [address]'],
    ['connect ETIMEDOUT [fd00::5]:5432', 'connect ETIMEDOUT [address]'],
    ['getaddrinfo ENOTFOUND db.internal.example', 'getaddrinfo ENOTFOUND [host]'],
    ['connect to db.internal.example:5432 failed', 'connect to [address] failed'],
    ['no pg_hba.conf entry for host "10.1.2.3", user "x"', 'no pg_hba.conf entry for host "[address]", user "x"'],
    ['timeout expired', 'timeout expired'],
  ])('%s → %s', (text, want) => {
    expect(scrubAddresses(text)).toBe(want);
  });
});

it('scrubAddresses leaves times alone', () => {
  expect(scrubAddresses('reading at 2024-05-01T12:30:45Z')).toBe('reading at 2024-05-01T12:30:45Z');
});
