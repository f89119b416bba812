/**
 * The server's own counters, sampled from its Prometheus `/metrics` while a level runs, so the report
 * shows beside the client's numbers what the engine saw: requests running and queued, KV-cache use,
 * preemptions. vLLM exposes them by default; llama.cpp's llama-server with `--metrics`; Ollama has none.
 */
import type { Agent } from 'node:http';
import { jsonRequest } from './client.js';

/** One sample: each value null when the engine does not expose it. */
export interface ServerSample {
  running: number | null;
  waiting: number | null;
  /** KV-cache in use, 0..1. */
  kvCacheUsage: number | null;
  /** Cumulative preemptions (vLLM). */
  preemptions: number | null;
}

/** Metric names per quantity, newest first (vLLM renamed gpu_cache_usage_perc to kv_cache_usage_perc in its v1 engine). */
const names: Record<keyof ServerSample, string[]> = {
  running: ['vllm:num_requests_running', 'llamacpp:requests_processing'],
  waiting: ['vllm:num_requests_waiting', 'llamacpp:requests_deferred'],
  kvCacheUsage: ['vllm:kv_cache_usage_perc', 'vllm:gpu_cache_usage_perc', 'llamacpp:kv_cache_usage_ratio'],
  preemptions: ['vllm:num_preemptions_total', 'vllm:num_preemptions'],
};

/** Sums each metric's series (one per model or engine) from the Prometheus text exposition format. */
export function parsePrometheus(text: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const match = /^([A-Za-z_:][A-Za-z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const value = Number(match[3] === '+Inf' ? Infinity : match[3] === '-Inf' ? -Infinity : match[3]);
    if (Number.isNaN(value)) continue;
    const name = match[1] as string;
    values.set(name, (values.get(name) ?? 0) + value);
  }
  return values;
}

export function sampleOf(text: string): ServerSample {
  const values = parsePrometheus(text);
  const pick = (key: keyof ServerSample): number | null => {
    for (const name of names[key]) if (values.has(name)) return values.get(name) as number;
    return null;
  };
  return { running: pick('running'), waiting: pick('waiting'), kvCacheUsage: pick('kvCacheUsage'), preemptions: pick('preemptions') };
}

const known = (s: ServerSample): boolean => Object.values(s).some((v) => v !== null);

/** What the server's counters said over one level. */
export interface ServerMetricsSummary {
  samples: number;
  runningMax: number | null;
  runningMean: number | null;
  waitingMax: number | null;
  kvCacheUsageMax: number | null;
  /** Preemptions during the level (counter difference). */
  preemptions: number | null;
}

export function summarise(samples: readonly ServerSample[]): ServerMetricsSummary {
  const of = (key: keyof ServerSample): number[] => samples.flatMap((s) => (s[key] === null ? [] : [s[key] as number]));
  const max = (v: number[]): number | null => (v.length ? Math.max(...v) : null);
  const running = of('running');
  const preempt = of('preemptions');
  return {
    samples: samples.length,
    runningMax: max(running),
    runningMean: running.length ? running.reduce((a, b) => a + b, 0) / running.length : null,
    waitingMax: max(of('waiting')),
    kvCacheUsageMax: max(of('kvCacheUsage')),
    preemptions: preempt.length >= 2 ? (preempt.at(-1) as number) - (preempt[0] as number) : null,
  };
}

/** Samples GET /metrics every intervalMs between start() and stop(); one request at a time, each with a deadline. */
export class MetricsSampler {
  readonly #url: URL;
  readonly #intervalMs: number;
  readonly #agent: Agent | undefined;
  readonly #apiKey: string | undefined;
  #samples: ServerSample[] = [];
  #timer: NodeJS.Timeout | null = null;
  #inFlight: Promise<void> = Promise.resolve();

  constructor(baseUrl: string, options: { intervalMs?: number; agent?: Agent; apiKey?: string } = {}) {
    this.#url = new URL('/metrics', baseUrl);
    this.#intervalMs = options.intervalMs ?? 500;
    this.#agent = options.agent;
    this.#apiKey = options.apiKey;
  }

  async #fetch(): Promise<ServerSample | null> {
    try {
      const text = await jsonRequest('GET', this.#url, undefined, Math.max(1000, this.#intervalMs * 2), this.#apiKey, this.#agent);
      if (typeof text !== 'string') return null;
      const sample = sampleOf(text);
      return known(sample) ? sample : null;
    } catch {
      return null;
    }
  }

  /** Whether the server exposes any counter this sampler knows. */
  async probe(): Promise<boolean> {
    return (await this.#fetch()) !== null;
  }

  start(): void {
    this.#samples = [];
    const tick = (): void => {
      this.#inFlight = this.#fetch().then((s) => {
        if (s) this.#samples.push(s);
      });
      this.#timer = setTimeout(() => void this.#inFlight.then(() => { if (this.#timer) tick(); }), this.#intervalMs);
    };
    tick();
  }

  async stop(): Promise<ServerMetricsSummary> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#inFlight;
    return summarise(this.#samples);
  }
}
