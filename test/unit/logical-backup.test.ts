// When an import of a logical dump is refused, and the fix it names (timescale/timescaledb #1797:
// restore into the same TimescaleDB version, then ALTER EXTENSION timescaledb UPDATE).
import { describe, expect, it } from 'vitest';
import { importRefusal } from '../../src/tools/logical-backup.ts';

const dump = { timescaledb: '2.19.3', postgresNum: 150_020, database: 'esp', dumpedAt: '2024-05-01T00:00:00Z' };
const server = { timescaledb: '2.19.3', postgresNum: 150_020, tables: 0 };

describe('importRefusal', () => {
  it.each([
    { name: 'same versions, empty database', d: dump, s: server, refusal: undefined },
    { name: 'a later PostgreSQL major', d: dump, s: { ...server, postgresNum: 170_004 }, refusal: undefined },
    { name: 'a dump without TimescaleDB anywhere', d: { ...dump, timescaledb: null }, s: { ...server, timescaledb: null }, refusal: undefined },
    {
      name: 'newer TimescaleDB on the server',
      d: dump,
      s: { ...server, timescaledb: '2.21.0' },
      refusal: /would load 2\.21\.0.*timescale\/timescaledb:2\.19\.3-pg15.*ALTER EXTENSION timescaledb UPDATE;/,
    },
    {
      name: 'older TimescaleDB on the server',
      d: dump,
      s: { ...server, timescaledb: '2.17.1' },
      refusal: /dump holds TimescaleDB 2\.19\.3 but this server would load 2\.17\.1/,
    },
    { name: 'no TimescaleDB on the server', d: dump, s: { ...server, timescaledb: null }, refusal: /has no TimescaleDB.*2\.19\.3 installed/ },
    { name: 'an older PostgreSQL major', d: dump, s: { ...server, postgresNum: 140_011 }, refusal: /PostgreSQL 15 and this server is 14/ },
    { name: 'a database with tables', d: dump, s: { ...server, tables: 3 }, refusal: /already has 3 tables; create an empty one/ },
  ])('$name', ({ d, s, refusal }) => {
    const r = importRefusal(d, s);
    if (refusal === undefined) expect(r).toBeUndefined();
    else expect(r).toMatch(refusal);
  });
});
