import { ExitCode, UnreachableError, UsageError, ZanuriError, errorView } from '../core/errors.js';
import { jsonRequest, type Api, type RequestSpec } from '../bench/client.js';
import { prompts, runLevel, type LevelResult } from '../bench/load.js';
import type { LatencyTargets } from '../bench/metrics.js';
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
  maxTokens: number;
  promptWords: number;
  warmup: number;
  singleStreamRequests: number;
  concurrency: number[];
  /** Poisson arrival rate (requests/s) for an open-loop level, in addition to the concurrency sweep. */
  rate?: number;
  requestsPerLevel: number;
  levelMaxMs: number;
  timeoutMs: number;
  stallMs: number;
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
  ok: boolean;
  error?: { code: string; message: string; hint?: string; exitCode: number };
  durationMs: number;
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
  };
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
    const model = await pickModel(baseUrl, options.api, options.model, options.timeoutMs, options.apiKey).catch((error: unknown) => {
      if (error instanceof ZanuriError) throw error;
      throw new UnreachableError(`cannot use the endpoint ${options.endpoint} on ${report.host}: ${(error as Error).message}`, { hint: 'is the model server running, and is this its address as the host sees it?' });
    });
    report.model = model;
    report.modelSize ??= options.api === 'ollama' ? await ollamaModelSize(baseUrl, model, options.timeoutMs) : null;
    if (report.modelSize) report.roofline = roofline(report.modelSize, report.gpu?.name ?? null, 1, report.gpu?.vramBytes ?? null);

    const spec: Omit<RequestSpec, 'prompt'> = {
      api: options.api, baseUrl, model, maxTokens: options.maxTokens, timeoutMs: options.timeoutMs, stallMs: options.stallMs,
      ...(options.apiKey ? { apiKey: options.apiKey } : {}),
    };
    const total = options.warmup + options.singleStreamRequests + options.requestsPerLevel * (options.concurrency.length + (options.rate ? 1 : 0));
    const texts = prompts(total, options.promptWords);
    let offset = 0;
    const slice = (n: number): string[] => texts.slice(offset, (offset += n));

    progress(`warm-up: ${options.warmup} request(s)`);
    const warm = await runLevel(spec, { concurrency: 1, requests: options.warmup, maxDurationMs: options.levelMaxMs }, slice(options.warmup), {});
    if (options.warmup > 0 && warm.metrics.completed === 0) {
      throw new UnreachableError(`the server did not complete a warm-up request: ${warm.metrics.errors[0] ?? 'no answer'}`, { hint: `is a model server running at ${options.endpoint} on ${report.host}?` });
    }
    progress(`single stream: ${options.singleStreamRequests} request(s)`);
    report.singleStream = await runLevel(spec, { concurrency: 1, requests: options.singleStreamRequests, maxDurationMs: options.levelMaxMs }, slice(options.singleStreamRequests), options.latencyTargets);
    for (const c of options.concurrency) {
      progress(`load: ${c} concurrent, up to ${options.requestsPerLevel} requests`);
      report.levels.push(await runLevel(spec, { concurrency: c, requests: options.requestsPerLevel, maxDurationMs: options.levelMaxMs }, slice(options.requestsPerLevel), options.latencyTargets));
    }
    if (options.rate) {
      progress(`load: Poisson arrivals at ${options.rate} requests/s`);
      report.levels.push(await runLevel(spec, { concurrency: null, rate: options.rate, requests: options.requestsPerLevel, maxDurationMs: options.levelMaxMs }, slice(options.requestsPerLevel), options.latencyTargets));
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
