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
 *   Lynis hardening index before/after provision (hardened, web-app) (goal: >= 80; BENCH_ONLY=lynis runs only this)
 *   zanuri audit vs Lynis warnings, fresh and after hardened / web-app (BENCH_ONLY=audit runs only this)
 *   bin (split bundle) --help and local check vs the tsc output   (goal: ratio <= 1; BENCH_ONLY=start runs only this)
 *   fleet: 10 hosts / 1 vs 10 ssh logins / 1; check over 50 distinct hosts < 200 MB RSS
 *     (BENCH_ONLY=fleet; with BENCH_FLEET_RSS_ONLY=1 only the 50-host RSS)
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer } from 'node:http';
import { runRequest, type Api } from '../src/bench/client.js';
import { hostProbeScript } from '../src/facts/host.js';
import { ensureAptProxy } from '../test/helpers/aptproxy.js';
import { canRunTargets, startTargets, stopAllTargets } from '../test/helpers/targets.js';
import { formatLynis, runLynis, type LynisFinding } from '../test/helpers/lynis.js';

const rounds = Number(process.env['BENCH_ROUNDS'] ?? 15);
const bin = fileURLToPath(new URL('../bin/zanuri.js', import.meta.url));

function time(argv: string[]): number {
  const started = process.hrtime.bigint();
  const result = spawnSync(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (result.status !== 0 && result.status !== 3) throw new Error(`${argv.join(' ')} exited ${result.status}: ${result.stderr}`);
  return ms;
}

/**
 * CPU time (user + system) of one run, from bash's `time`: unlike wall time it barely moves when
 * other work shares the machine, which is what start-up comparisons of a few milliseconds need.
 */
function cpuTime(argv: string[]): number {
  const r = spawnSync('bash', ['-c', 'TIMEFORMAT="%3U %3S"; time "$@" >/dev/null 2>/dev/null', 'bash', ...argv], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  const m = /(\d+\.\d+) (\d+\.\d+)\s*$/.exec(r.stderr);
  if (r.status !== 0 || !m) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
  return (Number(m[1]) + Number(m[2])) * 1000;
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

/** compare() in CPU time (see cpuTime): the rows of the start-up section. */
function compareCpu(name: string, argv: string[], baseline: string, baselineArgv: string[], goal?: number): Row {
  cpuTime(argv);
  cpuTime(baselineArgv);
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < rounds; i += 1) {
    a.push(cpuTime(argv));
    b.push(cpuTime(baselineArgv));
  }
  const ms = median(a);
  const baselineMs = median(b);
  return { name: `${name}, CPU`, baseline: `${baseline}, CPU`, ms, baselineMs, ratio: ms / baselineMs, ...(goal === undefined ? {} : { goal }) };
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
    const result = await runRequest({ api, baseUrl: `http://127.0.0.1:${port}`, model: 'm', prompt: 'p', maxTokens: tokens, timeoutMs: 60_000, firstTokenMs: 10_000, stallMs: 10_000 });
    if (!result.ok || result.tokenTimes.length !== tokens) throw new Error(`parse-rate stream failed: ${result.error ?? result.tokenTimes.length}`);
    return tokens / (result.e2eMs / 1000);
  } finally {
    server.close();
  }
}

/** Runs argv to its end; resolves its wall time and peak RSS (VmHWM, read from /proc until it exits). */
function timed(argv: string[]): Promise<{ ms: number; rssMb: number; code: number | null; stdout: string }> {
  return new Promise((resolve) => {
    const started = process.hrtime.bigint();
    const child = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, NO_COLOR: '1' } });
    let peak = 0;
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    const poll = setInterval(() => {
      try {
        const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (hwm) peak = Math.max(peak, Number(hwm[1]) / 1024);
      } catch { /* gone */ }
    }, 10);
    child.on('close', (code) => {
      clearInterval(poll);
      resolve({ ms: Number(process.hrtime.bigint() - started) / 1e6, rssMb: peak, code, stdout: out });
    });
  });
}

/**
 * Fleet cost (issue 10): converging 10 hosts against one must cost at most 1.25x the ratio of 10
 * parallel `ssh true` logins to one (the floor where targets share this machine's cores).
 * Converged `base` playbook over an Ansible inventory, as the deploy user (root logins are off
 * after ssh-harden). The 50-host memory bound is fleetRss().
 */
async function fleetCost(): Promise<Row[]> {
  await ensureAptProxy();
  const count = Number(process.env['BENCH_FLEET_HOSTS'] ?? 10);
  const targets = await startTargets(count);
  try {
    const dir = mkdtempSync(join(tmpdir(), 'zanuri-bench-fleet-'));
    const known = join(dir, 'known_hosts');
    writeFileSync(known, targets.map((t) => t.knownHostsLine).join('\n') + '\n');
    const key = (targets[0] as (typeof targets)[number]).privateKeyPath;
    const inventory = (user: string, names = 1): string => {
      const file = join(dir, `hosts-${user}-${names}.ini`);
      writeFileSync(file, ['[fleet]', ...targets.flatMap((t, i) => Array.from({ length: names }, (_, n) => `h${i}-${n} ansible_host=${t.host}`)),
        '[fleet:vars]', `ansible_user=${user}`, `ansible_ssh_private_key_file=${key}`, ''].join('\n'));
      return file;
    };
    const provision = (inv: string, limit: string, extra: string[] = []): string[] => ['node', bin, 'provision', '--playbook', 'base', '--yes', '--json', '-F', '/dev/null', '--known-hosts', known,
      '--set', `deploy-user.authorizedKeys=${JSON.stringify([targets[0]?.publicKey])}`, '--inventory', inv, '--limit', limit, ...extra];
    execFileSync(provision(inventory('root'), 'all')[0] as string, provision(inventory('root'), 'all').slice(1), { stdio: 'ignore' }); // converge once, unmeasured
    const inv = inventory('deploy');
    const check = JSON.parse(execFileSync('node', provision(inv, 'all').slice(1)).toString()) as { hosts: Array<{ summary: { changed: number }; ok: boolean }> };
    if (check.hosts.some((h) => !h.ok || h.summary.changed !== 0)) throw new Error('the fleet did not converge');
    const ssh = (t: (typeof targets)[number]): string[] => ['ssh', '-F', '/dev/null', '-i', key, '-o', 'BatchMode=yes', '-o', `UserKnownHostsFile=${known}`, '-o', 'StrictHostKeyChecking=yes', `deploy@${t.host}`, 'true'];
    // Plain spawns, without timed()'s /proc polling, which would tax the baseline.
    const parallel = async (argvs: string[][]): Promise<number> => {
      const started = performance.now();
      const codes = await Promise.all(argvs.map((a) => new Promise<number | null>((resolve) => {
        spawn(a[0] as string, a.slice(1), { stdio: 'ignore' }).on('close', resolve);
      })));
      if (codes.some((c) => c !== 0)) throw new Error('an ssh login failed');
      return performance.now() - started;
    };
    const one: number[] = [];
    const all: number[] = [];
    const ssh1: number[] = [];
    const sshN: number[] = [];
    let rss1 = 0;
    let rssN = 0;
    for (let i = 0; i < Math.max(5, Math.ceil(rounds / 2)); i += 1) {
      const a = await timed(provision(inv, 'h0-0'));
      const b = await timed(provision(inv, 'all'));
      if (a.code !== 0 || b.code !== 0) throw new Error('a converged provision failed');
      one.push(a.ms); all.push(b.ms); rss1 = Math.max(rss1, a.rssMb); rssN = Math.max(rssN, b.rssMb);
      ssh1.push(await parallel([ssh(targets[0] as (typeof targets)[number])]));
      sshN.push(await parallel(targets.map(ssh)));
    }
    const zRatio = median(all) / median(one);
    const sRatio = median(sshN) / median(ssh1);
    process.stdout.write(`fleet: provision (base, converged) 1 host ${median(one).toFixed(0)} ms, ${count} hosts ${median(all).toFixed(0)} ms: ${zRatio.toFixed(2)}x; `
      + `ssh true 1 ${median(ssh1).toFixed(0)} ms, ${count} parallel ${median(sshN).toFixed(0)} ms: ${sRatio.toFixed(2)}x; `
      + `goal ${zRatio.toFixed(2)} <= 1.25 x ${sRatio.toFixed(2)} = ${(1.25 * sRatio).toFixed(2)}: ${zRatio <= 1.25 * sRatio ? 'met' : 'NOT met'}\n`);
    process.stdout.write(`fleet: peak RSS of zanuri: 1 host ${rss1.toFixed(0)} MB, ${count} hosts ${rssN.toFixed(0)} MB\n`);
    return [{ name: `zanuri provision ${count} hosts / 1 host`, baseline: `ssh true ${count} parallel / 1`, ms: median(all), baselineMs: median(sshN), ratio: zRatio / sRatio, goal: 1.25 }];
  } finally {
    await stopAllTargets();
  }
}

/**
 * A 50-host run stays under 200 MB RSS for zanuri itself (issue 10), measured against 50 distinct
 * real hosts: light targets (sshd in a chroot, no systemd: 50 full targets do not fit 2 cores), one
 * `zanuri check` over all of them from an Ansible inventory with --forks 50, so all 50 connections
 * and probes are open at once. Every host must have been reached and judged, or the number says nothing.
 */
async function fleetRss(): Promise<void> {
  const count = Number(process.env['BENCH_RSS_HOSTS'] ?? 50);
  const started = performance.now();
  const targets = await startTargets(count, { kind: 'light' });
  try {
    const dir = mkdtempSync(join(tmpdir(), 'zanuri-bench-rss-'));
    const known = join(dir, 'known_hosts');
    writeFileSync(known, targets.map((t) => t.knownHostsLine).join('\n') + '\n');
    const inventory = join(dir, 'hosts.ini');
    writeFileSync(inventory, ['[fleet]', ...targets.map((t, i) => `h${String(i).padStart(2, '0')} ansible_host=${t.host} ansible_port=${t.port}`),
      '[fleet:vars]', 'ansible_user=root', `ansible_ssh_private_key_file=${(targets[0] as (typeof targets)[number]).privateKeyPath}`, ''].join('\n'));
    const argv = ['node', bin, 'check', '--json', '--inventory', inventory, '--forks', String(count), '-F', '/dev/null', '--known-hosts', known];
    const rounds = 3;
    const runs = [];
    for (let i = 0; i < rounds; i += 1) {
      const r = await timed(argv);
      const hosts = (JSON.parse(r.stdout) as { hosts: Array<{ host: string; error?: { message: string } }> }).hosts;
      const failed = hosts.filter((h) => h.error);
      if (hosts.length !== count || failed.length) throw new Error(`check reached ${hosts.length - failed.length} of ${count} hosts: ${failed.map((h) => `${h.host}: ${h.error?.message}`).slice(0, 3).join('; ')}`);
      runs.push(r);
    }
    const peak = Math.max(...runs.map((r) => r.rssMb));
    process.stdout.write(`fleet RSS: zanuri check over ${count} distinct hosts (light targets, started in ${((performance.now() - started) / 1000).toFixed(0)} s), --forks ${count}: `
      + `peak RSS ${peak.toFixed(0)} MB (runs: ${runs.map((r) => `${r.rssMb.toFixed(0)} MB in ${(r.ms / 1000).toFixed(1)} s`).join(', ')}) (goal < 200 MB: ${peak < 200 ? 'met' : 'NOT met'})\n`);
  } finally {
    await stopAllTargets();
  }
}

/**
 * What each Lynis finding that can remain after `hardened` is about: the zanuri step that fixes it
 * (and why it still shows in a test container), or why it is outside what zanuri can fix.
 */
const lynisNotes: Record<string, string> = {
  'SSH-7408': 'ssh-harden: sshd settings',
  'PKGS-7392': 'unattended-upgrades: pending security updates; the hardened playbook installs them now (upgradeNow), other playbooks leave them to the daily run',
  'KRNL-6000': 'baseline: the kernel.* and fs.* keys are the host kernel\'s in a container (persisted for a real boot)',
  'ACCT-9628': 'baseline: auditd is enabled but cannot run in a container',
  'ACCT-9622': 'baseline: process accounting is refused by the kernel in a container',
  'ACCT-9626': 'not done: sysstat (its ENABLED switch is debconf-owned)',
  'FINT-4350': 'not done: a file integrity tool (AIDE) needs an initial database of the whole disk',
  'HRDN-7230': 'not done: a malware scanner (rkhunter)',
  'DEB-0810': 'baseline.tools can add apt-listbugs (queries the Debian BTS on every apt run)',
  'DEB-0811': 'baseline.tools can add apt-listchanges (mails changelogs)',
  'DEB-0831': 'baseline.tools can add needrestart (may restart services during apt runs)',
  'FILE-6310': 'outside zanuri: partitioning',
  'NAME-4028': 'outside zanuri: the DNS domain of the host',
  'KRNL-5788': 'outside zanuri: no kernel image in a container',
  'LOGG-2154': 'outside zanuri: needs a remote log host',
  'BOOT-5264': 'outside zanuri: per-service systemd sandboxing',
  'TOOL-5002': 'outside zanuri: Lynis looks for a resident automation agent',
  'AUTH-9284': 'outside zanuri: locked system accounts are Debian\'s own',
  'FIRE-4513': 'informational: unused iptables rules',
  LYNIS: 'informational: the Lynis version',
  'FINT-4402': 'false positive: Debian\'s aide.conf says Checksums = H (every hash, sha256 and sha512 included); Lynis greps for the words',
  'HRDN-7222': 'not done: compilers restricted to root (a package of another step brought one in)',
  'HOME-9304': 'baseline.privateHomes: a home directory created after the baseline ran',
  'HTTP-6710': 'certbot: skipped here (no DNS name points at a test target)',
  'HTTP-6712': 'informational: nginx access log',
  'USB-3000': 'not done: USBGuard (could lock out a console keyboard)',
};
const noteOf = (f: LynisFinding): string => lynisNotes[f.test] ?? 'unclassified';

/** Lynis in a fresh target, then after `provision --playbook P`: the hardening index and what remains. */
async function lynisSection(): Promise<void> {
  const can = canRunTargets();
  if (!can.ok) {
    process.stdout.write(`(skipping Lynis: ${can.why})\n`);
    return;
  }
  await ensureAptProxy();
  for (const playbook of (process.env['BENCH_LYNIS_PLAYBOOKS'] ?? 'hardened,web-app').split(',')) {
    const [target] = await startTargets(1);
    if (!target) throw new Error('no target');
    try {
      const before = await runLynis(target);
      const provision = ['node', bin, 'provision', '--playbook', playbook, '--yes', '--json', '--set', `deploy-user.authorizedKeys=${JSON.stringify([target.publicKey])}`,
        '--known-hosts', target.knownHostsPath, '--identity', target.privateKeyPath, '-F', '/dev/null', '--host', `root@${target.host}`,
        // No DNS name points at a test target: the certificate step has nothing to ask for.
        ...(playbook === 'web-app' ? ['--skip', 'certbot'] : [])];
      const result = spawnSync(provision[0] as string, provision.slice(1), { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
      if (result.status !== 0) process.stdout.write(`provision --playbook ${playbook} exited ${result.status}: ${result.stderr.slice(-2000)}\n`);
      const after = await runLynis(target);
      const goal = after.hardeningIndex >= 80 ? 'met' : 'NOT met';
      process.stdout.write(`\nLynis, ${playbook}: hardening index ${before.hardeningIndex} -> ${after.hardeningIndex} (goal >= 80: ${goal})\n`);
      process.stdout.write(`${formatLynis(`remaining after ${playbook}`, after).split('\n').map((line, i) => {
        const finding = i === 0 ? undefined : [...after.warnings, ...after.suggestions][i - 1];
        return finding ? `${line}\n      -> ${noteOf(finding)}` : line;
      }).join('\n')}\n`);
    } finally {
      await stopAllTargets();
    }
  }
}

/**
 * zanuri audit and Lynis on the same targets: fresh (judged against hardened), after `hardened`,
 * after `web-app`. Each Lynis warning is matched to the zanuri rules that report the same thing; a
 * warning zanuri does not report is listed with the reason.
 */
const lynisWarningCover: Record<string, { rules: string[]; otherwise: string }> = {
  'PKGS-7392': { rules: ['audit:security-updates'], otherwise: 'zanuri reports pending security updates only from the package lists already on the host (it fetches nothing); Lynis may have refreshed them' },
  'FIRE-4512': { rules: ['step:ufw', 'audit:firewall'], otherwise: 'the ufw step judges the firewall it manages' },
  'FIRE-4513': { rules: [], otherwise: 'informational: unused iptables rules' },
  'SSH-7408': { rules: ['step:ssh-harden', 'audit:sshd'], otherwise: 'ssh-harden judges sshd -T' },
  'AUTH-9229': { rules: [], otherwise: 'password hashing rounds: outside zanuri (key-only logins)' },
  'AUTH-9283': { rules: ['audit:empty-password'], otherwise: '' },
  'AUTH-9204': { rules: ['audit:uid-zero'], otherwise: '' },
  'NETW-2705': { rules: [], otherwise: 'outside zanuri: the host\'s DNS resolvers (in a test target only the bridge answers)' },
  'NETW-2704': { rules: [], otherwise: 'outside zanuri: the host\'s DNS resolvers' },
  'MAIL-8818': { rules: [], otherwise: 'outside zanuri: the mail server\'s banner (no MTA is installed by zanuri)' },
  'KRNL-5830': { rules: ['audit:reboot-required'], otherwise: 'in a container the running kernel is the test machine\'s, not the target\'s' },
  'KRNL-6000': { rules: ['step:baseline'], otherwise: 'baseline: kernel.* keys are the host kernel\'s in a container' },
  'FILE-7524': { rules: ['audit:world-writable'], otherwise: '' },
  'HRDN-7222': { rules: [], otherwise: 'compilers present: outside zanuri' },
  'TIME-3104': { rules: ['step:timesync', 'audit:time-sync'], otherwise: 'timesync: in a container the clock is the host\'s' },
  'LOGG-2190': { rules: [], otherwise: 'deleted files in use: outside zanuri (a restart of the holder)' },
};

async function auditVsLynisSection(): Promise<void> {
  const can = canRunTargets();
  if (!can.ok) {
    process.stdout.write(`(skipping audit vs Lynis: ${can.why})\n`);
    return;
  }
  await ensureAptProxy();
  type AuditFinding = { rule: string; severity: string; title: string };
  const stages = (process.env['BENCH_AUDIT_PLAYBOOKS'] ?? 'hardened,web-app').split(',');
  for (const playbook of stages) {
    const [target] = await startTargets(1);
    if (!target) throw new Error('no target');
    const keys = ['--set', `deploy-user.authorizedKeys=${JSON.stringify([target.publicKey])}`];
    const ssh = ['--known-hosts', target.knownHostsPath, '--identity', target.privateKeyPath, '-F', '/dev/null'];
    const skip = playbook === 'web-app' ? ['--skip', 'certbot'] : [];
    const audit = (user: string): { findings: AuditFinding[]; score: number; ms: number } => {
      const started = performance.now();
      const r = spawnSync('node', [bin, 'audit', '--json', '--fail-on', 'none', '--playbook', playbook, ...skip, ...keys, ...ssh, '--host', `${user}@${target.host}`], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
      const host = (JSON.parse(r.stdout) as { hosts: { findings: AuditFinding[]; score: number }[] }).hosts[0];
      return { findings: host?.findings ?? [], score: host?.score ?? 0, ms: performance.now() - started };
    };
    try {
      for (const stage of ['fresh', `after ${playbook}`]) {
        if (stage !== 'fresh') {
          const result = spawnSync('node', [bin, 'provision', '--playbook', playbook, '--yes', '--json', ...skip, ...keys, ...ssh, '--host', `root@${target.host}`], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
          if (result.status !== 0) process.stdout.write(`provision --playbook ${playbook} exited ${result.status}: ${result.stderr.slice(-2000)}\n`);
        }
        const z = audit(stage === 'fresh' ? 'root' : 'deploy');
        const lynisStarted = performance.now();
        const l = await runLynis(target);
        const lynisMs = performance.now() - lynisStarted;
        const found = new Set(z.findings.map((f) => f.rule));
        process.stdout.write(`\naudit vs Lynis, ${stage} (judged against ${playbook}): zanuri score ${z.score}, ${z.findings.length} finding(s) in ${(z.ms / 1000).toFixed(1)} s; Lynis index ${l.hardeningIndex}, ${l.warnings.length} warning(s) in ${(lynisMs / 1000).toFixed(1)} s\n`);
        for (const f of z.findings) process.stdout.write(`  zanuri  ${f.severity.padEnd(8)} ${f.rule}: ${f.title}\n`);
        for (const w of l.warnings) {
          const cover = lynisWarningCover[w.test];
          const matched = cover?.rules.filter((r) => found.has(r)) ?? [];
          const verdict = matched.length ? `reported by zanuri as ${matched.join(', ')}` : `NOT reported by zanuri: ${cover?.otherwise || 'not mapped to a zanuri rule yet'}`;
          process.stdout.write(`  lynis   warning  ${w.test}: ${w.text}${w.detail && w.detail !== '-' ? ` (${w.detail})` : ''}\n           -> ${verdict}\n`);
        }
      }
    } finally {
      await stopAllTargets();
    }
  }
}

/**
 * Start-up: what the bin runs (the split bundle, dist/lazy/) against the tsc output it is built from,
 * and the one file first boot ships (dist/bundle/zanuri.mjs) for reference; the README's first
 * command in a checkout (`npx zanuri check` with a fresh npx cache, after npm install has built:
 * the case that took ~14 s when prepare always rebuilt). BENCH_ONLY=start runs only this.
 */
function startRows(): Row[] {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const bundleFile = join(root, 'dist', 'bundle', 'zanuri.mjs');
  const lazyFile = join(root, 'dist', 'lazy', 'zanuri.mjs');
  const tscFile = join(root, 'dist', 'cli', 'main.js');
  // The bin must run the bundle here, not fall back to the tsc output.
  if (statSync(lazyFile).mtimeMs < statSync(tscFile).mtimeMs) throw new Error('dist/lazy/ is older than dist/cli/: run npm run build');
  const rows = [
    compare('zanuri --help (bin: split bundle)', ['node', bin, '--help'], '--help (tsc output)', ['node', tscFile, '--help'], 1),
    compare('zanuri check, this machine (bin)', ['node', bin, 'check', '--json'], 'check (tsc output)', ['node', tscFile, 'check', '--json'], 1),
    compare('zanuri --help (one file, first boot)', ['node', bundleFile, '--help'], '--help (tsc output)', ['node', tscFile, '--help']),
    compare('zanuri --help (split entry, no bin)', ['node', lazyFile, '--help'], '--help (tsc output)', ['node', tscFile, '--help']),
    // Wall time above is what a user waits; CPU time is steadier where other work shares the machine.
    compareCpu('zanuri --help (bin)', ['node', bin, '--help'], '--help (tsc output)', ['node', tscFile, '--help'], 1),
    compareCpu('zanuri check, this machine (bin)', ['node', bin, 'check', '--json'], 'check (tsc output)', ['node', tscFile, 'check', '--json'], 1),
    compareCpu('zanuri --help (one file, first boot)', ['node', bundleFile, '--help'], '--help (tsc output)', ['node', tscFile, '--help']),
  ];
  const cache = mkdtempSync(join(tmpdir(), 'zanuri-npx-cache-'));
  const started = process.hrtime.bigint();
  const first = spawnSync('npx', ['zanuri', 'check', '--json'], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, npm_config_cache: cache, NO_COLOR: '1' } });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (first.status !== 0) throw new Error(`npx zanuri check exited ${first.status}: ${first.stderr}`);
  const direct = median(Array.from({ length: 5 }, () => time(['node', bin, 'check', '--json'])));
  rows.push({ name: 'npx zanuri check (fresh checkout, first run)', baseline: 'node bin/zanuri.js check', ms, baselineMs: direct, ratio: ms / direct });
  return rows;
}

async function main(): Promise<void> {
  if (process.env['BENCH_ONLY'] === 'start') {
    for (const r of startRows()) process.stdout.write(`${r.name.padEnd(48)}${`${r.ms.toFixed(0)} ms`.padEnd(10)}vs ${r.baseline} ${r.baselineMs.toFixed(0)} ms: ${r.ratio.toFixed(2)}x\n`);
    return;
  }
  if (process.env['BENCH_ONLY'] === 'audit') {
    await auditVsLynisSection();
    return;
  }
  if (process.env['BENCH_ONLY'] === 'lynis') {
    await lynisSection();
    return;
  }
  const rows: Row[] = [];
  // BENCH_ONLY=fleet runs just the fleet-cost section.
  if (process.env['BENCH_ONLY'] === 'fleet') {
    const can = canRunTargets();
    if (!can.ok) throw new Error(`the fleet bench needs test targets: ${can.why}`);
    if (process.env['BENCH_FLEET_RSS_ONLY'] !== '1') {
      for (const r of await fleetCost()) process.stdout.write(`${r.name}: ${r.ratio.toFixed(2)}x of the ssh ratio (goal <= ${r.goal})\n`);
    }
    await fleetRss();
    return;
  }
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
  rows.push(...startRows());

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
      // The first run turns root logins off once the deploy user is proven: the measured runs log in as deploy (sudo -n), as an operator would.
      // Nine interleaved rounds open about twenty SSH connections in seconds: ufw limit (the default
      // for a public SSH port) would refuse them, so a playbook with the firewall measures without it.
      const withUfw = /^\s*-\s*step:\s*ufw\s*$/m.test(readFileSync(fileURLToPath(new URL(`../playbooks/${playbook}.yaml`, import.meta.url)), 'utf8'));
      const provisionAs = (user: string): string[] => ['node', bin, 'provision', '--playbook', playbook, '--yes', '--json', '--set', `deploy-user.authorizedKeys=${JSON.stringify([full.publicKey])}`,
        ...(withUfw ? ['--set', 'ufw.sshRateLimit=false'] : []), '--known-hosts', full.knownHostsPath, '--identity', full.privateKeyPath, '-F', '/dev/null', '--host', `${user}@${full.host}`];
      execFileSync('node', provisionAs('root').slice(1), { stdio: 'ignore' }); // converge once, unmeasured
      const provision = provisionAs('deploy');
      const report = JSON.parse(execFileSync(provision[0] as string, provision.slice(1)).toString()).hosts[0];
      if (report.summary.changed !== 0) throw new Error('the second provision run changed something');
      const probeFloor = ['ssh', '-F', '/dev/null', '-i', full.privateKeyPath, '-o', 'BatchMode=yes', '-o', `UserKnownHostsFile=${full.knownHostsPath}`, '-o', 'StrictHostKeyChecking=yes', `deploy@${full.host}`, hostProbeScript];
      rows.push(compare(`zanuri provision (${playbook}, converged)`, provision, 'ssh target <probe>', probeFloor, 3));
      process.stdout.write(`converged provision: ${report.roundTrips} SSH round trip(s), ${report.steps.length} steps unchanged\n`);
    } finally {
      await stopAllTargets();
    }
    rows.push(...(await fleetCost()));
    await fleetRss();
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
  await lynisSection();
  await auditVsLynisSection();
}

await main();
