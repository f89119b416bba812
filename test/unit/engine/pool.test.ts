import { describe, expect, it } from 'vitest';
import { mapPool } from '../../../src/engine/pool.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('mapPool', () => {
  it('returns results in the order of the items, not the order they finish in', async () => {
    const results = await mapPool([30, 5, 20, 1, 10], 3, async (ms, index) => {
      await sleep(ms);
      return `${index}:${ms}`;
    });
    expect(results).toEqual(['0:30', '1:5', '2:20', '3:1', '4:10']);
  });

  it('never has more than `limit` calls in flight, and uses all of them', async () => {
    let inFlight = 0;
    let most = 0;
    await mapPool(Array.from({ length: 20 }, (_, i) => i), 4, async (i) => {
      inFlight += 1;
      most = Math.max(most, inFlight);
      await sleep(i % 3);
      inFlight -= 1;
    });
    expect(most).toBe(4);
  });

  it('starts no more workers than there are items, and returns [] for none', async () => {
    let inFlight = 0;
    let most = 0;
    await mapPool([1, 2], 16, async () => {
      inFlight += 1;
      most = Math.max(most, inFlight);
      await sleep(1);
      inFlight -= 1;
    });
    expect(most).toBe(2);
    expect(await mapPool([], 4, async () => 1)).toEqual([]);
  });

  it('after a rejection starts nothing new, lets the calls in flight finish, then rejects with the first error', async () => {
    const started: number[] = [];
    const finished: number[] = [];
    const run = mapPool([0, 1, 2, 3, 4, 5], 2, async (i) => {
      started.push(i);
      if (i === 0) {
        await sleep(1);
        throw new Error('bug on item 0');
      }
      await sleep(20);
      finished.push(i);
      return i;
    });
    await expect(run).rejects.toThrow('bug on item 0');
    expect(started).toEqual([0, 1]);
    expect(finished).toEqual([1]);
  });

  it('refuses a limit that is not a whole number of at least 1', async () => {
    await expect(mapPool([1], 0, async () => 1)).rejects.toThrow(RangeError);
    await expect(mapPool([1], 1.5, async () => 1)).rejects.toThrow(RangeError);
  });
});
