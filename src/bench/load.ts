import { runRequest, type RequestResult, type RequestSpec } from './client.js';
import { levelMetrics, type LatencyTargets, type LevelMetrics } from './metrics.js';

/**
 * Prompts that differ from the first words on, so a server's prefix cache cannot hide prefill.
 * Deterministic (seeded), about `words` words each.
 */
export function prompts(count: number, words: number, seed = 42): string[] {
  const vocabulary = ['server', 'model', 'token', 'latency', 'memory', 'network', 'disk', 'cluster', 'request', 'stream', 'kernel', 'driver',
    'benchmark', 'queue', 'cache', 'thread', 'socket', 'packet', 'firmware', 'voltage', 'thermal', 'schedule', 'replica', 'shard'];
  let state = seed >>> 0;
  const next = (): number => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state;
  };
  return Array.from({ length: count }, (_, i) => {
    const body = Array.from({ length: words }, () => vocabulary[next() % vocabulary.length]).join(' ');
    return `Request ${i} (${next().toString(36)}): summarise ${body}.`;
  });
}

export interface LevelPlan {
  /** Streams kept busy at once (closed loop), or null for an open-loop Poisson rate. */
  concurrency: number | null;
  /** Requests per second for the Poisson arrival process (open loop). */
  rate?: number;
  requests: number;
  maxDurationMs: number;
}

export interface LevelResult {
  plan: LevelPlan;
  metrics: LevelMetrics;
  results: RequestResult[];
}

type Spec = Omit<RequestSpec, 'prompt'>;

/**
 * Runs one load level, bounded in request count and in time: no request starts after the
 * deadline, and each request has its own timeouts, so a level always ends.
 */
export async function runLevel(spec: Spec, plan: LevelPlan, texts: readonly string[], targets: LatencyTargets, seed = 7): Promise<LevelResult> {
  const started = performance.now();
  const deadline = started + plan.maxDurationMs;
  const results: RequestResult[] = [];
  let issued = 0;
  const take = (): string | null => {
    if (issued >= plan.requests || performance.now() >= deadline) return null;
    return texts[issued++ % texts.length] ?? '';
  };
  if (plan.concurrency !== null) {
    const worker = async (): Promise<void> => {
      for (let prompt = take(); prompt !== null; prompt = take()) results.push(await runRequest({ ...spec, prompt }));
    };
    await Promise.all(Array.from({ length: plan.concurrency }, worker));
  } else {
    const rate = plan.rate ?? 1;
    let state = seed >>> 0;
    const uniform = (): number => {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      return (state + 1) / 4294967297;
    };
    const inFlight: Promise<void>[] = [];
    for (let prompt = take(); prompt !== null; prompt = take()) {
      const text = prompt;
      inFlight.push(runRequest({ ...spec, prompt: text }).then((r) => { results.push(r); }));
      // Exponential gaps: a Poisson arrival process at `rate` requests per second.
      const gap = (-Math.log(uniform()) / rate) * 1000;
      await new Promise((r) => setTimeout(r, Math.max(0, Math.min(gap, deadline - performance.now()))));
    }
    await Promise.all(inFlight);
  }
  results.sort((a, b) => a.startedAt - b.startedAt);
  return { plan, metrics: levelMetrics(results, performance.now() - started, targets), results };
}
