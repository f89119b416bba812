import { ExitCode, UnreachableError, UsageError, ZanuriError, errorView } from '../core/errors.js';
import { HttpStatusError, jsonRequest, runRequest, type Api, type RequestResult } from '../bench/client.js';
import { runLevel, type LevelResult, type LevelSpec } from '../bench/load.js';
import { hasTargets, meetsTargets, type LatencyTargets } from '../bench/metrics.js';
import { MetricsSampler } from '../bench/server-metrics.js';
import { Workload, type WorkloadSpec } from '../bench/workload.js';
import { parseParamCount, roofline, type ModelSize, type Roofline } from '../bench/roofline.js';
import { judgeTargets, type TargetVerdict } from '../bench/targets.js';
import { gatherHostFacts } from '../facts/host.js';
import type { BenchmarkTarget } from '../profiles/types.js';
import { connect, type ConnectOptions } from '../transport/connect.js';

export interface BenchOptions {
  /** The host the server runs on (reached over SSH); null: this machine. */
  host: string | null;
  /** The endpoint as the host sees it, e.g. http://127.0.0.1:11434. */
  endpoint: string;
  api: Api;
  model?: string;
  /** Model size when the server cannot tell (OpenAI-compatible servers), e.g. { params: 7, quantization: 'q4_k_m' }. */
  modelSize?: ModelSize;
  /** Output tokens per request and prompt words, when no workload is given. */
  maxTokens: number;
  promptWords: number;
  /** Prompt and output lengths (fixed, random or from a dataset), seeded; default: promptWords in, maxTokens out. */
  workload?: WorkloadSpec;
  /** Ask OpenAI-compatible servers to generate every requested token (`ignore_eos`). */
  ignoreEos?: boolean;
  warmup: number;
  singleStreamRequests: number;
  concurrency: number[];
  /** Poisson arrival rate (requests/s) for an open-loop level, in addition to the concurrency sweep. */
  rate?: number;
  /** A sweep of Poisson rates (requests/s), one open-loop level each. */
  rates?: number[];
  /** Find the highest Poisson rate at which `attainment` of requests meet the latency targets. */
  goodputSearch?: { attainment: number; maxProbes?: number };
  requestsPerLevel: number;
  /** A closed level measures at least this many times its concurrency in requests, so it holds it. */
  roundsPerLevel?: number;
  levelMaxMs: number;
  timeoutMs: number;
  /** No token this long after sending: failed (the warm-up's first request waits the whole timeout: the model may be loading). */
  firstTokenMs: number;
  stallMs: number;
  /** Sample the server's Prometheus /metrics during each level (default: when it exposes them). */
  serverMetrics?: boolean;
  latencyTargets: LatencyTargets;
  targets: BenchmarkTarget[];
  connect: ConnectOptions;
  apiKey?: string;
  onProgress?: (message: string) => void;
}

export interface BenchReport {
  host: string;
  endpoint: string;
  api: Api;
  model: string | null;
  modelSize: ModelSize | null;
  gpu: { name: string | null; count: number; vramBytes: number | null } | null;
  roofline: Roofline | null;
  singleStream: LevelResult | null;
  levels: LevelResult[];
  targets: TargetVerdict[];
  /** What the run asked: lengths, seed, dataset. */
  workload: string;
  /** Latency targets a request must meet to count towards goodput. */
  latencyTargets: LatencyTargets;
  /** The goodput search, when asked: every probe and the highest rate that met the targets. */
  goodput?: GoodputSearch;
  /** Whether the server's /metrics were sampled, or why not. */
  serverMetrics: 'sampled' | 'not exposed' | 'off';
  ok: boolean;
  error?: { code: string; message: string; hint?: string; exitCode: number };
  durationMs: number;
}

/** The model server answered, but not with a usable generation: not unreachable, and the report says what it said. */
export class ModelServerError extends ZanuriError {
  readonly code = 'MODEL_SERVER';
  readonly exitCode = ExitCode.benchIncomplete;
}

export interface GoodputProbe {
  rate: number;
  achievedRate: number | null;
  requests: number;
  /** Fraction of requests that completed within every latency target. */
  attained: number;
  passed: boolean;
}

export interface GoodputSearch {
  attainment: number;
  probes: GoodputProbe[];
  /** The highest rate probed that met the targets; null when none did. */
  maxRate: number | null;
}

/** Why the warm-up failed, in the words an operator acts on; only "no answer at all" is unreachable. */
export function warmupError(r: RequestResult, endpoint: string, host: string): ZanuriError {
  const what = `the warm-up request to ${endpoint} on ${host} failed: ${r.error ?? 'unknown error'}`;
  if (r.failure === 'connect') return new UnreachableError(what, { hint: `is a model server running at ${endpoint} on ${host}, and is this its address as the host sees it?` });
  if (r.failure === 'http') {
    const status = r.status ?? 0;
    const hint = status === 401 || status === 403 ? 'the server wants a key: set ZANURI_API_KEY'
      : status === 404 ? 'the server answered but has no such model or path: check --model and --api (ollama or openai)'
        : status === 400 || status === 422 ? 'the server rejected the request: check --api, --max-tokens/--output-len against its context length'
          : 'the server is running but failed the request: see its log';
    return new ModelServerError(what, { hint });
  }
  const hint = r.failure === 'stall' || r.failure === 'first-token' ? 'the server accepted the request and stopped producing tokens: see its log (out of memory, a hung worker?)'
    : r.failure === 'protocol' ? 'the server does not speak this API: check --api (ollama or openai) and --endpoint'
      : 'see the server\'s log';
  return new ModelServerError(what, { hint });
}

async function pickModel(baseUrl: string, api: Api, wanted: string | undefined, timeoutMs: number, apiKey?: string): Promise<string> {
  const names = api === 'ollama'
    ? ((await jsonRequest('GET', new URL('/api/tags', baseUrl), undefined, timeoutMs)) as { models?: Array<{ name?: string; model?: string }> }).models?.map((m) => m.name ?? m.model ?? '') ?? []
    : ((await jsonRequest('GET', new URL('/v1/models', baseUrl), undefined, timeoutMs, apiKey)) as { data?: Array<{ id?: string }> }).data?.map((m) => m.id ?? '') ?? [];
  const available = names.filter(Boolean);
  if (wanted) {
    if (!available.includes(wanted) && !available.includes(`${wanted}:latest`)) {
      throw new UsageError(`model "${wanted}" is not served at the endpoint`, { hint: available.length ? `it serves: ${available.join(', ')}` : 'it serves no model yet' });
    }
    return wanted;
  }
  const first = available[0];
  if (!first) throw new UsageError('the endpoint serves no model', { hint: 'load one (ollama pull NAME) or pass --model' });
  return first;
}

async function ollamaModelSize(baseUrl: string, model: string, timeoutMs: number): Promise<ModelSize | null> {
  try {
    const show = (await jsonRequest('POST', new URL('/api/show', baseUrl), { model }, timeoutMs)) as { details?: { parameter_size?: string; quantization_level?: string } };
    const params = show.details?.parameter_size ? parseParamCount(show.details.parameter_size) : null;
    const quantization = show.details?.quantization_level?.toLowerCase();
    return params !== null && quantization ? { params, activeParams: params, quantization } : null;
  } catch {
    return null;
  }
}

/**
 * Benchmarks an inference server: warm-up, a single-stream run, then a load sweep (and an optional
 * Poisson-rate level), each bounded in requests and time, then judged against profile targets and
 * the hardware's roofline. Errors end in a partial report, never a hang.
 */
export async function bench(options: BenchOptions): Promise<BenchReport> {
  const started = performance.now();
  const report: BenchReport = {
    host: options.host ?? 'local', endpoint: options.endpoint, api: options.api, model: options.model ?? null, modelSize: options.modelSize ?? null,
    gpu: null, roofline: null, singleStream: null, levels: [], targets: [], ok: false, durationMs: 0,
    workload: '', latencyTargets: options.latencyTargets, serverMetrics: options.serverMetrics === false ? 'off' : 'not exposed',
  };
  if (options.goodputSearch && !hasTargets(options.latencyTargets)) {
    throw new UsageError('the goodput search needs latency targets', { hint: 'give --ttft-target, --tpot-target or --e2e-target (milliseconds)' });
  }
  const progress = options.onProgress ?? (() => undefined);
  let endpoint: URL;
  try {
    endpoint = new URL(options.endpoint);
    if (!/^https?:$/.test(endpoint.protocol)) throw new Error('not http');
  } catch {
    throw new UsageError(`--endpoint ${JSON.stringify(options.endpoint)} is not an http(s) URL`);
  }
  const transport = await connect(options.host, options.connect);
  try {
    const facts = await gatherHostFacts(transport);
    const gpus = facts.gpus.devices.filter((d) => d.vendor === 'nvidia');
    report.gpu = gpus.length ? { name: gpus[0]?.name ?? null, count: gpus.length, vramBytes: gpus[0]?.vramBytes ?? null } : null;
    let baseUrl = endpoint.origin;
    if (transport.forwardLocal) {
      const port = Number(endpoint.port || (endpoint.protocol === 'https:' ? 443 : 80));
      const forward = await transport.forwardLocal(endpoint.hostname, port);
      baseUrl = `${endpoint.protocol}//127.0.0.1:${forward.port}`;
    }
    const model = await pickModel(baseUrl, options.api, options.model, Math.min(options.timeoutMs, options.firstTokenMs), options.apiKey).catch((error: unknown) => {
      if (error instanceof ZanuriError) throw error;
      if (error instanceof HttpStatusError) {
        throw new ModelServerError(`the server at ${options.endpoint} on ${report.host} answered, but not as an ${options.api === 'ollama' ? 'Ollama' : 'OpenAI-compatible'} server: ${error.message}`, { hint: 'check --api (ollama or openai) and --endpoint' });
      }
      throw new UnreachableError(`cannot use the endpoint ${options.endpoint} on ${report.host}: ${(error as Error).message}`, { hint: 'is the model server running, and is this its address as the host sees it?' });
    });
    report.model = model;
    report.modelSize ??= options.api === 'ollama' ? await ollamaModelSize(baseUrl, model, options.timeoutMs) : null;
    if (report.modelSize) report.roofline = roofline(report.modelSize, report.gpu?.name ?? null, 1, report.gpu?.vramBytes ?? null);

    const spec: LevelSpec = {
      api: options.api, baseUrl, model, timeoutMs: options.timeoutMs, firstTokenMs: options.firstTokenMs, stallMs: options.stallMs,
      ...(options.ignoreEos ? { ignoreEos: true } : {}), ...(options.apiKey ? { apiKey: options.apiKey } : {}),
    };
    const workload = new Workload(options.workload ?? { input: { kind: 'fixed', n: options.promptWords }, output: { kind: 'fixed', n: options.maxTokens }, seed: 0 });
    report.workload = workload.describe();
    const work = () => workload.next();
    let sampler: MetricsSampler | undefined;
    if (options.serverMetrics !== false) {
      const probe = new MetricsSampler(baseUrl, { ...(options.apiKey ? { apiKey: options.apiKey } : {}) });
      if (await probe.probe()) sampler = probe;
      report.serverMetrics = sampler ? 'sampled' : 'not exposed';
    }
    const levelOptions = sampler ? { sampler } : {};

    // Warm-up: one request at a time, stopping at the first failure, which it names. The first may load the model.
    for (let i = 0; i < options.warmup; i += 1) {
      progress(i === 0 ? `warm-up: request 1 of ${options.warmup} (waits up to ${Math.round(options.timeoutMs / 1000)} s for the first token: the server may be loading the model)` : `warm-up: request ${i + 1} of ${options.warmup}`);
      const r = await runRequest({ ...spec, ...work(), ...(i === 0 ? { firstTokenMs: options.timeoutMs } : {}) });
      if (!r.ok) throw warmupError(r, options.endpoint, report.host);
    }
    progress(`single stream: ${options.singleStreamRequests} request(s)`);
    report.singleStream = await runLevel(spec, { concurrency: 1, requests: options.singleStreamRequests, maxDurationMs: options.levelMaxMs }, work, options.latencyTargets, levelOptions);
    const rounds = options.roundsPerLevel ?? 3;
    for (const c of options.concurrency) {
      const requests = Math.max(options.requestsPerLevel, rounds * c);
      progress(`load: ${c} concurrent, ${requests} measured requests (${c} connections opened first)`);
      report.levels.push(await runLevel(spec, { concurrency: c, requests, maxDurationMs: options.levelMaxMs }, work, options.latencyTargets, levelOptions));
    }
    const e2e = report.singleStream.metrics.e2eMs.p50;
    const warmFor = (rate: number): number => Math.min(256, Math.max(1, Math.ceil(rate * ((e2e ?? 1000) / 1000) * 1.5)));
    for (const rate of [...(options.rates ?? []), ...(options.rate ? [options.rate] : [])]) {
      progress(`load: Poisson arrivals at ${rate} requests/s`);
      report.levels.push(await runLevel(spec, { concurrency: null, rate, requests: options.requestsPerLevel, maxDurationMs: options.levelMaxMs }, work, options.latencyTargets, { ...levelOptions, warmConnections: warmFor(rate) }));
    }
    if (options.goodputSearch) {
      report.goodput = await goodputSearch(options.goodputSearch, e2e, async (rate) => {
        const requests = Math.max(options.requestsPerLevel, Math.ceil(rate * 5));
        progress(`goodput search: Poisson arrivals at ${rate.toFixed(2)} requests/s, ${requests} requests`);
        const level = await runLevel(spec, { concurrency: null, rate, requests, maxDurationMs: options.levelMaxMs }, work, options.latencyTargets, { ...levelOptions, warmConnections: warmFor(rate) });
        report.levels.push(level);
        return level;
      }, options.latencyTargets);
    }
    report.targets = judgeTargets(options.targets, {
      model: report.modelSize, gpuName: report.gpu?.name ?? null, gpuCount: 1, vramBytes: report.gpu?.vramBytes ?? null,
      singleStream: report.singleStream, levels: report.levels,
    });
    report.ok = [report.singleStream, ...report.levels].every((l) => l === null || l.metrics.failed === 0);
  } catch (error) {
    if (!(error instanceof ZanuriError)) {
      const message = error instanceof Error ? error.message : String(error);
      report.error = { code: 'BENCH_FAILED', message, exitCode: ExitCode.benchIncomplete };
    } else {
      report.error = errorView(error);
    }
  } finally {
    await transport.close();
  }
  report.durationMs = Math.round(performance.now() - started);
  return report;
}

/**
 * The highest Poisson rate at which `attainment` of the requests meet every latency target: doubles the
 * rate from the single stream's own pace until a probe fails, then bisects between the last pass and
 * the first failure. A probe also fails when this client could not issue the rate it was asked for.
 */
export async function goodputSearch(ask: { attainment: number; maxProbes?: number }, singleE2eMs: number | null, probe: (rate: number) => Promise<LevelResult>, targets: LatencyTargets): Promise<GoodputSearch> {
  const maxProbes = ask.maxProbes ?? 8;
  const result: GoodputSearch = { attainment: ask.attainment, probes: [], maxRate: null };
  const run = async (rate: number): Promise<boolean> => {
    const level = await probe(rate);
    const attained = level.results.length ? level.results.filter((r) => meetsTargets(r, targets)).length / level.results.length : 0;
    const achievedRate = level.achieved.rate;
    const passed = attained >= ask.attainment && (achievedRate === null || achievedRate >= 0.8 * rate);
    result.probes.push({ rate, achievedRate, requests: level.results.length, attained, passed });
    if (passed) result.maxRate = Math.max(result.maxRate ?? 0, rate);
    return passed;
  };
  let low = 0;
  let high: number | null = null;
  let rate = Math.max(0.1, singleE2eMs ? 1000 / singleE2eMs : 1);
  while (result.probes.length < maxProbes) {
    if (high === null) {
      if (await run(rate)) {
        low = rate;
        rate *= 2;
      } else high = rate;
    } else {
      if (high - low <= 0.1 * high) break;
      const mid: number = low === 0 ? high / 2 : (low + high) / 2;
      if (await run(mid)) low = mid;
      else high = mid;
    }
  }
  return result;
}
