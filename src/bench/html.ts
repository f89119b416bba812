import type { AchievedLoad, LevelPlan } from './load.js';
import type { LatencyTargets, LevelMetrics } from './metrics.js';
import type { ServerMetricsSummary } from './server-metrics.js';
import type { Roofline } from './roofline.js';
import type { TargetVerdict } from './targets.js';

/** What the page needs: the bench report's shape, declared here so this module stays pure. */
export interface HtmlLevel {
  plan: LevelPlan;
  metrics: LevelMetrics;
  achieved: AchievedLoad;
  fillers: number;
  server?: ServerMetricsSummary;
}

export interface HtmlInput {
  host: string;
  endpoint: string;
  api: 'ollama' | 'openai';
  model: string | null;
  modelSize: { params: number; quantization: string } | null;
  gpu: { name: string | null; count: number } | null;
  workload: string;
  latencyTargets: LatencyTargets;
  serverMetrics: 'sampled' | 'not exposed' | 'off';
  singleStream: HtmlLevel | null;
  levels: HtmlLevel[];
  roofline: Roofline | null;
  targets: TargetVerdict[];
  goodput?: { attainment: number; maxRate: number | null; probes: Array<{ rate: number; achievedRate: number | null; requests: number; attained: number; passed: boolean }> };
  durationMs: number;
  /** Why the run stopped early, when it did. */
  error?: { code: string; message: string; hint?: string };
}

const escape = (text: string): string => text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
const fmt = (v: number | null | undefined, digits = 1): string => (v === null || v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(digits));

interface Series { name: string; color: string; points: Array<[number, number | null]> }

/** A line chart as inline SVG: x = the levels in order (evenly spaced), y from 0. No scripts, no external files. */
function chart(title: string, yLabel: string, xs: readonly number[], series: readonly Series[], xLabel = 'concurrent streams'): string {
  const width = 640;
  const height = 320;
  const left = 64;
  const bottom = 44;
  const top = 36;
  const right = 150;
  const values = series.flatMap((s) => s.points.map(([, y]) => y)).filter((y): y is number => y !== null && Number.isFinite(y));
  const yMax = Math.max(1e-9, ...values) * 1.1;
  const xIndex = (x: number): number => left + (xs.length <= 1 ? 0.5 : xs.indexOf(x) / (xs.length - 1)) * (width - left - right);
  const y = (v: number): number => height - bottom - (v / yMax) * (height - bottom - top);
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => f * yMax);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${escape(title)}">`,
    `<text x="${left}" y="20" font-size="15" font-weight="bold">${escape(title)}</text>`,
    ...ticks.map((t) => `<line x1="${left}" x2="${width - right}" y1="${y(t)}" y2="${y(t)}" stroke="#ddd"/><text x="${left - 6}" y="${y(t) + 4}" font-size="11" text-anchor="end">${fmt(t, t < 10 ? 1 : 0)}</text>`),
    ...xs.map((x) => `<text x="${xIndex(x)}" y="${height - bottom + 18}" font-size="11" text-anchor="middle">${x}</text>`),
    `<text x="${(left + width - right) / 2}" y="${height - 8}" font-size="12" text-anchor="middle">${escape(xLabel)}</text>`,
    `<text x="14" y="${(top + height - bottom) / 2}" font-size="12" text-anchor="middle" transform="rotate(-90 14 ${(top + height - bottom) / 2})">${escape(yLabel)}</text>`,
  ];
  series.forEach((s, i) => {
    const width_ = s.name.includes('p50') ? 3 : 1.5;
    const pts = s.points.filter((p): p is [number, number] => p[1] !== null && Number.isFinite(p[1]));
    if (pts.length) parts.push(`<polyline fill="none" stroke="${s.color}" stroke-width="${width_}"${s.name.includes('p99') ? ' stroke-dasharray="5 3"' : ''} points="${pts.map(([x, v]) => `${xIndex(x)},${y(v)}`).join(' ')}"/>`);
    parts.push(...pts.map(([x, v]) => `<circle cx="${xIndex(x)}" cy="${y(v)}" r="3.5" fill="${s.color}"><title>${escape(s.name)} at ${x}: ${fmt(v)}</title></circle>`));
    parts.push(`<rect x="${width - right + 14}" y="${top + i * 20}" width="12" height="12" fill="${s.color}"/><text x="${width - right + 32}" y="${top + i * 20 + 11}" font-size="12">${escape(s.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

const kinds: Record<string, string> = {
  connect: 'no answer at all (refused, reset, unreachable)',
  http: 'the server answered with an error status',
  'first-token': 'accepted, then no token in time',
  stall: 'tokens started, then stopped',
  timeout: 'the whole request ran past its timeout',
  cut: 'the stream ended before the server said it was done',
  'stream-error': 'an error sent inside the stream',
  protocol: 'bytes that are not the API\'s format',
  unknown: 'unknown',
};

function targetsText(t: LatencyTargets): string {
  const parts = [...(t.ttftMs !== undefined ? [`TTFT ≤ ${t.ttftMs} ms`] : []), ...(t.tpotMs !== undefined ? [`TPOT ≤ ${t.tpotMs} ms`] : []), ...(t.e2eMs !== undefined ? [`E2E ≤ ${t.e2eMs} ms`] : [])];
  return parts.length ? parts.join(', ') : 'none given (goodput is not computed; pass --ttft-target, --tpot-target or --e2e-target)';
}

/** Failures summed over levels, by kind and message. */
function reasons(failures: ReadonlyArray<{ kind: string; message: string; count: number }>): Array<{ kind: string; message: string; count: number }> {
  const byKey = new Map<string, { kind: string; message: string; count: number }>();
  for (const f of failures) {
    const entry = byKey.get(`${f.kind}\0${f.message}`) ?? { kind: f.kind, message: f.message, count: 0 };
    entry.count += f.count;
    byKey.set(`${f.kind}\0${f.message}`, entry);
  }
  return [...byKey.values()];
}

const label = (plan: LevelPlan, single = false): string => (single ? 'single stream' : plan.concurrency === null ? `Poisson ${Number((plan.rate ?? 0).toFixed(2))} req/s` : `${plan.concurrency} concurrent`);

/** A self-contained HTML page that explains itself: what was asked, how it was measured, what failed and why. */
export function renderHtml(input: HtmlInput, generatedAt: string): string {
  const named = [...(input.singleStream ? [{ name: label(input.singleStream.plan, true), l: input.singleStream }] : []), ...input.levels.map((l) => ({ name: label(l.plan), l }))];
  const closed = named.filter(({ l }) => l.plan.concurrency !== null)
    .filter(({ l }, i, list) => list.findIndex((o) => o.l.plan.concurrency === l.plan.concurrency) === i)
    .sort((a, b) => (a.l.plan.concurrency as number) - (b.l.plan.concurrency as number));
  const open = named.filter(({ l }) => l.plan.concurrency === null).sort((a, b) => (a.l.plan.rate ?? 0) - (b.l.plan.rate ?? 0));
  const completed = named.reduce((s, { l }) => s + l.metrics.completed, 0);
  const requests = named.reduce((s, { l }) => s + l.metrics.requests, 0);
  const reasoning = named.some(({ l }) => l.metrics.reasoningChunks > 0);
  const charts = (group: typeof closed, x: (l: HtmlLevel) => number, xLabel: string, what: string): string => {
    const usable = group.filter(({ l }) => l.metrics.completed > 0);
    if (!usable.length) return `<p class="note">No ${what} chart: no request of these levels completed (see Failures).</p>`;
    const xs = usable.map(({ l }) => x(l));
    const pts = (f: (m: LevelMetrics) => number | null): Array<[number, number | null]> => usable.map(({ l }) => [x(l), f(l.metrics)]);
    return [
      chart(`Throughput against ${xLabel}`, 'tokens/s', xs, [
        { name: 'aggregate tok/s', color: '#1f77b4', points: pts((m) => m.aggregateTokensPerS) },
        { name: 'per-stream p50', color: '#ff7f0e', points: pts((m) => m.streamTokensPerS.p50) },
      ], xLabel),
      chart(`Time to first token against ${xLabel}`, 'milliseconds', xs, [
        { name: 'TTFT p99', color: '#a1d99b', points: pts((m) => m.ttftMs.p99) },
        { name: 'TTFT p95', color: '#41ab5d', points: pts((m) => m.ttftMs.p95) },
        { name: 'TTFT p50', color: '#005a32', points: pts((m) => m.ttftMs.p50) },
        ...(reasoning ? [{ name: 'answer p50', color: '#807dba', points: pts((m) => m.ttfatMs.p50) }] : []),
      ], xLabel),
      chart(`End-to-end latency against ${xLabel}`, 'milliseconds', xs, [
        { name: 'E2E p99', color: '#fcbba1', points: pts((m) => m.e2eMs.p99) },
        { name: 'E2E p95', color: '#fb6a4a', points: pts((m) => m.e2eMs.p95) },
        { name: 'E2E p50', color: '#a50f15', points: pts((m) => m.e2eMs.p50) },
      ], xLabel),
      chart(`Time per output token against ${xLabel}`, 'milliseconds', xs, [
        { name: 'TPOT p95', color: '#9ecae1', points: pts((m) => m.tpotMs.p95) },
        { name: 'TPOT p50', color: '#08519c', points: pts((m) => m.tpotMs.p50) },
      ], xLabel),
    ].join('\n');
  };
  const held = (l: HtmlLevel): string => (l.plan.concurrency === null
    ? `${fmt(l.achieved.rate, 2)} req/s issued; ${fmt(l.achieved.meanConcurrency)} in flight on average`
    : `${fmt(l.achieved.meanConcurrency, 1)} mean, ${l.achieved.peakConcurrency} peak${l.achieved.reached || l.plan.concurrency === 1 ? '' : ' <b class="fail">not reached</b>'}`);
  const failures = named.flatMap(({ name, l }) => l.metrics.failures.map((f) => ({ name, ...f })));
  const r = input.roofline;
  const head = (cells: string[]): string => `<tr>${cells.map((c) => `<th>${c}</th>`).join('')}</tr>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>zanuri bench: ${escape(input.model ?? 'model')} on ${escape(input.host)}</title>
<style>body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}table{border-collapse:collapse;margin:12px 0}td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px;text-align:right;vertical-align:top}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}td.text,th.text{text-align:left}.pass{color:#1a7f37}.fail{color:#cf222e}.unreachable,.not-measured{color:#9a6700}.box{border:2px solid #cf222e;background:#fff5f5;padding:8px 14px;margin:12px 0}.note{color:#555}dl{display:grid;grid-template-columns:max-content auto;gap:4px 16px}dt{font-weight:bold}dd{margin:0}svg{margin:8px 12px 8px 0}</style></head>
<body>
<h1>zanuri bench: ${escape(input.model ?? 'model ?')} on ${escape(input.host)}</h1>
<dl id="setup">
<dt>Host</dt><dd>${escape(input.host)}${input.gpu ? ` · GPU ${escape(input.gpu.name ?? '?')} × ${input.gpu.count}` : ' · no NVIDIA GPU found by zanuri check\'s facts'}</dd>
<dt>Endpoint</dt><dd>${escape(input.endpoint)} (as the host sees it; reached through the SSH connection when the host is remote)</dd>
<dt>API</dt><dd>${input.api === 'ollama' ? 'Ollama native (/api/generate, NDJSON stream)' : 'OpenAI-compatible (/v1/chat/completions, server-sent events)'}</dd>
<dt>Model</dt><dd>${escape(input.model ?? '?')}${input.modelSize ? ` (${input.modelSize.params}B parameters, ${escape(input.modelSize.quantization)})` : ''}</dd>
<dt>Workload</dt><dd>${escape(input.workload || 'not started')}</dd>
<dt>Requests</dt><dd>${requests} measured, ${completed} completed, ${requests - completed} failed, over ${named.length} level(s); run took ${fmt(input.durationMs / 1000)} s</dd>
<dt>Goodput targets</dt><dd>${escape(targetsText(input.latencyTargets))}</dd>
<dt>Server counters</dt><dd>${input.serverMetrics === 'sampled' ? 'sampled from the server\'s /metrics every 0.5 s during each level' : input.serverMetrics === 'off' ? 'not sampled (--no-server-metrics)' : 'the server exposes no /metrics that zanuri reads (vLLM does; llama-server with --metrics; Ollama has none)'}</dd>
<dt>Generated</dt><dd>${escape(generatedAt)}</dd>
</dl>
<p class="note" id="method">How it was measured: warm-up requests first (not measured). Each level opened and warmed its connections before its measured window, so connection set-up is not in any time. A level of <i>c</i> concurrent streams measures at least 3 × <i>c</i> requests; once they are all sent, unmeasured filler requests keep <i>c</i> streams in flight until the last measured one ends, so every measured request ran under the load its level names; the concurrency actually held is shown, and a target is never judged from a level that did not hold it. Poisson levels send requests at random (exponential) intervals at the given mean rate.</p>
${input.error ? `<div class="box" id="error"><b>The run stopped early (${escape(input.error.code)}):</b> ${escape(input.error.message)}${input.error.hint ? `<br><b>What to check:</b> ${escape(input.error.hint)}` : ''}</div>` : ''}
${requests > 0 && completed === 0 ? `<div class="box" id="all-failed"><b>Every measured request failed</b>, so there are no latency or throughput numbers. Reasons: ${reasons(failures).map((f) => `${escape(f.message)} (${f.count}×, ${escape(kinds[f.kind] ?? f.kind)})`).join('; ')}.</div>` : ''}
<h2>Results</h2>
${named.length ? `<table id="levels">${head(['load', 'concurrency held', 'measured', 'failed', 'input tok p50', 'output tok p50', 'TTFT p50 ms', 'TTFT p95 ms', 'TTFT p99 ms', ...(reasoning ? ['answer p50 ms'] : []), 'TPOT p50 ms', 'ITL p95 ms', 'E2E p50 ms', 'E2E p95 ms', 'E2E p99 ms', 'tok/s per stream p50', 'tok/s aggregate', 'req/s', 'goodput req/s'])}
${named.map(({ name, l }) => { const m = l.metrics; return `<tr><td>${escape(name)}</td><td>${held(l)}</td><td>${m.requests}</td><td class="${m.failed ? 'fail' : ''}">${m.failed}</td><td>${fmt(m.inputTokens.p50, 0)}</td><td>${fmt(m.outputTokensPerRequest.p50, 0)}</td><td>${fmt(m.ttftMs.p50)}</td><td>${fmt(m.ttftMs.p95)}</td><td>${fmt(m.ttftMs.p99)}</td>${reasoning ? `<td>${fmt(m.ttfatMs.p50)}</td>` : ''}<td>${fmt(m.tpotMs.p50, 2)}</td><td>${fmt(m.itlMs.p95, 2)}</td><td>${fmt(m.e2eMs.p50)}</td><td>${fmt(m.e2eMs.p95)}</td><td>${fmt(m.e2eMs.p99)}</td><td>${fmt(m.streamTokensPerS.p50)}</td><td>${fmt(m.aggregateTokensPerS)}</td><td>${fmt(m.requestsPerS, 2)}</td><td>${fmt(m.goodputPerS, 2)}</td></tr>`; }).join('\n')}
</table>` : '<p>No level ran.</p>'}
<div id="charts">${closed.length ? charts(closed, (l) => l.plan.concurrency as number, 'concurrent streams', 'concurrency') : ''}
${open.length > 1 ? charts(open, (l) => Number((l.plan.rate ?? 0).toFixed(2)), 'request rate (req/s)', 'request-rate') : ''}</div>
${input.goodput ? `<h2>Goodput search</h2><p>The highest Poisson request rate at which ${Math.round(100 * input.goodput.attainment)}% of requests met every target (${escape(targetsText(input.latencyTargets))}): <b>${input.goodput.maxRate === null ? 'none of the probed rates' : `${fmt(input.goodput.maxRate, 2)} req/s`}</b>.</p>
<table id="goodput">${head(['rate asked', 'rate issued', 'requests', 'within targets', 'verdict'])}${input.goodput.probes.map((p) => `<tr><td>${fmt(p.rate, 2)} req/s</td><td>${fmt(p.achievedRate, 2)}</td><td>${p.requests}</td><td>${fmt(100 * p.attained, 0)}%</td><td class="${p.passed ? 'pass' : 'fail'}">${p.passed ? 'pass' : 'fail'}</td></tr>`).join('')}</table>` : ''}
${named.some(({ l }) => l.server?.samples) ? `<h2>Server counters</h2><table id="server">${head(['load', 'samples', 'running max', 'running mean', 'waiting max', 'KV cache max', 'preemptions'])}${named.filter(({ l }) => l.server?.samples).map(({ name, l }) => { const s = l.server as ServerMetricsSummary; return `<tr><td>${escape(name)}</td><td>${s.samples}</td><td>${fmt(s.runningMax, 0)}</td><td>${fmt(s.runningMean)}</td><td>${fmt(s.waitingMax, 0)}</td><td>${s.kvCacheUsageMax === null ? '–' : `${fmt(100 * s.kvCacheUsageMax)}%`}</td><td>${fmt(s.preemptions, 0)}</td></tr>`; }).join('')}</table>` : ''}
<h2>Failures</h2>
${failures.length ? `<table id="failures"><tr><th>load</th><th>requests</th><th class="text">kind</th><th class="text">what the client saw</th></tr>${failures.map((f) => `<tr><td>${escape(f.name)}</td><td>${f.count}</td><td class="text">${escape(f.kind)}: ${escape(kinds[f.kind] ?? '')}</td><td class="text">${escape(f.message)}</td></tr>`).join('')}</table>` : `<p>${input.error ? 'None among measured requests.' : 'None: every measured request completed.'}</p>`}
<h2>Roofline</h2>
${r && r.decodeBoundTokensPerS !== null ? `<p>${escape(r.gpu ?? 'unknown GPU')}: ${r.bandwidthGBs ?? '?'} GB/s; weights ${fmt(r.weightsGB, 2)} GB; decode bound ${fmt(r.decodeBoundTokensPerS)} tok/s per stream${input.singleStream?.metrics.streamTokensPerS.p50 && r.decodeBoundTokensPerS ? `; achieved ${fmt((100 * input.singleStream.metrics.streamTokensPerS.p50) / r.decodeBoundTokensPerS)}% of it` : ''}. Source: ${escape(r.source ?? '')}</p>` : `<p>No roofline: ${r ? `no known NVIDIA GPU on the host (the weights are ${fmt(r.weightsGB, 3)} GB)` : 'the model size is unknown (the server did not say; pass --params and --quant)'}.</p>`}
<h2>Targets</h2>
${input.targets.length ? `<table id="targets"><tr><th>target</th><th>expected</th><th>measured</th><th>verdict</th><th>why</th></tr>
${input.targets.map((t) => `<tr><td>${escape(t.id)}</td><td>${escape(t.expected)}</td><td>${escape(t.actual)}</td><td class="${t.status}">${t.status}</td><td class="text">${escape(t.reason ?? '')}</td></tr>`).join('\n')}</table>` : '<p>No profile targets given (--profile).</p>'}
<h2>What the columns mean</h2>
<dl id="glossary">
<dt>TTFT</dt><dd>time to first token: from sending the request to the first generated token of any kind (a reasoning model's thinking included)</dd>
${reasoning ? '<dt>answer</dt><dd>time to the first token of the answer itself, after the model\'s reasoning</dd>' : ''}
<dt>TPOT</dt><dd>time per output token after the first: (E2E − TTFT) / (tokens − 1), per request</dd>
<dt>ITL</dt><dd>inter-token latency: gaps between consecutive streamed chunks, over all requests</dd>
<dt>E2E</dt><dd>end-to-end latency of a request, send to last byte</dd>
<dt>p50 / p95 / p99</dt><dd>percentiles over the level's measured requests (linear interpolation, as numpy)</dd>
<dt>tok/s per stream</dt><dd>one request's decode speed, 1000 / TPOT; aggregate: every output token that arrived in the level's window, over the window</dd>
<dt>goodput</dt><dd>completed requests per second that met every goodput target</dd>
</dl>
</body></html>
`;
}
