import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { jsonRequest, runRequest, type Api, type RequestResult, type RequestSpec } from './client.js';
import { levelMetrics, meetsTargets, type LatencyTargets, type LevelMetrics } from './metrics.js';
import type { MetricsSampler, ServerMetricsSummary } from './server-metrics.js';
import { seeded, type WorkItem } from './workload.js';

export interface LevelPlan {
  /** Streams kept busy at once (closed loop), or null for an open-loop Poisson rate. */
  concurrency: number | null;
  /** Requests per second for the Poisson arrival process (open loop). */
  rate?: number;
  /** Requests measured; a closed level needs several times its concurrency to hold it (see runLevel). */
  requests: number;
  maxDurationMs: number;
}

/** How much load the level really put on the server. */
export interface AchievedLoad {
  /** Time-weighted mean of requests in flight over the measured window. */
  meanConcurrency: number;
  peakConcurrency: number;
  /** A closed level held its concurrency (mean at least 95% of it, peak equal to it); an open level always counts. */
  reached: boolean;
  /** Open loop: requests issued per second over the window. */
  rate: number | null;
  /** Keep-alive connections opened and warmed before the window (not counted in any request's time). */
  warmedConnections: number;
}

export interface LevelResult {
  plan: LevelPlan;
  metrics: LevelMetrics;
  /** The measured requests (fillers that only kept the load up are not among them). */
  results: RequestResult[];
  achieved: AchievedLoad;
  /** The measured window in wall-clock time (Date.now()), for lining it up with the server's own logs. */
  window: { startedAt: number; endedAt: number };
  /** Requests started only to keep the concurrency up until the last measured one finished, then cancelled. */
  fillers: number;
  /** The server's counters during the window, when it exposes them. */
  server?: ServerMetricsSummary;
}

export type LevelSpec = Omit<RequestSpec, 'prompt' | 'maxTokens' | 'agent'>;

export interface LevelOptions {
  /** Seed of the Poisson arrivals. */
  seed?: number;
  sampler?: MetricsSampler;
  /** Connections to open before an open-loop window (a closed level opens its concurrency). */
  warmConnections?: number;
}

/** A cheap GET that every server of the API answers; used to open and warm connections. */
const warmPath = (api: Api): string => (api === 'ollama' ? '/api/version' : '/v1/models');

/**
 * Opens n keep-alive connections at once and sends a cheap request over each, so the measured
 * requests find them ready (TCP, and through SSH a forwarded channel, already set up).
 */
async function warm(agent: HttpAgent, spec: LevelSpec, n: number): Promise<number> {
  const url = new URL(warmPath(spec.api), spec.baseUrl);
  await Promise.all(Array.from({ length: n }, () => jsonRequest('GET', url, undefined, spec.firstTokenMs, spec.apiKey, agent).catch(() => undefined)));
  return Object.values(agent.freeSockets).reduce((s, list) => s + (list?.length ?? 0), 0);
}

/** Requests in flight over time, to compute the time-weighted mean and the peak over a window. */
class InFlight {
  #count = 0;
  #peak = 0;
  #last = 0;
  #area = 0;
  #from = 0;

  startWindow(now: number): void {
    this.#from = now;
    this.#last = now;
    this.#area = 0;
    this.#peak = this.#count;
  }

  change(now: number, delta: number): void {
    this.#area += this.#count * (now - this.#last);
    this.#last = now;
    this.#count += delta;
    this.#peak = Math.max(this.#peak, this.#count);
  }

  result(now: number): { mean: number; peak: number } {
    const area = this.#area + this.#count * (now - this.#last);
    return { mean: now > this.#from ? area / (now - this.#from) : this.#count, peak: this.#peak };
  }
}

/**
 * Runs one load level and measures it over a window in which the load is what the level says.
 *
 * Closed loop (concurrency c): c connections are opened and warmed first; then c workers each send a
 * request as soon as their last one ends. The first `requests` are measured. Once they are all sent,
 * workers keep sending unmeasured fillers so that c streams stay in flight until the last measured
 * request ends; the window ends there and the fillers are cancelled. So every measured request ran
 * with c streams in flight, and the achieved concurrency is reported, not assumed.
 *
 * Open loop (rate): Poisson arrivals, every request measured, the window ends with the last one.
 *
 * Bounded: no measured request starts after maxDurationMs, and each has its own timeouts.
 */
export async function runLevel(spec: LevelSpec, plan: LevelPlan, work: () => WorkItem, targets: LatencyTargets, options: LevelOptions = {}): Promise<LevelResult> {
  const https = spec.baseUrl.startsWith('https:');
  const agent = https ? new HttpsAgent({ keepAlive: true, maxSockets: plan.concurrency ?? Infinity }) : new HttpAgent({ keepAlive: true, maxSockets: plan.concurrency ?? Infinity });
  try {
    const warmedConnections = await warm(agent, spec, plan.concurrency ?? Math.max(1, options.warmConnections ?? 1));
    const inFlight = new InFlight();
    const measured: RequestResult[] = [];
    const cancelled = new Set<() => void>();
    const all: RequestResult[] = [];
    const send = (item: WorkItem, onCancel?: (cancel: () => void) => void): Promise<RequestResult> => {
      inFlight.change(performance.now(), +1);
      const controller = new AbortController();
      const cancel = (): void => controller.abort();
      onCancel?.(cancel);
      return runRequest({ ...spec, ...item, agent, signal: controller.signal }).then((r) => {
        inFlight.change(performance.now(), -1);
        all.push(r);
        return r;
      });
    };

    options.sampler?.start();
    const started = performance.now();
    const wallStart = Date.now();
    inFlight.startWindow(started);
    const deadline = started + plan.maxDurationMs;
    let issued = 0;
    let fillers = 0;
    let windowEnd = started;
    let load = { mean: 0, peak: 0 };
    // The load is read the moment the window ends: cancelled fillers end after it.
    const endWindow = (): void => {
      windowEnd = performance.now();
      load = inFlight.result(windowEnd);
    };

    if (plan.concurrency !== null) {
      let outstanding = 0;
      let allMeasuredDone: () => void = () => undefined;
      const measuredDone = new Promise<void>((resolve) => { allMeasuredDone = resolve; });
      const worker = async (): Promise<void> => {
        for (;;) {
          if (issued < plan.requests && performance.now() < deadline) {
            issued += 1;
            outstanding += 1;
            const r = await send(work());
            measured.push(r);
            outstanding -= 1;
            if (outstanding === 0 && (issued >= plan.requests || performance.now() >= deadline)) {
              endWindow();
              allMeasuredDone();
            }
          } else if (outstanding > 0) {
            // Keep the load up while measured requests are still running.
            fillers += 1;
            let cancel: () => void = () => undefined;
            const filler = send(work(), (c) => { cancel = c; cancelled.add(c); });
            await Promise.race([filler, measuredDone]);
            cancelled.delete(cancel);
            cancel();
            await filler;
          } else {
            if (windowEnd === started) {
              endWindow();
              allMeasuredDone();
            }
            return;
          }
        }
      };
      await Promise.all(Array.from({ length: plan.concurrency }, worker));
    } else {
      const rate = plan.rate ?? 1;
      const uniform = seeded(options.seed ?? 7);
      const pending: Promise<void>[] = [];
      while (issued < plan.requests && performance.now() < deadline) {
        issued += 1;
        pending.push(send(work()).then((r) => { measured.push(r); }));
        // Exponential gaps: a Poisson arrival process at `rate` requests per second.
        const gap = (-Math.log(uniform()) / rate) * 1000;
        if (issued < plan.requests) await new Promise((r) => setTimeout(r, Math.max(0, Math.min(gap, deadline - performance.now()))));
      }
      await Promise.all(pending);
      endWindow();
    }
    const server = options.sampler ? await options.sampler.stop() : undefined;
    measured.sort((a, b) => a.startedAt - b.startedAt);

    // Throughput inside the window: every token that arrived in it, measured requests and fillers alike.
    let windowTokens = 0;
    let completed = 0;
    let good = 0;
    for (const r of all) {
      const per = r.tokenTimes.length ? r.outputTokens / r.tokenTimes.length : 0;
      windowTokens += r.tokenTimes.filter((t) => r.startedAt + t <= windowEnd + 0.001).length * per;
      if (r.ok && r.startedAt + r.e2eMs <= windowEnd + 0.001) {
        completed += 1;
        if (meetsTargets(r, targets)) good += 1;
      }
    }
    const windowMs = windowEnd - started;
    const issueSpan = measured.length > 1 ? (measured.at(-1) as RequestResult).startedAt - (measured[0] as RequestResult).startedAt : 0;
    return {
      plan,
      metrics: levelMetrics(measured, windowMs, targets, { outputTokens: windowTokens, completed, good }),
      results: measured,
      achieved: {
        meanConcurrency: load.mean, peakConcurrency: load.peak,
        reached: plan.concurrency === null || (load.peak === plan.concurrency && load.mean >= 0.95 * plan.concurrency),
        rate: plan.concurrency === null && issueSpan > 0 ? ((measured.length - 1) * 1000) / issueSpan : null,
        warmedConnections,
      },
      window: { startedAt: wallStart, endedAt: wallStart + windowMs },
      fillers,
      ...(server ? { server } : {}),
    };
  } finally {
    agent.destroy();
  }
}
