import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parsePrometheus, sampleOf, summarise } from '../../../src/bench/server-metrics.js';

const fixture = (name: string): string => readFileSync(new URL(`../../facts/metrics/${name}`, import.meta.url), 'utf8');

describe('server /metrics', () => {
  it('reads KV-cache use from vLLM 0.10\'s v1 engine (real capture, engine and model_name labels) and null for what the capture lacks', () => {
    expect(sampleOf(fixture('vllm-0.10-v1.prom'))).toEqual({ running: null, waiting: null, kvCacheUsage: 9.75010481363281e-06, preemptions: null });
  });

  it('reads running, waiting and KV-cache use from vLLM v0\'s names (real capture: gpu_cache_usage_perc, model_name only)', () => {
    expect(sampleOf(fixture('vllm-v0.prom'))).toEqual({ running: 0, waiting: 0, kvCacheUsage: 0, preemptions: null });
  });

  it('prefers kv_cache_usage_perc over the deprecated gpu_cache_usage_perc and reads preemptions (CONSTRUCTED in vLLM 0.10\'s layout: no real capture with both was found)', () => {
    expect(sampleOf(fixture('vllm-v1-constructed.prom'))).toEqual({ running: 12, waiting: 3, kvCacheUsage: 0.4375, preemptions: 7 });
  });

  it('reads llama-server\'s --metrics names (real capture under load: 2 slots busy, 4 deferred), and says null for what it does not expose (no KV-cache gauge, no preemptions)', () => {
    expect(sampleOf(fixture('llamacpp.prom'))).toEqual({ running: 2, waiting: 4, kvCacheUsage: null, preemptions: null });
  });

  it('sums a metric over its series (one per model) and skips comments, histograms\' +Inf and junk lines', () => {
    const values = parsePrometheus('# c\nvllm:num_requests_running{model_name="a"} 2\nvllm:num_requests_running{model_name="b"} 3\nnot a metric line\nx_bucket{le="+Inf"} +Inf\n');
    expect(values.get('vllm:num_requests_running')).toBe(5);
    expect(values.get('x_bucket')).toBe(Infinity);
    expect(sampleOf('<html>404</html>')).toEqual({ running: null, waiting: null, kvCacheUsage: null, preemptions: null });
  });

  it('summarises a level: maxima, the mean of running, and preemptions as the counter\'s rise', () => {
    const s = summarise([{ running: 2, waiting: 0, kvCacheUsage: 0.1, preemptions: 5 }, { running: 4, waiting: 3, kvCacheUsage: 0.5, preemptions: 9 }]);
    expect(s).toEqual({ samples: 2, runningMax: 4, runningMean: 3, waitingMax: 3, kvCacheUsageMax: 0.5, preemptions: 4 });
  });
});
