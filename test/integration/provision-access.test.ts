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

  it('converges deploy-user and ssh-harden in four cells, then password login is refused and key login works', async () => {
    const [dry1, apply1] = await fourCells(target, ['--playbook', 'base', ...operatorKeyArgs(target)], ['deploy-user', 'ssh-harden']);
    const dropIn = dry1.host.steps.find((s) => s.id === 'ssh-harden')?.actions[0];
    expect(dropIn?.diff).toContain('+PasswordAuthentication no');
    expect(apply1.host.steps.find((s) => s.id === 'deploy-user')?.why).toMatch(/user deploy does not exist/);

    // The deploy user logs in with the operator's key and becomes root without a password.
    const asDeploy = await zanuriProvision(target, ['--playbook', 'base', ...operatorKeyArgs(target), '--dry-run'], 'deploy');
    expect(asDeploy.host.ok).toBe(true);
    // sshd really refuses passwords now: the server offers only publickey (OpenSSH lists what it accepts).
    const tryPassword = await run(['ssh', '-F', '/dev/null', '-o', 'BatchMode=yes', '-o', 'PubkeyAuthentication=no', '-o', 'PreferredAuthentications=password,keyboard-interactive',
      '-o', `UserKnownHostsFile=${target.knownHostsPath}`, '-o', 'StrictHostKeyChecking=yes', `deploy@${target.host}`, 'true'], { timeoutMs: 30_000 });
    expect(tryPassword.exitCode).not.toBe(0);
    expect(tryPassword.stderr).toMatch(/Permission denied \(publickey\)/);
    const sshdT = await target.exec(['sshd', '-T']);
    expect(sshdT.stdout).toMatch(/^passwordauthentication no$/m);
    expect(sshdT.stdout).toMatch(/^kbdinteractiveauthentication no$/m);
    expect(sshdT.stdout).toMatch(/^maxauthtries 3$/m);
    const sudoers = await target.exec(['visudo', '-c']);
    expect(sudoers.exitCode).toBe(0);
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

  it('shows live listr2 progress on a terminal: a line per step with its status and time', async () => {
    // util-linux's script(1) gives the CLI a pseudo-terminal, as an operator's shell would.
    const cli = fileURLToPath(new URL('../../bin/zanuri.js', import.meta.url));
    const command = ['stty cols 160 rows 50;', 'node', cli, 'provision', '--playbook', 'base', '--yes', '-F', '/dev/null', '--known-hosts', target.knownHostsPath,
      '-i', target.privateKeyPath, '--host', `root@${target.host}`, '--set', `'deploy-user.authorizedKeys=${JSON.stringify([target.publicKey])}'`].join(' ');
    const tty = await run(['script', '-qec', command, '/dev/null'], { timeoutMs: 120_000 });
    const screen = tty.stdout.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
    expect(tty.exitCode, screen).toBe(0);
    expect(screen).toMatch(/deploy-user: unchanged \(\d+ ms\)/);
    expect(screen).toMatch(/ssh-harden: unchanged \(\d+ ms\)/);
    expect(screen).toContain(`root@${target.host}`);
  });
});
