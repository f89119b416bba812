import type { BenchmarkTarget } from '../profiles/types.js';
import type { LevelResult } from './load.js';
import { parseParamCount, roofline, type ModelSize } from './roofline.js';

export interface TargetVerdict {
  id: string;
  metric: string;
  expected: string;
  actual: string;
  /** unreachable: no run on this hardware could meet it (does not fit, or beyond the bandwidth bound). */
  status: 'pass' | 'fail' | 'unreachable' | 'not-measured';
  reason?: string;
  source: string;
}

export interface BenchContext {
  /** The benchmarked model, when its size is known. */
  model: ModelSize | null;
  gpuName: string | null;
  gpuCount: number;
  vramBytes: number | null;
  singleStream: LevelResult | null;
  levels: readonly LevelResult[];
}

/** Assumed when a target names no quantization: 4-bit is the usual way such targets are met on one card; the report's label says so. */
const defaultQuantization = 'q4_k_m';

function closestLevel(levels: readonly LevelResult[], concurrency: number): LevelResult | null {
  const closed = levels.filter((l) => l.plan.concurrency !== null);
  return closed.find((l) => l.plan.concurrency === concurrency) ?? null;
}

/** Judges a profile's benchmark targets: measured ones pass or fail; impossible ones say why instead. */
export function judgeTargets(targets: readonly BenchmarkTarget[], ctx: BenchContext): TargetVerdict[] {
  return targets.map((t): TargetVerdict => {
    const bound = t.min !== undefined ? `>= ${t.min}` : `<= ${t.max}`;
    const quantization = t.quantization ?? defaultQuantization;
    const mode = t.mode ?? (t.concurrency && t.concurrency > 1 ? 'aggregate' : 'single-stream');
    const label = [t.model, quantization, mode, ...(t.concurrency ? [`${t.concurrency} concurrent`] : []),
      ...(t.inputTokens ? [`${t.inputTokens} in`] : []), ...(t.outputTokens ? [`${t.outputTokens} out`] : [])].join(', ');
    const base = { id: t.id, metric: t.metric, expected: `${bound} (${label})`, source: t.source };
    const params = parseParamCount(t.model.replace(/\s*MoE$/i, ''));
    if (params !== null) {
      const size: ModelSize = { params, activeParams: t.activeParams ?? params, quantization };
      const line = roofline(size, ctx.gpuName, ctx.gpuCount, ctx.vramBytes);
      if (line.fits === false) {
        return { ...base, actual: 'not run', status: 'unreachable', reason: `a ${t.model} model needs about ${line.weightsGB.toFixed(0)} GB at ${quantization}; this host has ${line.vramGB?.toFixed(0)} GB of GPU memory` };
      }
      if (t.metric === 'decode_tokens_per_s' && t.min !== undefined && line.decodeBoundTokensPerS !== null && mode === 'single-stream' && t.min > line.decodeBoundTokensPerS) {
        return { ...base, actual: 'not run', status: 'unreachable', reason: `one stream of a ${t.model} model at ${quantization} cannot exceed ${line.decodeBoundTokensPerS.toFixed(0)} tok/s on ${line.gpu} (${line.bandwidthGBs} GB/s / ${line.bytesPerTokenGB.toFixed(1)} GB read per token)` };
      }
      if (!ctx.model) {
        return { ...base, actual: 'not measured', status: 'not-measured', reason: `the benchmarked model's size is unknown, so it cannot be compared with a ${t.model} target (pass --params and --quant)` };
      }
      if (Math.abs(ctx.model.params - params) / params > 0.25) {
        return { ...base, actual: 'not measured', status: 'not-measured', reason: `this run benchmarked a ${ctx.model.params.toFixed(1)}B model; the target is for ${t.model}` };
      }
    }
    const level = t.concurrency ? closestLevel(ctx.levels, t.concurrency) : ctx.singleStream;
    if (!level || level.metrics.completed === 0) {
      return { ...base, actual: 'not measured', status: 'not-measured', reason: t.concurrency ? `no load level at concurrency ${t.concurrency} was run (use --concurrency ${t.concurrency})` : 'no single-stream run completed' };
    }
    if (t.concurrency && !level.achieved.reached) {
      return { ...base, actual: 'not measured', status: 'not-measured', reason: `the level did not hold ${t.concurrency} streams (mean ${level.achieved.meanConcurrency.toFixed(1)}, peak ${level.achieved.peakConcurrency} in flight), so it cannot speak for ${t.concurrency} concurrent` };
    }
    const m = level.metrics;
    const value = t.metric === 'decode_tokens_per_s' ? (mode === 'aggregate' ? m.aggregateTokensPerS : m.streamTokensPerS.p50)
      : t.metric === 'ttft_ms' ? m.ttftMs.p50
        : t.metric === 'p95_latency_ms' ? m.e2eMs.p95
          : m.requestsPerS;
    if (value === null) return { ...base, actual: 'not measured', status: 'not-measured', reason: 'the run produced no value for this metric' };
    const met = t.min !== undefined ? value >= t.min : value <= (t.max as number);
    return { ...base, actual: value.toFixed(1), status: met ? 'pass' : 'fail' };
  });
}
