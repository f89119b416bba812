/**
 * zanuri bench against a real inference engine: llama.cpp (node-llama-cpp, CPU) serving a tiny
 * model with seeded random weights (test/helpers/llm), locally and through an SSH target.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLlmServer, type LlmServer } from '../helpers/llm/server.js';
import { canRunTargets, startTargets, stopAllTargets, type TestTarget } from '../helpers/targets.js';

const bin = fileURLToPath(new URL('../../bin/zanuri.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'zanuri-bench-'));

interface Run { code: number; stdout: string; stderr: string }

function zanuri(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile('node', [bin, 'bench', ...args], { env: { ...process.env, NO_COLOR: '1' }, timeout: 300_000, maxBuffer: 32 * 1024 * 1024 }, (error, stdout, stderr) =>
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr }));
  });
}

const small = ['--max-tokens', '32', '--prompt-words', '16', '--warmup', '1', '--requests', '4', '--requests-per-level', '4', '--level-time', '60', '--timeout', '60', '--stall', '5'];

describe('zanuri bench against a real llama.cpp engine', () => {
  let server: LlmServer;

  beforeAll(async () => {
    server = await startLlmServer({ parallel: 2 });
  });

  afterAll(async () => {
    await server?.close();
  });

  it('measures the Ollama API with sane numbers that agree with the server\'s own timings within 5%', async () => {
    // 64 tokens: Ollama's eval_count / eval_duration counts N tokens over N-1 decode intervals, which
    // alone reads 1/(N-1) faster than the client's per-token time (3% at 32 tokens, 1.6% at 64).
    const run = await zanuri(['--endpoint', server.url, '--api', 'ollama', '--concurrency', '1,2', '--json', ...small, '--max-tokens', '64']);
    expect(run.code, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(report.model).toBe(server.model);
    const single = report.singleStream.metrics;
    expect(single).toMatchObject({ requests: 4, completed: 4, failed: 0, outputTokens: 4 * 64 });
    expect(single.ttftMs.p50).toBeGreaterThan(0);
    expect(single.tpotMs.p50).toBeGreaterThan(0);
    expect(single.e2eMs.p99).toBeGreaterThanOrEqual(single.e2eMs.p50);
    // Client-side decode speed against eval_count / eval_duration from the server.
    const client = single.streamTokensPerS.p50;
    const server_ = single.serverTokensPerS.p50;
    expect(Math.abs(client - server_) / server_).toBeLessThan(0.05);
    const two = report.levels[0].metrics;
    expect(report.levels[0].plan.concurrency).toBe(2);
    // A level measures at least 3 x its concurrency, so that it holds it: 6 here, not 4.
    expect(two.completed).toBe(6);
    expect(report.levels[0].achieved).toMatchObject({ peakConcurrency: 2, reached: true, warmedConnections: 2 });
    expect(two.aggregateTokensPerS).toBeGreaterThan(0);
  });

  it('measures an OpenAI-compatible server over SSE with a Poisson-rate level', async () => {
    const run = await zanuri(['--endpoint', server.url, '--api', 'openai', '--concurrency', '1', '--rate', '4', '--json', ...small]);
    expect(run.code, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(report.singleStream.metrics).toMatchObject({ completed: 4, outputTokens: 4 * 32 });
    expect(report.levels.at(-1).plan).toMatchObject({ concurrency: null, rate: 4 });
    expect(report.levels.at(-1).metrics.completed).toBe(4);
  });

  it('writes a self-contained HTML report that a real headless browser renders with its charts', async () => {
    const html = join(dir, 'report.html');
    const run = await zanuri(['--endpoint', server.url, '--concurrency', '1,2', '--report', html, ...small]);
    expect(run.code, run.stderr).toBe(0);
    const page = readFileSync(html, 'utf8');
    // Self-contained: no scripts, no external stylesheets, images or fonts.
    expect(page).not.toMatch(/<script|<link|(?:src|href)=["']?https?:/i);
    const dom = await new Promise<string>((resolve, reject) => execFile('chromium', ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', `--user-data-dir=${join(dir, 'chromium')}`, '--dump-dom', `file://${html}`],
    { timeout: 60_000 }, (error, stdout) => (error ? reject(error) : resolve(stdout))));
    expect(dom).toContain('<table id="levels">');
    expect((dom.match(/<polyline/g) ?? []).length).toBeGreaterThanOrEqual(4);
    expect(dom).toMatch(/Throughput against concurrent streams/);
    expect(dom).toMatch(/2 concurrent/);
  });

  it('names the models the server has when asked for one it does not', async () => {
    const run = await zanuri(['--endpoint', server.url, '--model', 'llama-9000', ...small]);
    expect(run.code).toBe(2);
    expect(run.stdout).toMatch(/model "llama-9000" is not served/);
    expect(run.stdout).toContain(server.model);
  });

  it('ends with a clear error and a partial report when the endpoint does not answer', async () => {
    const run = await zanuri(['--endpoint', 'http://127.0.0.1:1', '--json', ...small]);
    expect(run.code).toBe(4);
    const report = JSON.parse(run.stdout);
    expect(report.error.message).toMatch(/connection refused/);
    expect(report.levels).toEqual([]);
  });

  it('reports a stream cut mid-response, a stall and a server error per request, never hanging', async () => {
    server.setFault({ kind: 'cut', afterTokens: 5, count: 1 });
    const cut = await zanuri(['--endpoint', server.url, '--concurrency', '1', '--warmup', '0', '--json', ...small.filter((_, i, a) => a[i - 1] !== '--warmup' && a[i] !== '--warmup')]);
    expect(cut.code).toBe(7);
    const cutReport = JSON.parse(cut.stdout);
    expect(cutReport.singleStream.metrics.failed).toBe(1);
    expect(cutReport.singleStream.metrics.completed).toBe(3);
    expect(cutReport.singleStream.metrics.errors.join(' ')).toMatch(/closed the stream|ended before/);

    server.setFault({ kind: 'stall', afterTokens: 3, count: 1 });
    const stall = await zanuri(['--endpoint', server.url, '--concurrency', '1', '--json', ...small.filter((_, i, a) => a[i - 1] !== '--warmup' && a[i] !== '--warmup'), '--warmup', '0', '--stall', '2']);
    expect(stall.code).toBe(7);
    expect(JSON.parse(stall.stdout).singleStream.metrics.errors.join(' ')).toMatch(/no data for 2000 ms after the tokens started: the server stalled/);

    server.setFault({ kind: 'http-500', message: 'CUDA out of memory', count: 1 });
    const error = await zanuri(['--endpoint', server.url, '--concurrency', '1', '--json', ...small.filter((_, i, a) => a[i - 1] !== '--warmup' && a[i] !== '--warmup'), '--warmup', '0']);
    expect(error.code).toBe(7);
    expect(JSON.parse(error.stdout).singleStream.metrics.errors.join(' ')).toMatch(/HTTP 500: CUDA out of memory/);
    server.setFault({ kind: 'none' });
  });
});

const can = canRunTargets();

describe.skipIf(!can.ok && !process.env['CI'])('zanuri bench through SSH (needs root)', () => {
  let server: LlmServer;
  let target: TestTarget;

  beforeAll(async () => {
    if (!can.ok) throw new Error(`CI must be able to run test targets: ${can.why}`);
    [target] = (await startTargets(1, { kind: 'light' })) as [TestTarget];
    // Listen on the bridge: the target reaches it at 10.213.0.1, and zanuri reaches it only through the target.
    server = await startLlmServer({ listen: '10.213.0.1' });
  });

  afterAll(async () => {
    await server?.close();
    await stopAllTargets();
  });

  it('reaches the endpoint as the host sees it, through the SSH connection, and judges profile targets', async () => {
    const run = await zanuri(['--host', `root@${target.host}`, '-F', '/dev/null', '--known-hosts', target.knownHostsPath, '-i', target.privateKeyPath,
      '--endpoint', server.url, '--concurrency', '1', '--profile', 'evolution-tier3', '--json', ...small]);
    const report = JSON.parse(run.stdout);
    expect(report.error).toBeUndefined();
    expect(report.host).toBe(`root@${target.host}`);
    expect(report.singleStream.metrics.completed).toBe(4);
    // A CPU-only host: GPU targets cannot be judged against hardware, and the tiny model is not a 7B one.
    const verdicts = Object.fromEntries(report.targets.map((t: { id: string; status: string }) => [t.id, t.status]));
    expect(verdicts['decode-7b']).toBe('not-measured');
    expect(verdicts['inference-rps']).toBe('not-measured');
    expect(run.code).toBe(0);
    writeFileSync(join(dir, 'ssh-report.json'), run.stdout);
  });
});
