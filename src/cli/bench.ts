import { writeFile } from 'node:fs/promises';
import { ExitCode, UsageError } from '../core/errors.js';
import type { BenchOptions, BenchReport } from '../engine/bench.js';
import type { LevelMetrics } from '../bench/metrics.js';
import type { ConnectOptions } from '../transport/connect.js';
import type { SshFlags } from './ssh-options.js';

export interface BenchFlags extends SshFlags {
  host?: string[];
  endpoint: string;
  api: string;
  model?: string;
  params?: string;
  quant?: string;
  profile?: string;
  maxTokens: number;
  promptWords: number;
  warmup: number;
  requests: number;
  concurrency: string;
  requestsPerLevel: number;
  levelTime: number;
  rate?: number;
  timeout: number;
  stall: number;
  ttftTarget?: number;
  tpotTarget?: number;
  json?: boolean;
  report?: string;
}

export async function benchOptions(flags: BenchFlags, connect: ConnectOptions): Promise<Omit<BenchOptions, 'host' | 'onProgress'>> {
  if (flags.api !== 'ollama' && flags.api !== 'openai') throw new UsageError(`--api must be ollama or openai, got "${flags.api}"`);
  const concurrency = flags.concurrency.split(',').map((c) => Number(c.trim()));
  if (!concurrency.length || concurrency.some((c) => !Number.isInteger(c) || c < 1 || c > 1024)) throw new UsageError(`--concurrency takes whole numbers from 1 to 1024, e.g. 1,4,16,50; got "${flags.concurrency}"`);
  const { parseParamCount, bitsPerWeight } = await import('../bench/roofline.js');
  let modelSize: BenchOptions['modelSize'];
  if (flags.params) {
    const params = parseParamCount(flags.params);
    if (params === null) throw new UsageError(`--params takes a size such as 7B, 70B or 85M, got "${flags.params}"`);
    const quantization = (flags.quant ?? 'f16').toLowerCase();
    if (!(quantization in bitsPerWeight)) throw new UsageError(`--quant: unknown format "${flags.quant}"`, { hint: `known: ${Object.keys(bitsPerWeight).join(', ')}` });
    modelSize = { params, activeParams: params, quantization };
  }
  let targets: BenchOptions['targets'] = [];
  if (flags.profile) {
    const { loadProfiles } = await import('../profiles/load.js');
    const [profile] = await loadProfiles({ names: [flags.profile] });
    targets = profile?.benchmarks ?? [];
  }
  return {
    endpoint: flags.endpoint, api: flags.api, ...(flags.model ? { model: flags.model } : {}), ...(modelSize ? { modelSize } : {}),
    maxTokens: flags.maxTokens, promptWords: flags.promptWords, warmup: flags.warmup, singleStreamRequests: flags.requests,
    concurrency: concurrency.filter((c) => c > 1), ...(flags.rate ? { rate: flags.rate } : {}), requestsPerLevel: flags.requestsPerLevel,
    levelMaxMs: flags.levelTime * 1000, timeoutMs: flags.timeout * 1000, stallMs: flags.stall * 1000,
    latencyTargets: { ...(flags.ttftTarget ? { ttftMs: flags.ttftTarget } : {}), ...(flags.tpotTarget ? { tpotMs: flags.tpotTarget } : {}) },
    targets,
    connect,
    ...(process.env['ZANURI_API_KEY'] ? { apiKey: process.env['ZANURI_API_KEY'] } : {}),
  };
}

const f = (v: number | null, d = 1): string => (v === null ? '–' : v.toFixed(d));

function levelLine(label: string, m: LevelMetrics): string {
  return `${label.padEnd(16)} ${String(m.completed).padStart(4)}/${String(m.requests).padEnd(4)} TTFT p50 ${f(m.ttftMs.p50).padStart(8)} ms  p95 ${f(m.ttftMs.p95).padStart(8)} ms  TPOT p50 ${f(m.tpotMs.p50, 2).padStart(7)} ms  E2E p95 ${f(m.e2eMs.p95).padStart(8)} ms  ${f(m.streamTokensPerS.p50).padStart(7)} tok/s/stream  ${f(m.aggregateTokensPerS).padStart(8)} tok/s total  ${f(m.requestsPerS, 2)} req/s`;
}

export function levelLabel(plan: { concurrency: number | null; rate?: number }): string {
  return plan.concurrency === null ? `Poisson ${plan.rate}/s` : `${plan.concurrency} concurrent`;
}

export function renderBench(r: BenchReport): string {
  const out = [`${r.host}  ${r.endpoint}  model ${r.model ?? '?'}${r.modelSize ? ` (${r.modelSize.params}B ${r.modelSize.quantization})` : ''}${r.gpu ? `  GPU ${r.gpu.name} x${r.gpu.count}` : '  no NVIDIA GPU'}`];
  if (r.singleStream) out.push(levelLine('single stream', r.singleStream.metrics));
  for (const l of r.levels) out.push(levelLine(levelLabel(l.plan), l.metrics));
  const server = r.singleStream?.metrics.serverTokensPerS.p50;
  if (server) out.push(`server-reported decode (eval_count / eval_duration): ${f(server)} tok/s per stream`);
  if (r.roofline?.decodeBoundTokensPerS) {
    const achieved = r.singleStream?.metrics.streamTokensPerS.p50;
    out.push(`roofline: ${r.roofline.gpu} ${r.roofline.bandwidthGBs} GB/s / ${f(r.roofline.bytesPerTokenGB, 2)} GB per token = ${f(r.roofline.decodeBoundTokensPerS)} tok/s bound${achieved ? `; achieved ${f((100 * achieved) / r.roofline.decodeBoundTokensPerS)}%` : ''}`);
  }
  for (const t of r.targets) out.push(`target ${t.id}: ${t.status.toUpperCase()}  expected ${t.expected}, measured ${t.actual}${t.reason ? ` — ${t.reason}` : ''}`);
  const errors = [r.singleStream, ...r.levels].flatMap((l) => l?.metrics.errors ?? []);
  for (const e of [...new Set(errors)]) out.push(`request error: ${e}`);
  if (r.error) out.push(`${r.error.code}: ${r.error.message}${r.error.hint ? `\nhint: ${r.error.hint}` : ''}`);
  return out.join('\n');
}

/** The JSON report: metrics per level, without each request's token timeline. */
export function benchJson(r: BenchReport): unknown {
  const level = (l: BenchReport['levels'][number] | null) => (l ? { plan: l.plan, metrics: l.metrics } : null);
  return { schemaVersion: 1, ...r, singleStream: level(r.singleStream), levels: r.levels.map(level) };
}

export function benchExitCode(r: BenchReport): number {
  if (r.error) return r.error.exitCode;
  if (!r.ok) return ExitCode.benchIncomplete;
  return r.targets.some((t) => t.status === 'fail' || t.status === 'unreachable') ? ExitCode.requirementFailed : ExitCode.ok;
}

export async function writeHtmlReport(file: string, r: BenchReport): Promise<void> {
  const { renderHtml } = await import('../bench/html.js');
  await writeFile(file, renderHtml({
    host: r.host, endpoint: r.endpoint, model: r.model, generatedAt: new Date().toISOString(),
    singleStream: r.singleStream?.metrics ?? null,
    levels: r.levels.map((l) => ({ label: levelLabel(l.plan), concurrency: l.plan.concurrency, metrics: l.metrics })),
    roofline: r.roofline, targets: r.targets, ...(r.error ? { error: r.error.message } : {}),
  }));
}
