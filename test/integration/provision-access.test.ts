/**
 * deploy-user and ssh-harden on real systemd targets (needs root), including the lockout cases:
 * a drop-in that would refuse the operator is rolled back and the host stays reachable.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureAptProxy } from '../helpers/aptproxy.js';
import { run } from '../helpers/proc.js';
import { fourCells, operatorKeyArgs, zanuriProvision } from '../helpers/provision.js';
import { canRunTargets, startTargets, stopAllTargets, type TestTarget } from '../helpers/targets.js';

const can = canRunTargets();

describe.skipIf(!can.ok && !process.env['CI'])('provision: deploy user and SSH hardening on real targets (needs root)', () => {
  let target: TestTarget;
  let lockout: TestTarget;

  beforeAll(async () => {
    if (!can.ok) throw new Error(`CI must be able to run test targets: ${can.why}`);
    await ensureAptProxy();
    [target, lockout] = (await startTargets(2)) as [TestTarget, TestTarget];
  });

  afterAll(async () => {
    await stopAllTargets();
  });

  /** A login that offers only a password (no key): sshd answers with the methods it accepts. */
  const tryPassword = (user: string): Promise<{ exitCode: number; stderr: string }> =>
    run(['ssh', '-F', '/dev/null', '-o', 'BatchMode=yes', '-o', 'PubkeyAuthentication=no', '-o', 'PreferredAuthentications=password,keyboard-interactive',
      '-o', `UserKnownHostsFile=${target.knownHostsPath}`, '-o', 'StrictHostKeyChecking=yes', `${user}@${target.host}`, 'true'], { timeoutMs: 30_000 });
  const sshd = async (...args: string[]): Promise<string> => (await target.exec(['sshd', '-T', ...args])).stdout;

  it('converges deploy-user and ssh-harden in four cells: root logins end only after the deploy user\'s key login and sudo are proven, passwords are refused, weak algorithms and moduli are gone', async () => {
    const [dry1, apply1] = await fourCells(target, ['--playbook', 'base', ...operatorKeyArgs(target)], ['deploy-user', 'ssh-harden'], { after: 'deploy' });
    const planned = dry1.host.steps.find((s) => s.id === 'ssh-harden')?.actions ?? [];
    const dropIn = planned.find((a) => a.summary.includes('00-zanuri-hardening.conf'));
    expect(dropIn?.diff).toContain('+PasswordAuthentication no');
    expect(dropIn?.diff).toContain('+PermitRootLogin no');
    expect(dropIn?.why).toMatch(/PermitRootLogin no: log in as deploy from now on/);
    expect(planned.map((a) => a.summary).join('\n'), 'Debian 12 ships 2048-bit moduli').toMatch(/remove the \d+ moduli under 3072 bits from \/etc\/ssh\/moduli/);
    expect(apply1.host.steps.map((s) => s.id).indexOf('deploy-user')).toBeLessThan(apply1.host.steps.map((s) => s.id).indexOf('ssh-harden'));
    expect(apply1.host.steps.find((s) => s.id === 'deploy-user')?.why).toMatch(/user deploy does not exist/);

    // Root is refused now, even with the right key; the deploy user gets in by key and becomes root without a password.
    const asRoot = await run(['ssh', ...target.sshArgs(), '-o', 'ConnectTimeout=5', 'true'], { timeoutMs: 30_000 });
    expect(asRoot.exitCode).not.toBe(0);
    expect(asRoot.stderr).toMatch(/Permission denied \(publickey\)/);
    const asDeploy = await run(['ssh', ...target.sshArgs('deploy'), '-o', 'ConnectTimeout=5', 'sudo', '-n', 'id', '-un'], { timeoutMs: 30_000 });
    expect(asDeploy.exitCode, asDeploy.stderr).toBe(0);
    expect(asDeploy.stdout).toBe('root\n');
    // sshd really refuses passwords: the server offers only publickey (OpenSSH lists what it accepts).
    const password = await tryPassword('deploy');
    expect(password.exitCode).not.toBe(0);
    expect(password.stderr).toMatch(/Permission denied \(publickey\)/);

    const effective = await sshd('-C', 'user=deploy,host=10.213.0.1,addr=10.213.0.1');
    for (const line of ['passwordauthentication no', 'kbdinteractiveauthentication no', 'permitrootlogin no', 'maxauthtries 6', 'logingracetime 30',
      'clientaliveinterval 300', 'clientalivecountmax 2', 'maxstartups 10:30:60', 'loglevel VERBOSE', 'x11forwarding no', 'allowtcpforwarding local',
      'allowagentforwarding no', 'permittunnel no']) {
      expect(effective.split('\n'), line).toContain(line);
    }
    const algorithms = effective.split('\n').filter((l) => /^(kexalgorithms|ciphers|macs) /.test(l)).join('\n');
    // The target's own OpenSSH (ssh -Q) decides: Debian 12's 9.2 knows sntrup761 under both names, not ML-KEM.
    expect(algorithms).toMatch(/^kexalgorithms sntrup761x25519-sha512,sntrup761x25519-sha512@openssh\.com,curve25519-sha256,/m);
    expect(algorithms).not.toMatch(/nistp|sha1|umac-64|group14|cbc/);
    const moduli = await target.exec(['awk', '!/^#/ { n++; if ($5 < 3071) weak++ } END { print n + 0, weak + 0 }', '/etc/ssh/moduli']);
    expect(moduli.stdout).toMatch(/^[1-9]\d* 0\n$/);
    expect((await target.exec(['visudo', '-c'])).exitCode).toBe(0);
  });

  it('finds a line placed before the Include and a Match block that let passwords back in, comments them out in four cells, and sshd refuses passwords again', async () => {
    // An administrator edits sshd_config behind zanuri's back; the drop-in itself is untouched (the old step called this converged).
    const edit = await target.exec(['sh', '-c', 'sed -i "1i PasswordAuthentication yes" /etc/ssh/sshd_config && printf "Match Address 10.213.0.0/24\\n  KbdInteractiveAuthentication yes\\n  PasswordAuthentication yes\\n" >> /etc/ssh/sshd_config && systemctl reload ssh']);
    expect(edit.exitCode, edit.stderr).toBe(0);
    expect(await sshd('-C', 'user=deploy,host=10.213.0.1,addr=10.213.0.1')).toMatch(/^passwordauthentication yes$/m);

    const [dry1] = await fourCells(target, ['--playbook', 'base', ...operatorKeyArgs(target)], ['ssh-harden'], { before: 'deploy' });
    const step = dry1.host.steps.find((s) => s.id === 'ssh-harden');
    expect(step?.why).toMatch(/\/etc\/ssh\/sshd_config:1 "PasswordAuthentication yes" is read before \/etc\/ssh\/sshd_config\.d\/00-zanuri-hardening\.conf/);
    expect(step?.why).toMatch(/"PasswordAuthentication yes" in "Match Address 10\.213\.0\.0\/24" lets in more than "passwordauthentication no"/);
    expect(step?.actions.map((a) => a.summary)).toEqual([expect.stringMatching(/^update \/etc\/ssh\/sshd_config /)]);

    for (const user of ['deploy', 'root']) {
      const effective = await sshd('-C', `user=${user},host=10.213.0.1,addr=10.213.0.1`);
      expect(effective, user).toMatch(/^passwordauthentication no$/m);
      expect(effective, user).toMatch(/^kbdinteractiveauthentication no$/m);
    }
    const config = (await target.exec(['cat', '/etc/ssh/sshd_config'])).stdout;
    expect(config).toMatch(/^# zanuri \(ssh-harden\) turned the next line off: .*\n#PasswordAuthentication yes$/m);
    expect(config).toMatch(/^Match Address 10\.213\.0\.0\/24\n# zanuri .*\n#  KbdInteractiveAuthentication yes\n# zanuri .*\n#  PasswordAuthentication yes$/m);
    const password = await tryPassword('deploy');
    expect(password.stderr).toMatch(/Permission denied \(publickey\)/);
  });

  it('rolls back an sshd drop-in that would lock the operator out, and the host stays reachable', async () => {
    const args = ['--playbook', 'base', ...operatorKeyArgs(lockout), '--set', 'ssh-harden.deployUser=null', '--set', 'ssh-harden.allowUsers=["nobody"]'];
    const run = await zanuriProvision(lockout, args);
    const step = run.host.steps.find((s) => s.id === 'ssh-harden');
    expect(step?.status).toBe('rolled-back');
    expect(step?.why).toMatch(/rolled back/);
    expect(run.code).toBe(6);
    const after = await lockout.exec(['test', '-e', '/etc/ssh/sshd_config.d/00-zanuri-hardening.conf']);
    expect(after.exitCode, 'the drop-in is gone again').not.toBe(0);
    const moduli = await lockout.exec(['awk', '!/^#/ && $5 < 3071 { weak++ } END { print weak + 0 }', '/etc/ssh/moduli']);
    expect(Number(moduli.stdout), 'the pruned moduli are back').toBeGreaterThan(0);
    expect(step?.actions.map((a) => a.summary).join('\n')).toMatch(/remove the \d+ moduli under 3072 bits/);
    // A fresh connection works: zanuri itself can still log in and sees the old state.
    const again = await zanuriProvision(lockout, ['--playbook', 'base', ...operatorKeyArgs(lockout), '--only', 'deploy-user', '--dry-run']);
    expect(again.host.ok).toBe(true);
  });

  it('refuses clearly, changing nothing, when the login user\'s sudo wants a password', async () => {
    await lockout.addUser('ops', { sudo: 'password' });
    const run = await zanuriProvision(lockout, ['--playbook', 'base', ...operatorKeyArgs(lockout)], 'ops');
    expect(run.code).toBe(2);
    expect(run.host.error?.message).toMatch(/ops is not root and sudo asks for a password/);
    expect(run.host.steps).toEqual([]);
  });

  it('keeps root logins and changes nothing when the deploy user\'s sudo cannot be proven', async () => {
    const result = await zanuriProvision(lockout, ['--playbook', 'base', ...operatorKeyArgs(lockout), '--only', 'ssh-harden', '--set', 'ssh-harden.deployUser=ops']);
    const step = result.host.steps.find((s) => s.id === 'ssh-harden');
    expect(step?.status).toBe('failed');
    expect(step?.why).toMatch(/^nothing changed: sudo -n as ops over a fresh SSH login failed/);
    expect(result.code).toBe(6);
    expect((await lockout.exec(['test', '-e', '/etc/ssh/sshd_config.d/00-zanuri-hardening.conf'])).exitCode, 'no drop-in').not.toBe(0);
    expect((await lockout.exec(['sshd', '-T'])).stdout).toMatch(/^permitrootlogin without-password$/m);
    const asRoot = await run(['ssh', ...lockout.sshArgs(), '-o', 'ConnectTimeout=5', 'true'], { timeoutMs: 30_000 });
    expect(asRoot.exitCode, asRoot.stderr).toBe(0);
  });

  it('shows live listr2 progress on a terminal: a line per step with its status and time', async () => {
    // util-linux's script(1) gives the CLI a pseudo-terminal, as an operator's shell would.
    const cli = fileURLToPath(new URL('../../bin/zanuri.js', import.meta.url));
    const command = ['stty cols 160 rows 50;', 'node', cli, 'provision', '--playbook', 'base', '--yes', '-F', '/dev/null', '--known-hosts', target.knownHostsPath,
      '-i', target.privateKeyPath, '--host', `deploy@${target.host}`, '--set', `'deploy-user.authorizedKeys=${JSON.stringify([target.publicKey])}'`].join(' ');
    const tty = await run(['script', '-qec', command, '/dev/null'], { timeoutMs: 120_000 });
    const screen = tty.stdout.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
    expect(tty.exitCode, screen).toBe(0);
    expect(screen).toMatch(/deploy-user: unchanged \(\d+ ms\)/);
    expect(screen).toMatch(/ssh-harden: unchanged \(\d+ ms\)/);
    expect(screen).toContain(`deploy@${target.host}`);
  });
});
