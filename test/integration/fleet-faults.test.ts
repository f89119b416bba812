/**
 * One fleet run over real systemd targets (needs root) in which one host hangs and one overruns
 * its per-host deadline: the hung host's sshd is stopped (SIGSTOP, its TCP stack still answers, so
 * only SSH keepalives can tell) in the middle of its packages step, the slow one waits on apt's lock
 * past ZANURI_HOST_TIMEOUT. Both are reported with the reason, the others finish, the run ends with
 * exit 4; then the next run converges, nothing lost. Ten targets, the scenario (about 90 s
 * here); FAULT_FLEET_TARGETS sets another count (at least 3).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureAptProxy } from '../helpers/aptproxy.js';
import { uninstallTimesyncd } from '../helpers/provision.js';
import { cgroupPids } from '../helpers/cgroup.js';
import { canRunTargets, startTargets, stopAllTargets, type TestTarget } from '../helpers/targets.js';

const can = canRunTargets();
const bin = fileURLToPath(new URL('../../bin/zanuri.js', import.meta.url));
const playbook = fileURLToPath(new URL('./playbooks/timesync.yaml', import.meta.url));
const count = Math.max(3, Number(process.env['FAULT_FLEET_TARGETS'] ?? 10));

interface HostJson {
  host: string; ok: boolean; summary: { changed: number; unchanged: number; failed: number };
  steps: Array<{ id: string; status: string; why: string }>;
  error?: { code: string; message: string; hint?: string; exitCode: number };
}
interface Run { code: number; stdout: string; stderr: string; hosts: HostJson[]; fleet: { ok: number; failed: number } | null }

describe.skipIf(!can.ok && !process.env['CI'])('a fleet run with a hung host and a slow host (needs root)', () => {
  let targets: TestTarget[];
  let dir: string;
  let sshConfig: string;
  let knownHosts: string;

  beforeAll(async () => {
    if (!can.ok) throw new Error(`CI must be able to run test targets: ${can.why}`);
    await ensureAptProxy();
    targets = await startTargets(count);
    dir = mkdtempSync(join(tmpdir(), 'zanuri-fleet-faults-'));
    knownHosts = join(dir, 'known_hosts');
    writeFileSync(knownHosts, `${targets.map((t) => t.knownHostsLine).join('\n')}\n`);
    // The operator's ssh config decides how soon a silent host counts as gone, as it does for ssh.
    sshConfig = join(dir, 'ssh_config');
    writeFileSync(sshConfig, 'Host *\n  ServerAliveInterval 2\n  ServerAliveCountMax 3\n');
  }, 900_000);

  afterAll(async () => {
    for (const t of targets ?? []) signalSshd(t, 'SIGCONT');
    await stopAllTargets();
  });

  function zanuri(args: string[], env: Record<string, string> = {}): Promise<Run> {
    const argv = [bin, 'provision', '--json', '--yes', '-F', sshConfig, '--known-hosts', knownHosts, '-i', targets[0]?.privateKeyPath ?? '', ...targets.flatMap((t) => ['--host', `root@${t.host}`]), '--playbook', playbook, ...args];
    return new Promise((resolve) => {
      execFile('node', argv, { timeout: 900_000, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, NO_COLOR: '1', ...env } }, (error, stdout, stderr) => {
        let parsed: { hosts?: HostJson[]; fleet?: Run['fleet'] } = {};
        try {
          parsed = JSON.parse(stdout) as typeof parsed;
        } catch {
          parsed = {};
        }
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr, hosts: parsed.hosts ?? [], fleet: parsed.fleet ?? null });
      });
    });
  }

  /** Stops or resumes every sshd of a target (found by its cgroup, never by name on this machine). */
  function signalSshd(t: TestTarget, signal: 'SIGSTOP' | 'SIGCONT'): number {
    let n = 0;
    for (const pid of cgroupPids(t.name)) {
      try {
        if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'sshd') continue;
        process.kill(pid, signal);
        n += 1;
      } catch { /* gone */ }
    }
    return n;
  }

  async function processes(t: TestTarget, pattern: string): Promise<string[]> {
    const r = await t.exec(['sh', '-c', 'for p in /proc/[0-9]*; do tr "\\0" " " < "$p/cmdline" 2>/dev/null; echo; done | grep -e "$1" || true', 'sh', pattern]);
    return r.stdout.split('\n').filter(Boolean);
  }

  async function holdAptLists(t: TestTarget, unit: string, seconds: number): Promise<void> {
    const perl = 'open(my $f, ">>", $ARGV[0]) or die; fcntl($f, F_SETLK, pack("s s", F_WRLCK, SEEK_SET) . ("\\0" x 60)) or die "lock: $!"; $0 = "apt.systemd.daily"; sleep $ARGV[1]';
    const r = await t.exec(['systemd-run', `--unit=${unit}`, '--collect', '--quiet', 'perl', '-MFcntl', '-e', perl, '/var/lib/apt/lists/lock', String(seconds)]);
    expect(r.exitCode, r.stderr).toBe(0);
  }

  it('bounds a host whose sshd stops answering mid-run (keepalives) and one past its per-host deadline; the others finish; exit 4; the next run converges', async () => {
    const [hung, slow, ...rest] = targets as [TestTarget, TestTarget, ...TestTarget[]];
    // The healthy hosts are converged already: their run is one round trip, well inside the deadline.
    const warm = await zanuri([]);
    expect(warm.code, warm.stdout).toBe(0);
    for (const t of [hung, slow]) await uninstallTimesyncd(t);
    await holdAptLists(hung, 'zanuri-test-hung', 600);
    await holdAptLists(slow, 'zanuri-test-slow', 600);

    const running = zanuri([], { ZANURI_HOST_TIMEOUT: '60', ZANURI_APT_LOCK_TIMEOUT: '600' });
    // Mid-run: the hung host is in its packages step, waiting for apt, when its sshd stops.
    for (const started = Date.now(); !(await processes(hung, 'zanuri-ap[t]')).length;) {
      if (Date.now() - started > 120_000) throw new Error('the hung host never reached its packages step');
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(signalSshd(hung, 'SIGSTOP')).toBeGreaterThan(0);
    let run: Run;
    try {
      run = await running;
    } finally {
      signalSshd(hung, 'SIGCONT');
    }

    expect(run.code, run.stdout + run.stderr).toBe(4);
    const byHost = new Map(run.hosts.map((h) => [h.host, h]));
    const hungReport = byHost.get(`root@${hung.host}`);
    expect(hungReport?.error?.code).toBe('CONNECTION_LOST');
    expect(hungReport?.error?.message).toMatch(/stopped answering: no reply to 3 SSH keepalives 2 s apart during packages/);
    expect(hungReport?.steps.find((s) => s.id === 'packages')?.status).toBe('failed');
    expect(hungReport?.steps.find((s) => s.id === 'timesync')?.status).toBe('not-run');
    const slowReport = byHost.get(`root@${slow.host}`);
    expect(slowReport?.error?.code).toBe('HOST_TIMEOUT');
    expect(slowReport?.error?.message).toMatch(/did not finish within 60 s \(it was at packages\)/);
    for (const t of rest) expect(byHost.get(`root@${t.host}`), t.host).toMatchObject({ ok: true });
    expect(run.fleet).toMatchObject({ ok: rest.length, failed: 2 });

    // The apt lock holders go (as apt's daily job would finish); the hung host's sshd answers again.
    await hung.exec(['systemctl', 'stop', 'zanuri-test-hung']);
    await slow.exec(['systemctl', 'stop', 'zanuri-test-slow']);

    // The next run converges everywhere; nothing was left half done.
    const next = await zanuri([], { ZANURI_APT_LOCK_TIMEOUT: '600' });
    expect(next.code, next.stdout + next.stderr).toBe(0);
    const dry = await zanuri(['--dry-run']);
    expect(dry.hosts.flatMap((h) => h.steps.filter((s) => s.status !== 'unchanged').map((s) => `${h.host} ${s.id}`)), 'nothing left to do').toEqual([]);
    for (const t of targets) expect((await t.exec(['dpkg', '--audit'])).stdout, t.host).toBe('');
  }, 900_000);
});
