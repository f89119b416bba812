import { describe, expect, it } from 'vitest';
import { batchSizes, defaultForks } from '../../../src/engine/pool.js';

describe('rolling batches (serial)', () => {
  it('cut the hosts into batches of a size, with a smaller last one', () => {
    expect(batchSizes(10, 4)).toEqual([4, 4, 2]);
    expect(batchSizes(3, 5)).toEqual([3]);
  });

  it('take a percentage of all hosts, rounded down and at least one', () => {
    expect(batchSizes(20, '25%')).toEqual([5, 5, 5, 5]);
    expect(batchSizes(3, '10%')).toEqual([1, 1, 1]);
  });

  it('make one batch without serial and none for no hosts', () => {
    expect(batchSizes(7, undefined)).toEqual([7]);
    expect(batchSizes(0, 2)).toEqual([]);
  });

  it('refuse a batch size that is not a positive whole number or a percentage up to 100', () => {
    for (const bad of [0, '0', '1.5', '-2', '0%', '101%', 'x']) expect(() => batchSizes(5, bad), String(bad)).toThrow(RangeError);
  });
});

describe('the default number of forks', () => {
  it('is 8 per core, at least 10 and at most 50', () => {
    expect(defaultForks(1)).toBe(10);
    expect(defaultForks(2)).toBe(16);
    expect(defaultForks(64)).toBe(50);
  });
});
