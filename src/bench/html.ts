import type { LevelMetrics } from './metrics.js';
import type { Roofline } from './roofline.js';
import type { TargetVerdict } from './targets.js';

/** What the page needs; a subset of the bench report so this module stays pure. */
export interface HtmlInput {
  host: string;
  endpoint: string;
  model: string | null;
  generatedAt: string;
  singleStream: LevelMetrics | null;
  levels: Array<{ label: string; concurrency: number | null; metrics: LevelMetrics }>;
  roofline: Roofline | null;
  targets: TargetVerdict[];
  /** Why the run stopped early, when it did. */
  error?: string;
}

const escape = (text: string): string => text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
const fmt = (v: number | null, digits = 1): string => (v === null || !Number.isFinite(v) ? '–' : v.toFixed(digits));

interface Series { name: string; color: string; points: Array<[number, number | null]> }

/** A line chart as inline SVG: x = concurrency (log-spaced ticks as given), y from 0. No scripts, no external files. */
function chart(title: string, yLabel: string, xs: readonly number[], series: readonly Series[]): string {
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
    `<text x="${(left + width - right) / 2}" y="${height - 8}" font-size="12" text-anchor="middle">concurrent streams</text>`,
    `<text x="14" y="${(top + height - bottom) / 2}" font-size="12" text-anchor="middle" transform="rotate(-90 14 ${(top + height - bottom) / 2})">${escape(yLabel)}</text>`,
  ];
  series.forEach((s, i) => {
    const pts = s.points.filter((p): p is [number, number] => p[1] !== null && Number.isFinite(p[1]));
    if (pts.length) parts.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${pts.map(([x, v]) => `${xIndex(x)},${y(v)}`).join(' ')}"/>`);
    parts.push(...pts.map(([x, v]) => `<circle cx="${xIndex(x)}" cy="${y(v)}" r="3.5" fill="${s.color}"><title>${escape(s.name)} at ${x}: ${fmt(v)}</title></circle>`));
    parts.push(`<rect x="${width - right + 14}" y="${top + i * 20}" width="12" height="12" fill="${s.color}"/><text x="${width - right + 32}" y="${top + i * 20 + 11}" font-size="12">${escape(s.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/** A self-contained HTML page: tables and inline SVG charts, no network access needed to view it. */
export function renderHtml(input: HtmlInput): string {
  const closed = input.levels.filter((l) => l.concurrency !== null) as Array<{ label: string; concurrency: number; metrics: LevelMetrics }>;
  const all = [...(input.singleStream ? [{ label: '1 (single stream)', concurrency: 1, metrics: input.singleStream }] : []), ...closed]
    .filter((l, i, list) => list.findIndex((o) => o.concurrency === l.concurrency) === i)
    .sort((a, b) => a.concurrency - b.concurrency);
  const xs = all.map((l) => l.concurrency);
  const rows = [...all.map((l) => ({ label: l.label, m: l.metrics })), ...input.levels.filter((l) => l.concurrency === null).map((l) => ({ label: l.label, m: l.metrics }))];
  const throughput = chart('Throughput against concurrency', 'tokens/s', xs, [
    { name: 'aggregate tok/s', color: '#1f77b4', points: all.map((l) => [l.concurrency, l.metrics.aggregateTokensPerS]) },
    { name: 'per-stream p50', color: '#ff7f0e', points: all.map((l) => [l.concurrency, l.metrics.streamTokensPerS.p50]) },
  ]);
  const latency = chart('Latency percentiles against concurrency', 'milliseconds', xs, [
    { name: 'TTFT p50', color: '#2ca02c', points: all.map((l) => [l.concurrency, l.metrics.ttftMs.p50]) },
    { name: 'TTFT p95', color: '#98df8a', points: all.map((l) => [l.concurrency, l.metrics.ttftMs.p95]) },
    { name: 'TTFT p99', color: '#c5e8b7', points: all.map((l) => [l.concurrency, l.metrics.ttftMs.p99]) },
    { name: 'E2E p50', color: '#d62728', points: all.map((l) => [l.concurrency, l.metrics.e2eMs.p50]) },
    { name: 'E2E p95', color: '#ff9896', points: all.map((l) => [l.concurrency, l.metrics.e2eMs.p95]) },
  ]);
  const r = input.roofline;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>zanuri bench: ${escape(input.model ?? 'model')} on ${escape(input.host)}</title>
<style>body{font-family:system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin:12px 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}.pass{color:#1a7f37}.fail{color:#cf222e}.unreachable{color:#9a6700}</style></head>
<body>
<h1>zanuri bench</h1>
<p><b>Host</b> ${escape(input.host)} · <b>endpoint</b> ${escape(input.endpoint)} · <b>model</b> ${escape(input.model ?? '?')} · ${escape(input.generatedAt)}</p>
${input.error ? `<p class="fail" id="error"><b>The run stopped early:</b> ${escape(input.error)}</p>` : ''}
<h2>Results</h2>
<table id="levels"><tr><th>load</th><th>requests</th><th>failed</th><th>TTFT p50 ms</th><th>TTFT p95 ms</th><th>TPOT p50 ms</th><th>ITL p95 ms</th><th>E2E p50 ms</th><th>E2E p95 ms</th><th>E2E p99 ms</th><th>tok/s per stream</th><th>tok/s aggregate</th><th>req/s</th><th>goodput/s</th></tr>
${rows.map(({ label, m }) => `<tr><td>${escape(label)}</td><td>${m.requests}</td><td>${m.failed}</td><td>${fmt(m.ttftMs.p50)}</td><td>${fmt(m.ttftMs.p95)}</td><td>${fmt(m.tpotMs.p50, 2)}</td><td>${fmt(m.itlMs.p95, 2)}</td><td>${fmt(m.e2eMs.p50)}</td><td>${fmt(m.e2eMs.p95)}</td><td>${fmt(m.e2eMs.p99)}</td><td>${fmt(m.streamTokensPerS.p50)}</td><td>${fmt(m.aggregateTokensPerS)}</td><td>${fmt(m.requestsPerS, 2)}</td><td>${fmt(m.goodputPerS, 2)}</td></tr>`).join('\n')}
</table>
<div id="charts">${throughput}\n${latency}</div>
<h2>Roofline</h2>
${r && r.decodeBoundTokensPerS !== null ? `<p>${escape(r.gpu ?? 'unknown GPU')}: ${r.bandwidthGBs ?? '?'} GB/s; weights ${fmt(r.weightsGB, 2)} GB; decode bound ${fmt(r.decodeBoundTokensPerS)} tok/s per stream${input.singleStream?.streamTokensPerS.p50 && r.decodeBoundTokensPerS ? `; achieved ${fmt((100 * input.singleStream.streamTokensPerS.p50) / r.decodeBoundTokensPerS)}% of it` : ''}. ${escape(r.source ?? '')}</p>` : `<p>No roofline: ${r ? `no known NVIDIA GPU on the host (the weights are ${fmt(r.weightsGB, 3)} GB)` : 'the model size is unknown (the server did not say; pass --params and --quant)'}.</p>`}
<h2>Targets</h2>
${input.targets.length ? `<table id="targets"><tr><th>target</th><th>expected</th><th>measured</th><th>verdict</th><th>why</th></tr>
${input.targets.map((t) => `<tr><td>${escape(t.id)}</td><td>${escape(t.expected)}</td><td>${escape(t.actual)}</td><td class="${t.status}">${t.status}</td><td>${escape(t.reason ?? '')}</td></tr>`).join('\n')}</table>` : '<p>No targets given.</p>'}
</body></html>
`;
}
