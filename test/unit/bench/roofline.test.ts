import { describe, expect, it } from 'vitest';
import { gpuSpec, parseParamCount, roofline } from '../../../src/bench/roofline.js';
import { judgeTargets } from '../../../src/bench/targets.js';
import type { LevelResult } from '../../../src/bench/load.js';
import { levelMetrics } from '../../../src/bench/metrics.js';

describe('roofline', () => {
  it('knows the bandwidth of GPUs by their nvidia-smi names', () => {
    expect(gpuSpec('NVIDIA H100 80GB HBM3')?.bandwidthGBs).toBe(3350);
    expect(gpuSpec('NVIDIA H100 PCIe')?.bandwidthGBs).toBe(2000);
    expect(gpuSpec('NVIDIA A100-SXM4-80GB')?.bandwidthGBs).toBe(2039);
    expect(gpuSpec('NVIDIA GeForce RTX 4090')?.bandwidthGBs).toBe(1008);
    expect(gpuSpec('NVIDIA GeForce RTX 3090')?.bandwidthGBs).toBe(936);
    expect(gpuSpec('Matrox G200eW')).toBeNull();
  });

  it('has a sourced entry for every GPU the profiles and the issue name, by the names nvidia-smi prints', () => {
    const names: Record<string, [number, number]> = {
      'NVIDIA H200': [4800, 141], 'NVIDIA H200 NVL': [4800, 141], 'NVIDIA H100 80GB HBM3': [3350, 80], 'NVIDIA H100 PCIe': [2000, 80],
      'NVIDIA A100-SXM4-40GB': [1555, 40], 'NVIDIA A100-PCIE-40GB': [1555, 40], 'NVIDIA A100-SXM4-80GB': [2039, 80], 'NVIDIA A100 80GB PCIe': [1935, 80],
      'NVIDIA L40S': [864, 48], 'NVIDIA GeForce RTX 4090': [1008, 24], 'NVIDIA GeForce RTX 3090': [936, 24],
    };
    for (const [name, [bandwidth, vram]] of Object.entries(names)) {
      const spec = gpuSpec(name);
      expect(spec, name).toMatchObject({ bandwidthGBs: bandwidth, vramGB: vram });
      expect(spec?.source, name).toMatch(/NVIDIA .*(datasheet|specifications)/);
    }
  });

  it('reads model sizes as servers print them', () => {
    expect(parseParamCount('7B')).toBe(7);
    expect(parseParamCount('70.6B')).toBe(70.6);
    expect(parseParamCount('85M')).toBeCloseTo(0.085);
    expect(parseParamCount('8x7B')).toBe(56);
    expect(parseParamCount('big')).toBeNull();
  });

  it('bounds single-stream decode by bandwidth over the weights read per token', () => {
    const line = roofline({ params: 7, activeParams: 7, quantization: 'q4_k_m' }, 'NVIDIA GeForce RTX 3090');
    expect(line.weightsGB).toBeCloseTo(4.24, 1);
    expect(line.decodeBoundTokensPerS).toBeCloseTo(936 / 4.24, -1);
    expect(line.fits).toBe(true);
  });

  it('says a 70B model at 4 bits does not fit a 24 GB card', () => {
    expect(roofline({ params: 70, activeParams: 70, quantization: 'q4_k_m' }, 'NVIDIA GeForce RTX 4090').fits).toBe(false);
  });
});

describe('judgeTargets', () => {
  const single = (tokPerS: number): LevelResult => {
    const gap = 1000 / tokPerS;
    const tokenTimes = Array.from({ length: 50 }, (_, i) => 50 + i * gap);
    const r = { ok: true, startedAt: 0, ttftMs: 50, ttfatMs: 50, reasoningChunks: 0, e2eMs: 50 + 49 * gap, tokenTimes, outputTokens: 50, promptTokens: 10, server: null };
    return { plan: { concurrency: 1, requests: 1, maxDurationMs: 1000 }, metrics: levelMetrics([r], r.e2eMs), results: [r], achieved: { meanConcurrency: 1, peakConcurrency: 1, reached: true, rate: null, warmedConnections: 1 }, window: { startedAt: 0, endedAt: r.e2eMs }, fillers: 0 };
  };
  const base = { gpuName: 'NVIDIA GeForce RTX 4090', gpuCount: 1, vramBytes: 24564 * 1024 * 1024, levels: [] };

  it('calls the seed\'s 70B-on-a-4090 target unreachable and says why, instead of a bare fail', () => {
    const [verdict] = judgeTargets([{ id: 'decode-70b', model: '70B', metric: 'decode_tokens_per_s', min: 85, source: 's' }], { ...base, model: null, singleStream: null });
    expect(verdict).toMatchObject({ status: 'unreachable' });
    expect(verdict?.reason).toMatch(/needs about 42 GB .* 26 GB of GPU memory/);
  });

  it('calls a target above the bandwidth bound unreachable', () => {
    const [verdict] = judgeTargets([{ id: 'decode-34b', model: '34B', metric: 'decode_tokens_per_s', min: 60, source: 's' }], { ...base, model: null, singleStream: null });
    expect(verdict?.status).toBe('unreachable');
    expect(verdict?.reason).toMatch(/cannot exceed 49 tok\/s/);
  });

  it('passes or fails a reachable target on the measurement, and skips targets for another model size', () => {
    const model = { params: 7, activeParams: 7, quantization: 'q4_k_m' };
    const target = { id: 'decode-7b', model: '7B', metric: 'decode_tokens_per_s', min: 150, source: 's' };
    expect(judgeTargets([target], { ...base, model, singleStream: single(180) })[0]?.status).toBe('pass');
    expect(judgeTargets([target], { ...base, model, singleStream: single(120) })[0]?.status).toBe('fail');
    expect(judgeTargets([{ ...target, model: '13B', min: 100 }], { ...base, model, singleStream: single(180) })[0]?.status).toBe('not-measured');
  });
});

describe('judging a concurrency target', () => {
  const level = (reached: boolean): LevelResult => {
    const r = { ok: true, startedAt: 0, ttftMs: 100, ttfatMs: 100, reasoningChunks: 0, e2eMs: 1770, tokenTimes: [100, 1770], outputTokens: 2, promptTokens: 10, server: null };
    return { plan: { concurrency: 50, requests: 150, maxDurationMs: 1000 }, metrics: levelMetrics([r], 1770), results: [r],
      achieved: { meanConcurrency: reached ? 49.9 : 20, peakConcurrency: reached ? 50 : 20, reached, rate: null, warmedConnections: 50 }, window: { startedAt: 0, endedAt: 1770 }, fillers: 0 };
  };
  const target = { id: 'inference-p95-latency', model: 'all production models', mode: 'aggregate' as const, metric: 'p95_latency_ms', max: 2000, concurrency: 50, source: 's' };
  const ctx = { gpuName: null, gpuCount: 0, vramBytes: null, model: null, singleStream: null };

  it('refuses to judge "p95 <= 2 s at 50 concurrent" from a level that held only 20 streams, and says so', () => {
    const [verdict] = judgeTargets([target], { ...ctx, levels: [level(false)] });
    expect(verdict).toMatchObject({ status: 'not-measured' });
    expect(verdict?.reason).toMatch(/did not hold 50 streams \(mean 20.0, peak 20 in flight\)/);
  });

  it('judges it from a level that held its 50 streams', () => {
    expect(judgeTargets([target], { ...ctx, levels: [level(true)] })[0]).toMatchObject({ status: 'pass', actual: '1770.0' });
  });
});

describe('the seed\'s inference targets (evolution-tier3) on an RTX 4090', () => {
  it('are labelled precisely, and the impossible ones say why', async () => {
    const { loadProfiles } = await import('../../../src/profiles/load.js');
    const [profile] = await loadProfiles({ names: ['evolution-tier3'] });
    const verdicts = judgeTargets(profile?.benchmarks ?? [], { gpuName: 'NVIDIA GeForce RTX 4090', gpuCount: 1, vramBytes: 24564 * 1024 * 1024, levels: [], model: null, singleStream: null });
    const byId = Object.fromEntries(verdicts.map((v) => [v.id, v]));
    expect(byId['decode-70b']).toMatchObject({ status: 'unreachable', expected: '>= 85 (70B, q8_0, single-stream)' });
    expect(byId['decode-70b']?.reason).toMatch(/needs about 74 GB at q8_0; this host has 26 GB/);
    expect(byId['decode-8x7b-moe']?.status).toBe('unreachable');
    expect(byId['decode-34b']?.status).toBe('unreachable');
    expect(byId['decode-7b']).toMatchObject({ status: 'not-measured', expected: '>= 150 (7B, q4_k_m, single-stream)' });
    expect(byId['inference-rps']?.expected).toMatch(/aggregate, 50 concurrent/);
  });
});
