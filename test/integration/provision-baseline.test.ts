/**
 * The baseline hardening step, fail2ban's recidive jail and ufw bans, the reboot report of `check`,
 * and Lynis's verdict, on real systemd targets (needs root). The baseline converges in four cells;
 * then each part is shown to work in the target: kernel parameters in effect, sudo's log written,
 * an account locked by pam_faillock after failed passwords, no core dumps for a login session.
 * Lynis (Debian's package, run inside the target) scores the same target before and after
 * `provision --playbook hardened`.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sysctlCheck } from '../../src/steps/baseline.js';
import { ensureAptProxy } from '../helpers/aptproxy.js';
import { formatLynis, runLynis, type LynisReport } from '../helpers/lynis.js';
import { fourCells, operatorKeyArgs, zanuriProvision } from '../helpers/provision.js';
import { canRunTargets, startTargets, stopAllTargets, type TestTarget } from '../helpers/targets.js';

const can = canRunTargets();
const playbook = fileURLToPath(new URL('./playbooks/baseline.yaml', import.meta.url));
const bin = fileURLToPath(new URL('../../bin/zanuri.js', import.meta.url));

/**
 * The Lynis hardening index `hardened` reaches on these targets (Debian 12 in systemd-nspawn):
 * measured 82 (fresh: 59). The index is points over a fixed maximum, so it is deterministic for a
 * given Lynis version and host kernel; the margin of 2 covers the kernel.* and fs.* keys, which in
 * a container are the test machine's (9 points here, all unset) and not the target's.
 */
export const LYNIS_GOAL = 80;

async function sh(target: TestTarget, script: string): Promise<string> {
  const r = await target.exec(['sh', '-c', script]);
  expect(r.exitCode, `${script}\n${r.stderr}`).toBe(0);
  return r.stdout;
}

/** Runs a command over SSH as `user` (key login): the way an operator's session gets PAM limits and sudo. */
function ssh(target: TestTarget, user: string, command: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('ssh', [...target.sshArgs(user), command], { timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

describe.skipIf(!can.ok && !process.env['CI'])('provision: baseline hardening on real targets (needs root)', () => {
  let host: TestTarget;
  let scored: TestTarget;
  /** alice's password, set before pwquality (which would judge the random one) is in place. */
  let alicePassword = '';

  beforeAll(async () => {
    if (!can.ok) throw new Error(`CI must be able to run test targets: ${can.why}`);
    await ensureAptProxy();
    [host, scored] = (await startTargets(2)) as [TestTarget, TestTarget];
  }, 300_000);

  afterAll(async () => {
    await stopAllTargets();
  });

  it('converges the baseline in four cells; in a container the kernel\'s own keys and auditd are left for a real boot, and the step says so', async () => {
    await host.addUser('deploy', { sudo: 'nopasswd' });
    alicePassword = (await host.addUser('alice', { sudo: 'password' })).password ?? '';
    const [dry1, , , apply2] = await fourCells(host, ['--playbook', playbook], ['baseline']);
    const planned = dry1.host.steps.find((s) => s.id === 'baseline');
    expect(planned?.actions.map((a) => a.summary)).toContain('create /etc/sysctl.d/60-zanuri-hardening.conf (root:root 0644)');
    const converged = apply2.host.steps.find((s) => s.id === 'baseline')?.why ?? '';
    expect(converged).toMatch(/kernel parameter\(s\) are read-only here \(a container/);
    expect(converged).toMatch(/auditd is enabled; in a container it cannot run, so it is not started/);
    expect(converged).toMatch(/\/tmp is already its own mount with nosuid,nodev/);
    expect((await host.exec(['systemctl', 'is-enabled', 'auditd.service'])).stdout.trim()).toBe('enabled');
  }, 900_000);

  it('puts the network parameters in effect now and persists all of them', async () => {
    const values = await sh(host, 'sysctl -n net.ipv4.conf.all.rp_filter net.ipv4.conf.all.accept_redirects net.ipv4.conf.all.send_redirects net.ipv4.conf.all.accept_source_route net.ipv4.tcp_syncookies net.ipv4.conf.all.log_martians net.ipv6.conf.all.accept_redirects');
    expect(values.split('\n').filter(Boolean)).toEqual(['1', '0', '0', '0', '1', '1', '0']);
    const persisted = await sh(host, 'cat /etc/sysctl.d/60-zanuri-hardening.conf');
    for (const line of ['-kernel.kptr_restrict = 2', '-kernel.dmesg_restrict = 1', '-kernel.yama.ptrace_scope = 1', '-fs.protected_regular = 2', '-fs.suid_dumpable = 0']) expect(persisted).toContain(`${line}\n`);
    expect(await sh(host, 'cat /etc/modprobe.d/60-zanuri-blacklist.conf')).toMatch(/^install dccp \/bin\/true$/m);
    // The validator of the sysctl.d file refuses what sysctl would not read, on the target itself.
    const bad = await host.exec(['sh', '-c', 'printf "kernel.kptr_restrict 2\\n" > /tmp/bad.conf; "$@"', 'x', ...sysctlCheck.argv.map((a) => (a === '{}' ? '/tmp/bad.conf' : a))]);
    expect(bad.exitCode, bad.stderr).toBe(1);
  });

  it('logs sudo commands to /var/log/sudo.log and runs them in a pseudo-terminal', async () => {
    const r = await ssh(host, 'deploy', 'sudo -n /usr/bin/id -u');
    expect(r.stdout.trim(), r.stderr).toBe('0');
    const log = await sh(host, 'cat /var/log/sudo.log');
    expect(log).toMatch(/deploy : .*COMMAND=\/usr\/bin\/id -u/);
    expect(await sh(host, 'sudo -l -U deploy')).toMatch(/use_pty/);
  });

  it('locks an account after 5 failed passwords (pam_faillock), so even the right password then fails', async () => {
    const password = alicePassword;
    // su as an unprivileged user asks PAM for alice's password on stdin: the same auth stack as a console login.
    const attempt = (pw: string) => host.exec(['runuser', '-u', 'nobody', '--', 'sh', '-c', 'printf "%s\\n" "$1" | su alice -c true', 'su-attempt', pw]);
    expect((await attempt(password ?? '')).exitCode, 'the right password works before any failure').toBe(0);
    for (let i = 0; i < 5; i += 1) expect((await attempt('wrong-password')).exitCode).not.toBe(0);
    const tally = await sh(host, 'faillock --user alice');
    expect(tally.split('\n').filter((l) => /\bV$|\bI$|RHOST|TTY|SVC/.test(l) && /\d{4}-\d\d-\d\d/.test(l))).toHaveLength(5);
    expect((await attempt(password ?? '')).exitCode, 'locked: the right password is refused too').not.toBe(0);
    await sh(host, 'faillock --user alice --reset');
    expect((await attempt(password ?? '')).exitCode, 'unlocked again by faillock --reset').toBe(0);
  });

  it('gives login sessions no core dumps, new files mode 0640 or less, and a persistent journal', async () => {
    expect((await ssh(host, 'deploy', 'ulimit -Hc')).stdout.trim()).toBe('0');
    expect((await ssh(host, 'deploy', 'umask')).stdout.trim()).toBe('0027');
    expect(await sh(host, 'grep -E "^(PASS_MAX_DAYS|UMASK)" /etc/login.defs')).toBe('PASS_MAX_DAYS 365\nUMASK 027\n');
    expect(await sh(host, 'test -d /var/log/journal && echo persistent')).toBe('persistent\n');
    expect(await sh(host, 'stat -c %a /home/deploy /etc/crontab 2>/dev/null || stat -c %a /home/deploy')).toMatch(/^750\n/);
  });

  it('check reports a pending reboot and the packages that want it', async () => {
    await sh(host, 'echo "*** System restart required ***" > /var/run/reboot-required && printf "linux-image-6.1.0-28-amd64\\nlibc6\\n" > /var/run/reboot-required.pkgs');
    const out = await new Promise<string>((resolve, reject) => {
      execFile('node', [bin, 'check', '--json', '-F', '/dev/null', '--known-hosts', host.knownHostsPath, '-i', host.privateKeyPath, '--host', `root@${host.host}`], { timeout: 120_000 }, (error, stdout) => {
        if (error && typeof error.code !== 'number') reject(error); else resolve(stdout);
      });
    });
    const report = JSON.parse(out) as { hosts: Array<{ facts: { reboot?: unknown } }> };
    expect(report.hosts[0]?.facts.reboot).toEqual({ required: true, packages: ['libc6', 'linux-image-6.1.0-28-amd64'] });
    await sh(host, 'rm -f /var/run/reboot-required /var/run/reboot-required.pkgs');
  });

  it(`raises Lynis's hardening index to at least ${LYNIS_GOAL} with the hardened playbook, with fail2ban's sshd and recidive jails answering and banning through ufw`, async () => {
    const before: LynisReport = await runLynis(scored);
    const run = await zanuriProvision(scored, ['--playbook', 'hardened', ...operatorKeyArgs(scored)]);
    expect(run.host.steps.filter((s) => s.status === 'failed' || s.status === 'rolled-back'), run.stderr).toEqual([]);
    expect(run.code, run.stderr).toBe(0);
    const after = await runLynis(scored);
    process.stdout.write(`${formatLynis('fresh Debian 12', before)}\n${formatLynis('after hardened', after)}\n`);
    expect(after.hardeningIndex, formatLynis('after hardened', after)).toBeGreaterThanOrEqual(LYNIS_GOAL);
    expect(after.hardeningIndex).toBeGreaterThan(before.hardeningIndex);
    // No Lynis warning is left; pending security updates (PKGS-7392) went with hardened's upgradeNow.
    expect(after.warnings, formatLynis('after hardened', after)).toEqual([]);
    expect([...after.warnings, ...after.suggestions].map((f) => f.test)).not.toContain('PKGS-7392');

    expect(await sh(scored, 'fail2ban-client status recidive')).toMatch(/Currently banned:\s+0/);
    expect(await sh(scored, 'fail2ban-client get sshd actions')).toMatch(/\bufw\b/);
    // A ban really lands in ufw's rules, and unbanning takes it out again (a documentation address, never routed here).
    await sh(scored, 'fail2ban-client set sshd banip 192.0.2.77');
    expect(await sh(scored, 'ufw status')).toMatch(/REJECT\s+192\.0\.2\.77\s+# by Fail2Ban/);
    await sh(scored, 'fail2ban-client set sshd unbanip 192.0.2.77');
    expect(await sh(scored, 'ufw status')).not.toMatch(/192\.0\.2\.77/);
  }, 1_500_000);
});
