import { readFile, writeFile } from 'node:fs/promises';
import { ExitCode, UsageError } from '../core/errors.js';
import type { BenchOptions, BenchReport } from '../engine/bench.js';
import type { ConnectOptions } from '../transport/connect.js';
import { shownPath, type SshFlags } from './ssh-options.js';

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
  rate?: string;
  timeout: number;
  firstTokenTimeout: number;
  stall: number;
  ttftTarget?: number;
  tpotTarget?: number;
  e2eTarget?: number;
  inputLen?: string;
  outputLen?: string;
  dataset?: string;
  seed: number;
  ignoreEos?: boolean;
  findMaxRate?: boolean;
  attainment: number;
  serverMetrics?: boolean;
  json?: boolean;
  report?: string;
}

export async function benchOptions(flags: BenchFlags, connect: ConnectOptions): Promise<Omit<BenchOptions, 'host' | 'onProgress'>> {
  if (flags.api !== 'ollama' && flags.api !== 'openai') throw new UsageError(`--api must be ollama or openai, got "${shownPath(flags.api)}"`);
  const concurrency = flags.concurrency.split(',').map((c) => Number(c.trim()));
  if (!concurrency.length || concurrency.some((c) => !Number.isInteger(c) || c < 1 || c > 1024)) throw new UsageError(`--concurrency takes whole numbers from 1 to 1024, e.g. 1,4,16,50; got "${shownPath(flags.concurrency)}"`);
  const { parseParamCount, bitsPerWeight } = await import('../bench/roofline.js');
  let modelSize: BenchOptions['modelSize'];
  // --quant is checked even without --params: a value no run would use is still a mistake to say at once.
  if (!((flags.quant ?? 'f16').toLowerCase() in bitsPerWeight)) throw new UsageError(`--quant: unknown format "${shownPath(String(flags.quant))}"`, { hint: `known: ${Object.keys(bitsPerWeight).join(', ')}` });
  if (flags.params) {
    const params = parseParamCount(flags.params);
    if (params === null) throw new UsageError(`--params takes a size such as 7B, 70B or 85M, got "${shownPath(flags.params)}"`);
    const quantization = (flags.quant ?? 'f16').toLowerCase();
    modelSize = { params, activeParams: params, quantization };
  }
  const { parseLength, parseShareGpt } = await import('../bench/workload.js');
  const rates = flags.rate === undefined ? [] : String(flags.rate).split(',').map((r) => Number(r.trim()));
  if (rates.some((r) => !Number.isFinite(r) || r <= 0 || r > 100_000)) throw new UsageError(`--rate takes request rates per second, e.g. 1,2,4; got "${shownPath(String(flags.rate))}"`);
  if (!(flags.attainment > 0 && flags.attainment <= 1)) throw new UsageError(`--attainment is a fraction of requests, e.g. 0.9; got "${flags.attainment}"`);
  if (flags.findMaxRate && !flags.ttftTarget && !flags.tpotTarget && !flags.e2eTarget) {
    throw new UsageError('--find-max-rate needs latency targets', { hint: 'give --ttft-target, --tpot-target or --e2e-target (milliseconds)' });
  }
  if (flags.dataset && flags.inputLen) throw new UsageError('--dataset gives the prompts: drop --input-len');
  let dataset: { name: string; entries: ReturnType<typeof parseShareGpt> } | undefined;
  if (flags.dataset) {
    const text = await readFile(flags.dataset, 'utf8').catch((e: NodeJS.ErrnoException) => {
      throw new UsageError(`--dataset ${shownPath(flags.dataset ?? '')}: cannot read it (${e.code ?? e.message})`);
    });
    dataset = { name: flags.dataset.split('/').at(-1) ?? flags.dataset, entries: parseShareGpt(text, shownPath(flags.dataset)) };
  }
  const workload = {
    input: flags.inputLen ? parseLength(flags.inputLen, '--input-len') : { kind: 'fixed' as const, n: flags.promptWords },
    output: flags.outputLen ? parseLength(flags.outputLen, '--output-len') : dataset ? null : { kind: 'fixed' as const, n: flags.maxTokens },
    seed: flags.seed,
    ...(dataset ? { dataset } : {}),
  };
  let targets: BenchOptions['targets'] = [];
  if (flags.profile) {
    const { loadProfiles } = await import('../profiles/load.js');
    const [profile] = await loadProfiles({ names: [flags.profile] });
    targets = profile?.benchmarks ?? [];
  }
  return {
    endpoint: flags.endpoint, api: flags.api, ...(flags.model ? { model: flags.model } : {}), ...(modelSize ? { modelSize } : {}),
    maxTokens: flags.maxTokens, promptWords: flags.promptWords, warmup: flags.warmup, singleStreamRequests: flags.requests,
    concurrency: concurrency.filter((c) => c > 1), ...(rates.length ? { rates } : {}), requestsPerLevel: flags.requestsPerLevel,
    workload, ...(flags.ignoreEos ? { ignoreEos: true } : {}),
    ...(flags.findMaxRate ? { goodputSearch: { attainment: flags.attainment } } : {}),
    ...(flags.serverMetrics === false ? { serverMetrics: false } : {}),
    levelMaxMs: flags.levelTime * 1000, timeoutMs: flags.timeout * 1000, firstTokenMs: flags.firstTokenTimeout * 1000, stallMs: flags.stall * 1000,
    latencyTargets: { ...(flags.ttftTarget ? { ttftMs: flags.ttftTarget } : {}), ...(flags.tpotTarget ? { tpotMs: flags.tpotTarget } : {}), ...(flags.e2eTarget ? { e2eMs: flags.e2eTarget } : {}) },
    targets,
    connect,
    ...(process.env['ZANURI_API_KEY'] ? { apiKey: process.env['ZANURI_API_KEY'] } : {}),
  };
}

const f = (v: number | null | undefined, d = 1): string => (v === null || v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(d));

type Level = BenchReport['levels'][number];

function levelLine(label: string, l: Level): string {
  const m = l.metrics;
  const reasoning = m.reasoningChunks > 0 ? `  answer after ${f(m.ttfatMs.p50)} ms` : '';
  const held = l.plan.concurrency !== null && l.plan.concurrency > 1
    ? `  held ${f(l.achieved.meanConcurrency)}${l.achieved.reached ? '' : ' (NOT REACHED)'}`
    : l.plan.concurrency === null ? `  achieved ${f(l.achieved.rate, 2)} req/s` : '';
  return `${label.padEnd(16)} ${String(m.completed).padStart(4)}/${String(m.requests).padEnd(4)} TTFT p50 ${f(m.ttftMs.p50).padStart(8)} ms  p95 ${f(m.ttftMs.p95).padStart(8)} ms${reasoning}  TPOT p50 ${f(m.tpotMs.p50, 2).padStart(7)} ms  E2E p50 ${f(m.e2eMs.p50).padStart(8)} ms  p95 ${f(m.e2eMs.p95).padStart(8)} ms  ${f(m.streamTokensPerS.p50).padStart(7)} tok/s/stream  ${f(m.aggregateTokensPerS).padStart(8)} tok/s total  ${f(m.requestsPerS, 2)} req/s${m.goodputPerS !== null ? `  goodput ${f(m.goodputPerS, 2)}/s` : ''}${held}`;
}

export function levelLabel(plan: { concurrency: number | null; rate?: number }): string {
  return plan.concurrency === null ? `Poisson ${Number((plan.rate ?? 0).toFixed(2))}/s` : `${plan.concurrency} concurrent`;
}

function targetsLine(t: BenchReport['latencyTargets']): string {
  const parts = [...(t.ttftMs !== undefined ? [`TTFT <= ${t.ttftMs} ms`] : []), ...(t.tpotMs !== undefined ? [`TPOT <= ${t.tpotMs} ms`] : []), ...(t.e2eMs !== undefined ? [`E2E <= ${t.e2eMs} ms`] : [])];
  return parts.length ? parts.join(', ') : 'none (goodput not computed)';
}

export function renderBench(r: BenchReport): string {
  const out = [`${r.host}  ${r.endpoint} (${r.api === 'ollama' ? 'Ollama API' : 'OpenAI-compatible API'})  model ${r.model ?? '?'}${r.modelSize ? ` (${r.modelSize.params}B ${r.modelSize.quantization})` : ''}${r.gpu ? `  GPU ${r.gpu.name} x${r.gpu.count}` : '  no NVIDIA GPU'}`];
  if (r.workload) out.push(`workload: ${r.workload}; goodput targets: ${targetsLine(r.latencyTargets)}; server /metrics: ${r.serverMetrics}`);
  if (r.singleStream) out.push(levelLine('single stream', r.singleStream));
  for (const l of r.levels) out.push(levelLine(levelLabel(l.plan), l));
  const server = r.singleStream?.metrics.serverTokensPerS.p50;
  if (server) out.push(`server-reported decode (eval_count / eval_duration): ${f(server)} tok/s per stream`);
  for (const l of [r.singleStream, ...r.levels]) {
    if (l?.server && l.server.samples) out.push(`server counters at ${levelLabel(l.plan)}: running max ${f(l.server.runningMax, 0)}, waiting max ${f(l.server.waitingMax, 0)}, KV cache max ${l.server.kvCacheUsageMax === null ? '–' : `${f(100 * l.server.kvCacheUsageMax)}%`}, preemptions ${f(l.server.preemptions, 0)}`);
  }
  if (r.goodput) {
    out.push(`goodput search (${Math.round(100 * r.goodput.attainment)}% of requests within targets): ${r.goodput.maxRate === null ? 'no probed rate met the targets' : `max ${f(r.goodput.maxRate, 2)} req/s`}; probes ${r.goodput.probes.map((p) => `${f(p.rate, 2)}/s ${Math.round(100 * p.attained)}% ${p.passed ? 'pass' : 'fail'}`).join(', ')}`);
  }
  if (r.roofline?.decodeBoundTokensPerS) {
    const achieved = r.singleStream?.metrics.streamTokensPerS.p50;
    out.push(`roofline: ${r.roofline.gpu} ${r.roofline.bandwidthGBs} GB/s / ${f(r.roofline.bytesPerTokenGB, 2)} GB per token = ${f(r.roofline.decodeBoundTokensPerS)} tok/s bound${achieved ? `; achieved ${f((100 * achieved) / r.roofline.decodeBoundTokensPerS)}%` : ''}`);
  }
  for (const t of r.targets) out.push(`target ${t.id}: ${t.status.toUpperCase()}  expected ${t.expected}, measured ${t.actual}${t.reason ? ` — ${t.reason}` : ''}`);
  const failures = new Map<string, number>();
  for (const l of [r.singleStream, ...r.levels]) for (const x of l?.metrics.failures ?? []) failures.set(`${x.kind}: ${x.message}`, (failures.get(`${x.kind}: ${x.message}`) ?? 0) + x.count);
  for (const [e, n] of failures) out.push(`failed requests (${n}): ${e}`);
  if (r.error) out.push(`${r.error.code}: ${r.error.message}${r.error.hint ? `\nhint: ${r.error.hint}` : ''}`);
  return out.join('\n');
}

/** The JSON report: metrics per level, without each request's token timeline. */
export function benchJson(r: BenchReport): unknown {
  const level = (l: Level | null) => (l ? { plan: l.plan, achieved: l.achieved, window: l.window, fillers: l.fillers, ...(l.server ? { server: l.server } : {}), metrics: l.metrics } : null);
  return { schemaVersion: 2, ...r, singleStream: level(r.singleStream), levels: r.levels.map(level) };
}

export function benchExitCode(r: BenchReport): number {
  if (r.error) return r.error.exitCode;
  if (!r.ok) return ExitCode.benchIncomplete;
  return r.targets.some((t) => t.status === 'fail' || t.status === 'unreachable') ? ExitCode.requirementFailed : ExitCode.ok;
}

export async function writeHtmlReport(file: string, r: BenchReport): Promise<void> {
  const { renderHtml } = await import('../bench/html.js');
  await writeFile(file, renderHtml(r, new Date().toISOString()));
}
