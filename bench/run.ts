/**
 * npm run bench: speed measured against baselines taken in the same run (these machines are noisy,
 * so only ratios mean anything). Each command runs `rounds` times, interleaved with its baseline,
 * and the medians are compared.
 *
 *   zanuri --help            vs  node -e ''            (start-up cost of the CLI)
 *   zanuri check (local)     vs  sh <probe script>      (what the probe itself costs)
 *   zanuri check --host T    vs  ssh T true             (goal: ratio <= 2; needs root for a test target)
 *   zanuri provision (converged) vs ssh T <one probe>   (goal: ratio <= 3, one gather round trip)
 *   bench client parse rate of a local stream              (goal: >= 20k tokens/s)
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer } from 'node:http';
import { runRequest, type Api } from '../src/bench/client.js';
import { hostProbeScript } from '../src/facts/host.js';
import { ensureAptProxy } from '../test/helpers/aptproxy.js';
import { canRunTargets, startTargets, stopAllTargets } from '../test/helpers/targets.js';

const rounds = Number(process.env['BENCH_ROUNDS'] ?? 15);
const bin = fileURLToPath(new URL('../bin/zanuri.js', import.meta.url));

function time(argv: string[]): number {
  const started = process.hrtime.bigint();
  const result = spawnSync(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (result.status !== 0 && result.status !== 3) throw new Error(`${argv.join(' ')} exited ${result.status}: ${result.stderr}`);
  return ms;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? (s[(s.length - 1) / 2] as number) : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2;
};

interface Row { name: string; baseline: string; ms: number; baselineMs: number; ratio: number; goal?: number }

function compare(name: string, argv: string[], baseline: string, baselineArgv: string[], goal?: number): Row {
  time(argv);
  time(baselineArgv); // warm caches once, unmeasured
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < rounds; i += 1) {
    a.push(time(argv));
    b.push(time(baselineArgv));
  }
  const ms = median(a);
  const baselineMs = median(b);
  return { name, baseline, ms, baselineMs, ratio: ms / baselineMs, ...(goal === undefined ? {} : { goal }) };
}

/**
 * The client must never be the bottleneck: stream 200k tokens from a local server as fast as it can
 * write them and count how many tokens per second the client parses and timestamps.
 */
async function streamParseRate(api: Api): Promise<number> {
  const tokens = 200_000;
  const line = api === 'ollama'
    ? (i: number) => `{"model":"m","created_at":"2024-01-01T00:00:00Z","response":" tok${i % 100}","done":false}\n`
    : (i: number) => `data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":" tok${i % 100}"},"finish_reason":null}]}\n\n`;
  const end = api === 'ollama' ? `{"model":"m","response":"","done":true,"eval_count":${tokens},"eval_duration":1}\n` : 'data: [DONE]\n\n';
  const body = Buffer.from(Array.from({ length: tokens }, (_, i) => line(i)).join('') + end);
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    for (let i = 0; i < body.length; i += 16_384) res.write(body.subarray(i, i + 16_384));
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as { port: number }).port;
  try {
    const result = await runRequest({ api, baseUrl: `http://127.0.0.1:${port}`, model: 'm', prompt: 'p', maxTokens: tokens, timeoutMs: 60_000, stallMs: 10_000 });
    if (!result.ok || result.tokenTimes.length !== tokens) throw new Error(`parse-rate stream failed: ${result.error ?? result.tokenTimes.length}`);
    return tokens / (result.e2eMs / 1000);
  } finally {
    server.close();
  }
}

async function main(): Promise<void> {
  const rows: Row[] = [];
  for (const api of ['ollama', 'openai'] as const) {
    const rates = [];
    for (let i = 0; i < 3; i += 1) rates.push(await streamParseRate(api));
    const rate = median(rates);
    process.stdout.write(`client stream parse rate (${api}): ${rate.toFixed(0)} tokens/s (goal >= 20000: ${rate >= 20_000 ? 'met' : 'NOT met'})\n`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'zanuri-bench-'));
  const probe = join(dir, 'probe.sh');
  writeFileSync(probe, hostProbeScript);
  rows.push(compare('zanuri --help', ['node', bin, '--help'], "node -e ''", ['node', '-e', '']));
  rows.push(compare('zanuri check (this machine)', ['node', bin, 'check', '--json'], 'sh probe.sh', ['sh', probe]));

  const can = canRunTargets();
  if (can.ok) {
    const [target] = await startTargets(1, { kind: 'light' });
    if (!target) throw new Error('no target');
    try {
      const ssh = ['ssh', '-F', '/dev/null', '-i', target.privateKeyPath, '-o', 'BatchMode=yes', '-o', `UserKnownHostsFile=${target.knownHostsPath}`, '-o', 'StrictHostKeyChecking=yes', `root@${target.host}`, 'true'];
      const zanuri = ['node', bin, 'check', '--json', '--known-hosts', target.knownHostsPath, '--identity', target.privateKeyPath, '-F', '/dev/null', '--host', `root@${target.host}`];
      execFileSync(zanuri[0] as string, zanuri.slice(1)); // fails loudly if the target is not checkable
      rows.push(compare('zanuri check --host (one target)', zanuri, 'ssh target true', ssh, 2));
    } finally {
      await stopAllTargets();
    }
    await ensureAptProxy(); // playbooks other than base install packages in the target
    const [full] = await startTargets(1);
    if (!full) throw new Error('no target');
    try {
      const playbook = process.env['BENCH_PLAYBOOK'] ?? 'base';
      const provision = ['node', bin, 'provision', '--playbook', playbook, '--yes', '--json', '--set', `deploy-user.authorizedKeys=${JSON.stringify([full.publicKey])}`,
        '--known-hosts', full.knownHostsPath, '--identity', full.privateKeyPath, '-F', '/dev/null', '--host', `root@${full.host}`];
      execFileSync(provision[0] as string, provision.slice(1), { stdio: 'ignore' }); // converge once, unmeasured
      const report = JSON.parse(execFileSync(provision[0] as string, provision.slice(1)).toString()).hosts[0];
      if (report.summary.changed !== 0) throw new Error('the second provision run changed something');
      const probeFloor = ['ssh', '-F', '/dev/null', '-i', full.privateKeyPath, '-o', 'BatchMode=yes', '-o', `UserKnownHostsFile=${full.knownHostsPath}`, '-o', 'StrictHostKeyChecking=yes', `root@${full.host}`, hostProbeScript];
      rows.push(compare(`zanuri provision (${playbook}, converged)`, provision, 'ssh target <probe>', probeFloor, 3));
      process.stdout.write(`converged provision: ${report.roundTrips} SSH round trip(s), ${report.steps.length} steps unchanged\n`);
    } finally {
      await stopAllTargets();
    }
  } else {
    process.stdout.write(`(skipping the SSH comparison: ${can.why})\n`);
  }

  const pad = (s: string, n: number): string => s.padEnd(n);
  process.stdout.write(`\n${pad('benchmark', 44)}${pad('median', 12)}${pad('baseline', 26)}${pad('baseline median', 18)}ratio\n`);
  for (const r of rows) {
    const verdict = r.goal === undefined ? '' : r.ratio <= r.goal ? `  (goal <= ${r.goal}: met)` : `  (goal <= ${r.goal}: NOT met)`;
    process.stdout.write(`${pad(r.name, 44)}${pad(`${r.ms.toFixed(0)} ms`, 12)}${pad(r.baseline, 26)}${pad(`${r.baselineMs.toFixed(0)} ms`, 18)}${r.ratio.toFixed(2)}x${verdict}\n`);
  }
  process.stdout.write(`\n${rounds} interleaved rounds each, medians; ${JSON.stringify({ rows })}\n`);
}

await main();
