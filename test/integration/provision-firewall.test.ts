/**
 * ufw and fail2ban on real systemd targets (needs root): the four cells, then the firewall seen
 * from inside (`ufw status verbose`) and from outside (which ports answer the host), a fresh SSH
 * login through it, the lockout case (a firewall that would cut the operator off is turned off
 * again), and fail2ban's sshd jail really banning the host after failed logins.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureAptProxy } from '../helpers/aptproxy.js';
import { portOpen, run } from '../helpers/proc.js';
import { fourCells, zanuriProvision } from '../helpers/provision.js';
import { canRunTargets, startTargets, stopAllTargets, type TestTarget } from '../helpers/targets.js';

const can = canRunTargets();
const playbook = ['--playbook', 'test/integration/playbooks/firewall.yaml'];
const hostSide = '10.213.0.1';

/** A throwaway TCP listener inside the target (a transient systemd unit), so a port has something to answer. */
async function listen(target: TestTarget, port: number): Promise<void> {
  const r = await target.exec(['systemd-run', `--unit=zanuri-probe-${port}`, 'python3', '-m', 'http.server', '--bind', '0.0.0.0', String(port)]);
  expect(r.exitCode, r.stderr).toBe(0);
  for (let i = 0; i < 50; i++) {
    if ((await target.exec(['sh', '-c', 'ss -Htln "sport = :$1" | grep -q .', 'sh', String(port)])).exitCode === 0) return;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`nothing listens on ${port} in ${target.name}`);
}

/** ufw limit drops a 6th new SSH connection from one address within 30 s: a test that makes several waits this long first. */
const limitWindow = (): Promise<void> => new Promise((res) => setTimeout(res, 31_000));

/** Does a TCP connection from inside `from` (another target) to host:port complete within 3 s? */
async function reachesFrom(from: TestTarget, host: string, port: number): Promise<boolean> {
  const r = await from.exec(['python3', '-c', 'import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 3)', host, String(port)], { timeoutMs: 20_000 });
  return r.exitCode === 0;
}

const sshAsRoot = (t: TestTarget): Promise<{ exitCode: number; stdout: string; stderr: string }> =>
  run(['ssh', ...t.sshArgs(), '-o', 'ConnectTimeout=5', 'echo', 'through'], { timeoutMs: 30_000 });

describe.skipIf(!can.ok && !process.env['CI'])('provision: ufw and fail2ban on real targets (needs root)', () => {
  let target: TestTarget;
  let lockout: TestTarget;
  let admin: TestTarget;

  beforeAll(async () => {
    if (!can.ok) throw new Error(`CI must be able to run test targets: ${can.why}`);
    await ensureAptProxy();
    [target, lockout, admin] = (await startTargets(3)) as [TestTarget, TestTarget, TestTarget];
  });

  afterAll(async () => {
    await stopAllTargets();
  });

  it('converges ufw and fail2ban in four cells; the firewall is up with SSH rate-limited, 80/443 open and 5432 only from the bridge', async () => {
    const [dry1, apply1] = await fourCells(target, playbook, ['ufw', 'fail2ban']);
    const ufwDry = dry1.host.steps.find((s) => s.id === 'ufw');
    expect(ufwDry?.actions[0]?.why, 'SSH is allowed first').toMatch(/SSH \(22\/tcp\) must be allowed before the firewall goes up/);
    expect(ufwDry?.actions.at(-1)?.summary.replace(/'/g, '')).toMatch(/ufw --force enable/);
    const f2b = apply1.host.steps.find((s) => s.id === 'fail2ban');
    expect(f2b?.why).toMatch(/\/var\/log\/auth\.log, which does not exist/);

    const status = await target.exec(['ufw', 'status', 'verbose']);
    expect(status.exitCode, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/^Status: active$/m);
    expect(status.stdout).toMatch(/^Default: deny \(incoming\), allow \(outgoing\)/m);
    expect(status.stdout, 'SSH stays public (no adminFrom), so it is rate-limited').toMatch(/^22\/tcp\s+LIMIT IN\s+Anywhere\s*$/m);
    expect(status.stdout).toMatch(/^22\/tcp \(v6\)\s+LIMIT IN\s+Anywhere \(v6\)\s*$/m);
    expect(status.stdout).not.toMatch(/^22\/tcp\s+ALLOW/m);
    expect(status.stdout).toMatch(/^80\/tcp\s+ALLOW IN\s+Anywhere\s*$/m);
    expect(status.stdout).toMatch(/^443\/tcp\s+ALLOW IN\s+Anywhere\s*$/m);
    expect(status.stdout).toMatch(/^5432\/tcp\s+ALLOW IN\s+10\.213\.0\.0\/24\s*$/m);
    expect(status.stdout).toMatch(/^8000\/tcp\s+ALLOW IN\s+10\.213\.0\.0\/24\s*$/m);
    expect(status.stdout.match(/^5432\/tcp.*$/gm), '5432 has no other rule (no v6 "Anywhere")').toHaveLength(1);

    // A fresh SSH connection still gets in (zanuri's later runs did too), with plain OpenSSH.
    const ssh = await sshAsRoot(target);
    expect(ssh.exitCode, ssh.stderr).toBe(0);
    expect(ssh.stdout).toBe('through\n');

    // From outside: an opened port answers, an unopened one is dropped although something listens.
    await listen(target, 80);
    await listen(target, 5432);
    await listen(target, 9999);
    expect(await portOpen(target.host, 80, 3000), '80 is open to everyone').toBe(true);
    expect(await portOpen(target.host, 5432, 3000), '5432 is open to the bridge, where the test runs').toBe(true);
    expect(await portOpen(target.host, 9999, 3000), '9999 was never opened').toBe(false);

    const jail = await target.exec(['fail2ban-client', 'status', 'sshd']);
    expect(jail.exitCode, jail.stderr).toBe(0);
    expect(jail.stdout).toMatch(/Currently banned:\s+0/);
    expect(jail.stdout).toMatch(/Journal matches:/);
    expect((await target.exec(['systemctl', 'is-active', 'fail2ban'])).stdout.trim()).toBe('active');
    expect((await target.exec(['systemctl', 'is-enabled', 'fail2ban'])).stdout.trim()).toBe('enabled');
  }, 600_000);

  it('fail2ban bans the host after failed SSH logins, and unbanning lets it back in', async () => {
    // Logins as a user that does not exist: sshd logs "Invalid user ... from 10.213.0.1", a failure the sshd filter counts.
    await limitWindow();
    for (let attempt = 0; attempt < 5; attempt++) {
      await run(['ssh', '-F', '/dev/null', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=5', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
        '-o', 'IdentitiesOnly=yes', '-i', target.privateKeyPath, `nosuchuser@${target.host}`, 'true'], { timeoutMs: 20_000 });
    }
    // The journal backend of fail2ban 1.0.2 picks new entries up with a delay of seconds: poll, bounded.
    for (let i = 0; i < 60; i++) {
      if ((await target.exec(['fail2ban-client', 'status', 'sshd'])).stdout.includes(hostSide)) break;
      await new Promise((res) => setTimeout(res, 1000));
    }
    try {
      const jail = await target.exec(['fail2ban-client', 'status', 'sshd']);
      expect(jail.stdout, 'the host side is in the banned list').toMatch(new RegExp(`Banned IP list:.*\\b${hostSide.replace(/\./g, '\\.')}\\b`));
      // With ufw on the host, fail2ban bans through ufw (banaction auto): the ban is a ufw rule inserted first.
      const rules = await target.exec(['ufw', 'status']);
      expect(rules.stdout, 'the ban reached the firewall').toMatch(/^Anywhere\s+(?:REJECT|DENY)(?: IN)?\s+10\.213\.0\.1\b/m);
      expect((await sshAsRoot(target)).exitCode, 'even the right key is refused while banned').not.toBe(0);
    } finally {
      await target.exec(['fail2ban-client', 'set', 'sshd', 'unbanip', hostSide]);
      // The attempts above count against ufw limit for 30 s, for this test and the next.
      await limitWindow();
    }
    const again = await sshAsRoot(target);
    expect(again.exitCode, again.stderr).toBe(0);
  }, 300_000);

  it('moves an internal port to the new internalFrom only: the old, wider rule is deleted', async () => {
    const narrowed = await zanuriProvision(target, [...playbook, '--set', 'ufw.internalFrom=["10.213.0.128/25"]']);
    expect(narrowed.code, narrowed.stderr).toBe(0);
    const step = narrowed.host.steps.find((s) => s.id === 'ufw');
    expect(step?.status).toBe('changed');
    expect(step?.actions.map((a) => a.summary.replace(/'/g, '')).join('\n')).toMatch(/ufw delete allow proto tcp from 10\.213\.0\.0\/24 to 0\.0\.0\.0\/0 port 5432/);
    const status = await target.exec(['ufw', 'status']);
    expect(status.stdout).toMatch(/^5432\/tcp\s+ALLOW\s+10\.213\.0\.128\/25\s*$/m);
    expect(status.stdout).not.toMatch(/10\.213\.0\.0\/24/);
    expect(await portOpen(target.host, 5432, 3000), '5432 no longer answers the host side (10.213.0.1 is outside /25)').toBe(false);
    expect(await portOpen(target.host, 80, 3000)).toBe(true);
  }, 120_000);

  it('turns the firewall off again when a fresh SSH connection fails through it, and the host stays reachable', async () => {
    // An existing rule that drops SSH from the operator's side: ufw appends the allow after it.
    const install = await lockout.exec(['sh', '-c', 'apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends ufw >/dev/null'], { timeoutMs: 600_000 });
    expect(install.exitCode, install.stderr).toBe(0);
    const deny = await lockout.exec(['ufw', 'deny', 'proto', 'tcp', 'from', hostSide, 'to', 'any', 'port', '22']);
    expect(deny.exitCode, deny.stderr).toBe(0);

    const result = await zanuriProvision(lockout, [...playbook, '--only', 'ufw']);
    const step = result.host.steps.find((s) => s.id === 'ufw');
    expect(step?.status, JSON.stringify(step)).toBe('rolled-back');
    expect(step?.why).toMatch(/rolled back/);
    expect(result.code).toBe(6);
    expect((await lockout.exec(['ufw', 'status'])).stdout).toMatch(/^Status: inactive$/m);
    const ssh = await sshAsRoot(lockout);
    expect(ssh.exitCode, ssh.stderr).toBe(0);
    const again = await zanuriProvision(lockout, [...playbook, '--only', 'ufw', '--dry-run']);
    expect(again.host.ok).toBe(true);
  }, 300_000);

  it('refuses, changing nothing, when this connection comes from outside adminFrom', async () => {
    const refused = await zanuriProvision(admin, [...playbook, '--only', 'ufw', '--set', 'ufw.adminFrom=["10.213.0.128/25"]']);
    expect(refused.code).toBe(2);
    expect(refused.host.error?.message).toBe('ufw: this connection comes from 10.213.0.1, which is outside adminFrom (10.213.0.128/25): SSH would be closed to you, so nothing was changed');
    expect(refused.host.steps).toEqual([]);
    expect((await admin.exec(['dpkg-query', '-W', '-f=${Status}', 'ufw'])).stdout, 'not even the package was installed').not.toMatch(/install ok installed/);
  });

  it('with adminFrom, allows SSH from the admin source only, in four cells: a login from the host side works, a connection from another target is dropped', async () => {
    const args = [...playbook, '--only', 'ufw', '--set', `ufw.adminFrom=["${hostSide}"]`];
    const [dry1] = await fourCells(admin, args, ['ufw']);
    expect(dry1.host.steps.find((s) => s.id === 'ufw')?.actions[0]?.why).toMatch(/^SSH \(22\/tcp\) must be allowed from 10\.213\.0\.1 \(adminFrom\)/);
    const status = (await admin.exec(['ufw', 'status'])).stdout;
    expect(status).toMatch(/^22\/tcp\s+ALLOW\s+10\.213\.0\.1\s*$/m);
    expect(status.match(/^22\/tcp.*$/gm), 'no other SSH rule: no LIMIT, no Anywhere, no v6').toHaveLength(1);

    const ssh = await sshAsRoot(admin);
    expect(ssh.exitCode, ssh.stderr).toBe(0);
    await listen(admin, 80);
    expect(await reachesFrom(lockout, admin.host, 80), 'the other target reaches the public port').toBe(true);
    expect(await reachesFrom(lockout, admin.host, 22), `${lockout.host} is outside adminFrom: SSH is dropped`).toBe(false);
  }, 300_000);

  it('opens SSH to everyone again, rate-limited, when adminFrom is emptied', async () => {
    const opened = await zanuriProvision(admin, [...playbook, '--only', 'ufw']);
    expect(opened.code, opened.stderr).toBe(0);
    expect(opened.host.steps.find((s) => s.id === 'ufw')?.actions.map((a) => a.summary.replace(/'/g, ''))).toEqual(['ufw limit proto tcp from any to any port 22']);
    expect((await admin.exec(['ufw', 'status'])).stdout).toMatch(/^22\/tcp\s+LIMIT\s+Anywhere\s*$/m);
    expect(await reachesFrom(lockout, admin.host, 22)).toBe(true);
  }, 120_000);

  it('a fresh-login proof refused by ufw limit (a 6th connection within 30 s) waits out the window: the step converges instead of rolling back', async () => {
    const rejected = async (): Promise<number> => {
      const r = await target.exec(['iptables', '-L', 'ufw-user-limit', '-v', '-x', '-n']);
      expect(r.exitCode, r.stderr).toBe(0);
      return Number(/^\s*(\d+)\s+\d+\s+REJECT\b/m.exec(r.stdout)?.[1] ?? Number.NaN);
    };
    // `target` has SSH behind the limit only (admin still allows its former adminFrom source past it).
    expect((await target.exec(['ufw', 'status'])).stdout.match(/^22\/tcp(?! \(v6\)).*$/gm)).toEqual([expect.stringMatching(/^22\/tcp\s+LIMIT\s+Anywhere\s*$/)]);
    await limitWindow();
    const before = await rejected();
    // Four logins of the operator's own, then zanuri's connection is the 5th and the new user's login proof the 6th.
    for (let i = 0; i < 4; i++) expect((await sshAsRoot(target)).exitCode).toBe(0);
    const user = await zanuriProvision(target, ['--playbook', 'hardened', '--only', 'deploy-user', '--set', 'deploy-user.name=prober',
      '--set', `deploy-user.authorizedKeys=${JSON.stringify([target.publicKey])}`]);
    expect(user.code, user.stderr).toBe(0);
    expect(user.host.steps.find((s) => s.id === 'deploy-user')?.status).toBe('changed');
    expect(await rejected() - before, 'ufw limit refused the proof at least once').toBeGreaterThan(0);
    expect((await target.exec(['sudo', '-u', 'prober', 'true'])).exitCode).toBe(0);
  }, 300_000);
});
