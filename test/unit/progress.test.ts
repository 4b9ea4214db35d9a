// Unit tests for the progress line of long commands: number, rate and ETA formatting, redraws
// throttled and overwritten with `\r` on a terminal, and nothing at all when not a terminal.
import { describe, expect, it } from 'vitest';
import { formatDuration, formatProgress, Progress } from '../../src/tools/progress.ts';

describe('formatDuration', () => {
  it.each([
    [0, '0.0 s'],
    [2.34, '2.3 s'],
    [42.4, '42 s'],
    [185, '3 min 05 s'],
    [7620, '2 h 07 min'],
    [Infinity, '?'],
    [-1, '?'],
    [Number.NaN, '?'],
  ])('%s s → %s', (s, text) => expect(formatDuration(s)).toBe(text));
});

describe('formatProgress', () => {
  it('done/total, percentage, average rate and ETA', () => {
    expect(formatProgress({ label: 'replay', unit: 'readings', done: 12_345, total: 29_718, elapsedMs: 2_000 })).toBe(
      'replay: 12,345/29,718 readings (41.5%), 6,173 readings/s, ETA 2.8 s',
    );
  });

  it('nothing done yet: rate 0, ETA unknown', () => {
    expect(formatProgress({ label: 'bench', unit: 'readings', done: 0, total: 100, elapsedMs: 0 })).toBe('bench: 0/100 readings (0.0%), 0 readings/s, ETA ?');
  });

  it('finished: says how long it took', () => {
    expect(formatProgress({ label: 'replay', unit: 'messages', done: 100, total: 100, elapsedMs: 65_000 })).toBe(
      'replay: 100/100 messages (100.0%), 2 messages/s, done in 1 min 05 s',
    );
  });

  it('unknown total: count and rate only', () => {
    expect(formatProgress({ label: 'rejects', unit: 'messages', done: 1_500, elapsedMs: 3_000 })).toBe('rejects: 1,500 messages, 500 messages/s');
  });
});

/** A stream that records what is written; `isTTY` as given. */
function sink(isTTY: boolean) {
  const writes: string[] = [];
  return { writes, stream: { isTTY, write: (s: string) => writes.push(s) } };
}

describe('Progress', () => {
  it('on a terminal: overwrites one line with \\r, at most every everyMs, and erases it at the end', () => {
    const { writes, stream } = sink(true);
    const clock = { nowMs: 0 };
    const p = new Progress({ label: 'replay', unit: 'readings', total: 1_000, stream, everyMs: 200, clock: () => clock.nowMs });
    clock.nowMs = 100;
    p.update(100);
    clock.nowMs = 150;
    p.update(150);
    clock.nowMs = 400;
    p.update(400);
    expect(writes).toEqual([
      '\rreplay: 100/1,000 readings (10.0%), 1,000 readings/s, ETA 0.9 s\x1b[K',
      '\rreplay: 400/1,000 readings (40.0%), 1,000 readings/s, ETA 0.6 s\x1b[K',
    ]);
    p.end();
    expect(writes.at(-1)).toBe('\r\x1b[K');
  });

  it('end(true) keeps the final state on its own line', () => {
    const { writes, stream } = sink(true);
    const clock = { nowMs: 0 };
    const p = new Progress({ label: 'replay', unit: 'readings', total: 10, stream, clock: () => clock.nowMs });
    clock.nowMs = 2_000;
    p.update(10);
    p.end(true);
    expect(writes.slice(-2)).toEqual(['\rreplay: 10/10 readings (100.0%), 5 readings/s, done in 2.0 s\x1b[K', '\n']);
  });

  it('not a terminal (piped, CI, a log file): writes nothing', () => {
    const { writes, stream } = sink(false);
    const clock = { nowMs: 0 };
    const p = new Progress({ label: 'replay', unit: 'readings', total: 10, stream, clock: () => clock.nowMs });
    for (let i = 1; i <= 10; i++) {
      clock.nowMs += 1_000;
      p.update(i);
    }
    p.end(true);
    expect(p.enabled).toBe(false);
    expect(writes).toEqual([]);
  });
});
