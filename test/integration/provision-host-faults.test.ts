/**
 * A bad day for one host on a real systemd target (needs root), each fault ending with "the next run
 * converges, nothing lost": two `zanuri provision` runs against the host at once (the host lock: the
 * second refuses or waits, naming the first; a controller killed mid-run leaves no stale lock), the
 * host rebooted by someone else in the middle of a run (reported as a reboot: the boot id changed),
 * and a bad --bench-endpoint refused before any connection (nothing on the host changed).
 * The competing runs, the lock holders and the reboot are real processes on the real target.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureAptProxy } from '../helpers/aptproxy.js';
import { operatorKeyArgs, zanuriProvision, nextRunConverges as nextRunConvergesOn, uninstallTimesyncd as uninstallTimesyncdOn } from '../helpers/provision.js';
import { canRunTargets, startTargets, stopAllTargets, type TestTarget } from '../helpers/targets.js';

const can = canRunTargets();
const bin = fileURLToPath(new URL('../../bin/zanuri.js', import.meta.url));
const playbook = fileURLToPath(new URL('./playbooks/timesync.yaml', import.meta.url));

interface HostJson {
  host: string; ok: boolean; summary: { changed: number; unchanged: number; failed: number };
  steps: Array<{ id: string; status: string; why: string }>;
  hostLock?: { waitedSeconds: number; waitedFor: string };
  error?: { code: string; message: string; hint?: string };
}
interface Run { code: number; stdout: string; stderr: string; host: HostJson | null; error: { code: string; message: string } | null }

describe.skipIf(!can.ok && !process.env['CI'])('provision: a host busy, rebooted or given a bad parameter (needs root)', () => {
  let t: TestTarget;

  beforeAll(async () => {
    if (!can.ok) throw new Error(`CI must be able to run test targets: ${can.why}`);
    await ensureAptProxy();
    [t] = (await startTargets(1, { rebootable: true })) as [TestTarget];
  }, 300_000);

  afterAll(async () => {
    await stopAllTargets();
  });

  /** `zanuri provision --json` against the target, started now; `child` is the controller's process. */
  function start(args: string[], env: Record<string, string> = {}): { child: ChildProcess; done: Promise<Run> } {
    let child: ChildProcess | undefined;
    const done = new Promise<Run>((resolve) => {
      child = execFile('node', [bin, 'provision', '--json', '--yes', '-F', '/dev/null', '--known-hosts', t.knownHostsPath, '-i', t.privateKeyPath, '--host', `root@${t.host}`, ...args],
        { timeout: 900_000, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, NO_COLOR: '1', ...env } }, (error, stdout, stderr) => {
          const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
          let parsed: { hosts?: HostJson[]; error?: { code: string; message: string } } = {};
          try {
            parsed = JSON.parse(stdout) as typeof parsed;
          } catch {
            parsed = {};
          }
          resolve({ code, stdout, stderr, host: parsed.hosts?.[0] ?? null, error: parsed.error ?? null });
        });
    });
    return { child: child as ChildProcess, done };
  }

  /** Command lines of the target's processes that match `pattern` (written so it does not match itself). */
  async function processes(pattern: string): Promise<string[]> {
    const r = await t.exec(['sh', '-c', 'for p in /proc/[0-9]*; do tr "\\0" " " < "$p/cmdline" 2>/dev/null; echo; done | grep -e "$1" || true', 'sh', pattern]);
    return r.stdout.split('\n').filter(Boolean);
  }

  async function until(what: string, test: () => Promise<boolean>, ms = 120_000): Promise<void> {
    for (const started = Date.now(); Date.now() - started < ms;) {
      if (await test()) return;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`timed out waiting until ${what}`);
  }

  /** A service named like apt's daily job that holds apt's lists lock (fcntl, as apt takes it) for `seconds`. */
  async function holdAptLists(unit: string, seconds: number): Promise<void> {
    const perl = 'open(my $f, ">>", $ARGV[0]) or die; fcntl($f, F_SETLK, pack("s s", F_WRLCK, SEEK_SET) . ("\\0" x 60)) or die "lock: $!"; $0 = "apt.systemd.daily"; sleep $ARGV[1]';
    const r = await t.exec(['systemd-run', `--unit=${unit}`, '--collect', '--quiet', 'perl', '-MFcntl', '-e', perl, '/var/lib/apt/lists/lock', String(seconds)]);
    expect(r.exitCode, r.stderr).toBe(0);
  }

  const uninstallTimesyncd = (): Promise<void> => uninstallTimesyncdOn(t);
  const nextRunConverges = async (): Promise<void> => { await nextRunConvergesOn(t, playbook); };

  /** Logins sshd accepted so far, from its journal. */
  const sshLogins = async (): Promise<number> =>
    Number((await t.exec(['sh', '-c', 'journalctl --no-pager -o cat -u ssh.service | grep -c "Accepted publickey" || true'])).stdout.trim() || '0');
  const installed = async (pkg: string): Promise<boolean> => (await t.exec(['sh', '-c', 'dpkg-query -W -f "\\${db:Status-Abbrev}" "$1" 2>/dev/null | grep -q "^ii"', 'sh', pkg])).exitCode === 0;

  it('refuses a bad --bench-endpoint with exit 2 before connecting: no login on the host, no ufw, no fail2ban', async () => {
    const logins = await sshLogins();
    for (const endpoint of ['ftp://127.0.0.1:11434', 'not a url', 'http://']) {
      const run = await start(['--profile', 'evolution-tier1', ...operatorKeyArgs(t), '--bench-endpoint', endpoint]).done;
      expect(run.code, run.stdout + run.stderr).toBe(2);
      expect(run.host, 'no host was reached').toBeNull();
      expect(run.error?.message).toContain('--bench-endpoint');
    }
    // A bad bound in the environment is refused the same way.
    const bound = await start(['--playbook', playbook], { ZANURI_HOST_LOCK_WAIT: 'soon' }).done;
    expect(bound.code).toBe(2);
    expect(bound.error?.message).toContain('ZANURI_HOST_LOCK_WAIT must be a whole number of seconds');
    expect(await sshLogins(), 'sshd saw no login').toBe(logins);
    expect(await installed('ufw')).toBe(false);
    expect(await installed('fail2ban')).toBe(false);
  }, 300_000);

  it('takes the host lock: a second run at once refuses (exit 6) or waits, naming the first run\'s controller and pid, and never interleaves', async () => {
    await uninstallTimesyncd();
    // The first run sits in its packages step while apt's lists lock is held: it holds the host lock all that time.
    await holdAptLists('zanuri-test-lists-lock', 40);
    const first = start(['--playbook', playbook], { ZANURI_APT_LOCK_TIMEOUT: '120' });
    await until('the first run holds the host lock and waits for apt', async () => (await processes('zanuri-ap[t]')).length > 0);
    const firstPid = first.child.pid;
    const holder = (await t.exec(['cat', '/run/zanuri/provision.lock'])).stdout;
    expect(holder).toMatch(new RegExp(`^zanuri on \\S+ \\(pid ${firstPid}, started \\d{4}-\\d\\d-\\d\\dT`));

    const refused = await start(['--playbook', playbook], { ZANURI_HOST_LOCK_WAIT: '0' }).done;
    expect(refused.code, refused.stdout).toBe(6);
    expect(refused.host?.error?.code).toBe('HOST_LOCKED');
    expect(refused.host?.error?.message).toContain(`another zanuri run holds the host lock (zanuri on`);
    expect(refused.host?.error?.message).toContain(`pid ${firstPid}`);
    expect(refused.host?.steps.filter((s) => s.status === 'changed')).toEqual([]);

    const second = start(['--playbook', playbook], { ZANURI_HOST_LOCK_WAIT: '300' });
    const [a, b] = await Promise.all([first.done, second.done]);
    expect(a.code, a.stdout).toBe(0);
    expect(a.host?.steps.find((s) => s.id === 'packages')?.status).toBe('changed');
    expect(b.code, b.stdout).toBe(0);
    // The second read the host only after the first was done: it found everything in place.
    expect(b.host?.hostLock?.waitedFor).toContain(`pid ${firstPid}`);
    expect(b.host?.summary.changed, 'the waiting run changes nothing the first one did').toBe(0);
    await nextRunConverges();
    // A login that becomes root through sudo -n takes the same lock in the same round trip.
    await t.addUser('opslock', { sudo: 'nopasswd' });
    const viaSudo = await zanuriProvision(t, ['--playbook', playbook], 'opslock');
    expect(viaSudo.code, viaSudo.stdout).toBe(0);
    expect(viaSudo.host.roundTrips, 'lock and facts in one round trip on a converged host').toBe(1);
  }, 600_000);

  it('frees the host lock when the controller holding it is killed: the next run does not wait for a stale lock and converges', async () => {
    await uninstallTimesyncd();
    await holdAptLists('zanuri-test-lists-lock-2', 20);
    const crashed = start(['--playbook', playbook], { ZANURI_APT_LOCK_TIMEOUT: '120' });
    await until('the run holds the host lock', async () => (await processes('zanuri-ap[t]')).length > 0);
    crashed.child.kill('SIGKILL');
    await crashed.done;
    await until('the lock holder is gone with its connection', async () => (await processes('zanuri-loc[k]')).length === 0, 60_000);
    expect((await t.exec(['flock', '-n', '/run/zanuri/provision.lock', 'true'])).exitCode, 'the host lock is free').toBe(0);
    const next = await start(['--playbook', playbook], { ZANURI_HOST_LOCK_WAIT: '0', ZANURI_APT_LOCK_TIMEOUT: '120' }).done;
    expect(next.host?.error, next.stdout).toBeUndefined();
    expect(next.code).toBe(0);
    expect(next.host?.hostLock).toBeUndefined();
    await nextRunConverges();
  }, 600_000);

  it('reports a reboot by someone else in the middle of a run as a reboot (exit 4, the step named, the boot id changed); the next run converges', async () => {
    await uninstallTimesyncd();
    const bootBefore = (await t.exec(['cat', '/proc/sys/kernel/random/boot_id'])).stdout.trim();
    await holdAptLists('zanuri-test-lists-lock-3', 60);
    const run = start(['--playbook', playbook], { ZANURI_APT_LOCK_TIMEOUT: '120' });
    await until('the run waits for apt in its packages step', async () => (await processes('zanuri-ap[t]')).length > 0);
    await t.exec(['systemctl', 'reboot']);
    const r = await run.done;
    expect(r.code, r.stdout).toBe(4);
    expect(r.host?.error?.code).toBe('CONNECTION_LOST');
    expect(r.host?.error?.message).toMatch(/rebooted during packages \(its boot id changed from [0-9a-f]{8} to [0-9a-f]{8}\)/);
    expect(r.host?.error?.message).toContain(bootBefore.slice(0, 8));
    expect(r.host?.steps.find((s) => s.id === 'packages')?.status).toBe('failed');
    expect(r.host?.steps.find((s) => s.id === 'timesync')?.status).toBe('not-run');
    await until('the target answers again', async () => (await t.exec(['systemctl', 'is-active', 'ssh'])).stdout.trim() === 'active');
    expect((await t.exec(['cat', '/proc/sys/kernel/random/boot_id'])).stdout.trim()).not.toBe(bootBefore);
    await nextRunConverges();
  }, 600_000);
});
