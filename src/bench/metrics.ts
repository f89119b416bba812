import type { FailureKind, RequestResult } from './client.js';

/** Summary statistics of one measure, in its own unit. */
export interface Distribution {
  mean: number | null;
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

/** Linear interpolation between closest ranks, as numpy's default percentile. */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (!sorted.length) return null;
  const rank = (p / 100) * (sorted.length - 1);
  const low = Math.floor(rank);
  const high = Math.ceil(rank);
  const a = sorted[low] as number;
  const b = sorted[high] as number;
  return a + (b - a) * (rank - low);
}

export function distribution(values: readonly number[]): Distribution {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    mean: sorted.length ? sorted.reduce((s, v) => s + v, 0) / sorted.length : null,
    p50: percentile(sorted, 50), p95: percentile(sorted, 95), p99: percentile(sorted, 99),
  };
}

export interface LatencyTargets {
  /** A request counts towards goodput only if its time to first token is at most this. */
  ttftMs?: number;
  /** ... and its time per output token is at most this. */
  tpotMs?: number;
  e2eMs?: number;
}

/** Failed requests of one kind and message. */
export interface FailureCount {
  kind: FailureKind | 'unknown';
  message: string;
  count: number;
}

/** What one load level (a concurrency or a request rate) measured. */
export interface LevelMetrics {
  requests: number;
  completed: number;
  failed: number;
  /** Distinct error messages (see failures for their kinds and counts). */
  errors: string[];
  failures: FailureCount[];
  wallMs: number;
  /** Time to the first generated token, reasoning included. */
  ttftMs: Distribution;
  /** Time to the first token of the answer (after any reasoning). */
  ttfatMs: Distribution;
  /** Time per output token after the first: (e2e - ttft) / (tokens - 1). */
  tpotMs: Distribution;
  /** Gaps between consecutive token chunks, over all requests. */
  itlMs: Distribution;
  e2eMs: Distribution;
  /** Decode speed of each stream: (tokens - 1) / (e2e - ttft). */
  streamTokensPerS: Distribution;
  /** All output tokens of completed requests over the level's wall time. */
  aggregateTokensPerS: number;
  requestsPerS: number;
  /** Completed requests per second that met every latency target. */
  goodputPerS: number | null;
  /** Decode speed from the server's own timings (Ollama eval_count / eval_duration), when sent. */
  serverTokensPerS: Distribution;
  outputTokens: number;
  /** Reasoning chunks among the streamed ones (a thinking model's tokens before its answer). */
  reasoningChunks: number;
  /** Prompt tokens per request as the server counted them, when it said. */
  inputTokens: Distribution;
  /** Generated tokens per completed request. */
  outputTokensPerRequest: Distribution;
}

/** Window overrides: throughput counted from token arrivals inside a window, not per completed request. */
export interface ThroughputWindow {
  /** Output tokens that arrived inside the window, from every request (also those cut off by its end). */
  outputTokens: number;
  /** Requests that completed inside the window. */
  completed: number;
  /** Of those, the ones that met every latency target. */
  good: number;
}

export function meetsTargets(r: RequestResult, targets: LatencyTargets): boolean {
  const t = tpot(r);
  return r.ok && (targets.ttftMs === undefined || (r.ttftMs !== null && r.ttftMs <= targets.ttftMs))
    && (targets.tpotMs === undefined || (t !== null && t <= targets.tpotMs))
    && (targets.e2eMs === undefined || r.e2eMs <= targets.e2eMs);
}

export function hasTargets(targets: LatencyTargets): boolean {
  return targets.ttftMs !== undefined || targets.tpotMs !== undefined || targets.e2eMs !== undefined;
}

export function tpot(r: RequestResult): number | null {
  return r.ttftMs === null || r.outputTokens < 2 ? null : (r.e2eMs - r.ttftMs) / (r.outputTokens - 1);
}

export function levelMetrics(results: readonly RequestResult[], wallMs: number, targets: LatencyTargets = {}, window?: ThroughputWindow): LevelMetrics {
  const done = results.filter((r) => r.ok);
  const failures = new Map<string, FailureCount>();
  for (const r of results) {
    if (r.ok) continue;
    const kind = r.failure ?? 'unknown';
    const message = r.error ?? 'unknown error';
    const entry = failures.get(`${kind}\0${message}`) ?? { kind, message, count: 0 };
    entry.count += 1;
    failures.set(`${kind}\0${message}`, entry);
  }
  const itl: number[] = [];
  for (const r of done) for (let i = 1; i < r.tokenTimes.length; i += 1) itl.push((r.tokenTimes[i] as number) - (r.tokenTimes[i - 1] as number));
  const tpots = done.map(tpot).filter((v): v is number => v !== null);
  const outputTokens = done.reduce((s, r) => s + r.outputTokens, 0);
  const seconds = wallMs / 1000;
  const windowTokens = window?.outputTokens ?? outputTokens;
  const windowCompleted = window?.completed ?? done.length;
  const good = window?.good ?? done.filter((r) => meetsTargets(r, targets)).length;
  return {
    requests: results.length,
    completed: done.length,
    failed: results.length - done.length,
    errors: [...new Set(results.filter((r) => !r.ok).map((r) => r.error ?? 'unknown error'))],
    failures: [...failures.values()].sort((a, b) => b.count - a.count),
    wallMs,
    ttftMs: distribution(done.map((r) => r.ttftMs).filter((v): v is number => v !== null)),
    ttfatMs: distribution(done.map((r) => r.ttfatMs).filter((v): v is number => v !== null)),
    tpotMs: distribution(tpots),
    itlMs: distribution(itl),
    e2eMs: distribution(done.map((r) => r.e2eMs)),
    streamTokensPerS: distribution(tpots.filter((t) => t > 0).map((t) => 1000 / t)),
    aggregateTokensPerS: seconds > 0 ? windowTokens / seconds : 0,
    requestsPerS: seconds > 0 ? windowCompleted / seconds : 0,
    goodputPerS: hasTargets(targets) && seconds > 0 ? good / seconds : null,
    serverTokensPerS: distribution(done.flatMap((r) => (r.server?.evalCount && r.server.evalDurationNs ? [r.server.evalCount / (r.server.evalDurationNs / 1e9)] : []))),
    outputTokens,
    reasoningChunks: done.reduce((s, r) => s + r.reasoningChunks, 0),
    inputTokens: distribution(done.flatMap((r) => (r.promptTokens === null ? [] : [r.promptTokens]))),
    outputTokensPerRequest: distribution(done.map((r) => r.outputTokens)),
  };
}
