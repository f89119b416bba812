import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parsePrometheus, sampleOf, summarise } from '../../../src/bench/server-metrics.js';

const fixture = (name: string): string => readFileSync(new URL(`../../facts/metrics/${name}`, import.meta.url), 'utf8');

describe('server /metrics', () => {
  it('reads running, waiting, KV-cache use and preemptions from vLLM\'s v1 names, preferring kv_cache_usage_perc', () => {
    expect(sampleOf(fixture('vllm-v1.prom'))).toEqual({ running: 12, waiting: 3, kvCacheUsage: 0.4375, preemptions: 7 });
  });

  it('reads llama-server\'s --metrics names, and says null for what it does not expose', () => {
    expect(sampleOf(fixture('llamacpp.prom'))).toEqual({ running: 4, waiting: 2, kvCacheUsage: 0.25, preemptions: null });
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
