// The start-up undo list: what started is stopped newest first, and one failing stop does not
// keep the others from running.
import { describe, expect, it } from 'vitest';
import { StopStack } from '../../src/lifecycle/stop-stack.ts';

describe('StopStack', () => {
  it('stops newest first, awaiting each, and runs the rest after a failing stop', async () => {
    const stack = new StopStack();
    const order: string[] = [];
    stack.push(() => order.push('sidecar'));
    stack.push(async () => {
      await Promise.resolve();
      order.push('pool');
    });
    stack.push(() => {
      throw new Error('probe stop failed');
    });
    stack.push(() => order.push('broker'));
    await stack.unwind();
    expect(order).toEqual(['broker', 'pool', 'sidecar']);
  });

  it('unwinds once: a second unwind stops nothing again', async () => {
    const stack = new StopStack();
    let stops = 0;
    stack.push(() => stops++);
    await stack.unwind();
    await stack.unwind();
    expect(stops).toBe(1);
  });
});
