import { describe, expect, it } from 'vitest';
import type { RequestResult } from '../../../src/bench/client.js';
import type { LevelResult } from '../../../src/bench/load.js';
import { levelMetrics } from '../../../src/bench/metrics.js';
import { goodputSearch } from '../../../src/engine/bench.js';

/** A server model: TTFT grows past a knee at 6 req/s; the probe's requests carry that TTFT. */
function probeOf(knee: number, seen: number[]) {
  return async (rate: number): Promise<LevelResult> => {
    seen.push(rate);
    const ttft = rate <= knee ? 100 : 100 + (rate - knee) * 400;
    const results: RequestResult[] = Array.from({ length: 20 }, (_, i) => ({ ok: true, startedAt: i, ttftMs: ttft + i, ttfatMs: ttft + i, reasoningChunks: 0, e2eMs: ttft + 500, tokenTimes: [ttft], outputTokens: 10, promptTokens: 5, server: null }));
    return { plan: { concurrency: null, rate, requests: 20, maxDurationMs: 1000 }, metrics: levelMetrics(results, 1000), results,
      achieved: { meanConcurrency: 1, peakConcurrency: 2, reached: true, rate, warmedConnections: 1 }, window: { startedAt: 0, endedAt: 1000 }, fillers: 0 };
  };
}

describe('goodput search', () => {
  it('doubles from the single stream\'s pace until a rate fails the targets, then bisects to the highest that meets them', async () => {
    const seen: number[] = [];
    const result = await goodputSearch({ attainment: 0.9 }, 1000, probeOf(6, seen), { ttftMs: 300 });
    // 1, 2, 4, 8 (fails: TTFT 900), then 6 (passes), 7 (fails), 6.5 (fails: 300 + i ms for most) ...
    expect(seen.slice(0, 4)).toEqual([1, 2, 4, 8]);
    expect(result.maxRate).toBeGreaterThanOrEqual(6);
    expect(result.maxRate).toBeLessThan(6.5);
    expect(result.probes.length).toBeLessThanOrEqual(8);
    expect(result.probes.find((p) => p.rate === 8)).toMatchObject({ passed: false, attained: 0 });
  });

  it('says no rate met the targets when even the slowest probe misses them', async () => {
    const result = await goodputSearch({ attainment: 0.9 }, 1000, probeOf(0, []), { ttftMs: 100 });
    expect(result.maxRate).toBeNull();
    expect(result.probes.every((p) => !p.passed)).toBe(true);
  });
});
