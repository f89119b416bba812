import { describe, expect, it } from 'vitest';
import type { RequestResult } from '../../../src/bench/client.js';
import { distribution, levelMetrics, percentile } from '../../../src/bench/metrics.js';

function result(ttft: number, gap: number, tokens: number, ok = true): RequestResult {
  const tokenTimes = Array.from({ length: tokens }, (_, i) => ttft + i * gap);
  return { ok, ...(ok ? {} : { error: 'HTTP 500: boom' }), startedAt: 0, ttftMs: ttft, ttfatMs: ttft, reasoningChunks: 0, e2eMs: ttft + (tokens - 1) * gap, tokenTimes, outputTokens: tokens, promptTokens: 10, server: null };
}

describe('metrics', () => {
  it('interpolates percentiles like numpy', () => {
    expect(percentile([1, 2, 3, 4], 50)).toBe(2.5);
    expect(percentile([10], 99)).toBe(10);
    expect(percentile([], 50)).toBeNull();
    expect(distribution([1, 2, 3, 4, 100]).p95).toBeCloseTo(80.8);
  });

  it('computes TTFT, TPOT, ITL, per-stream and aggregate throughput from token arrival times', () => {
    // Two streams: 100 ms to the first token, then a token every 10 ms (100 tok/s per stream).
    const m = levelMetrics([result(100, 10, 11), result(100, 10, 11)], 1000);
    expect(m.ttftMs.p50).toBe(100);
    expect(m.tpotMs.p50).toBeCloseTo(10);
    expect(m.itlMs.p95).toBeCloseTo(10);
    expect(m.streamTokensPerS.p50).toBeCloseTo(100);
    expect(m.aggregateTokensPerS).toBeCloseTo(22);
    expect(m.requestsPerS).toBeCloseTo(2);
    expect(m.goodputPerS).toBeNull();
  });

  it('counts goodput only for requests within every latency target, and keeps errors', () => {
    const m = levelMetrics([result(100, 10, 11), result(900, 10, 11), result(100, 10, 11, false)], 2000, { ttftMs: 500 });
    expect(m.completed).toBe(2);
    expect(m.failed).toBe(1);
    expect(m.errors).toEqual(['HTTP 500: boom']);
    expect(m.goodputPerS).toBeCloseTo(0.5);
  });
});
