/**
 * `zanuri provision --local` as a first boot runs it: zanuri itself inside a real systemd target,
 * converging the machine it runs on, twice (needs root). Node and the built package are copied
 * into the target; nothing reaches it over SSH.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureAptProxy } from '../helpers/aptproxy.js';
import { run as runLocal } from '../helpers/proc.js';
import { canRunTargets, startTargets, stopAllTargets, type TestTarget } from '../helpers/targets.js';

const can = canRunTargets();
const root = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/** The package as npm would install it: package.json's files (the built CLI, profiles, playbooks, templates) and production dependencies only. */
function packageTarball(): string {
  const deps = execFileSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: root }).toString().split('\n')
    .filter((p) => p.includes('/node_modules/')).map((p) => p.slice(root.length + 1));
  const files = (JSON.parse(readFileSync(resolve(root, 'package.json'), 'utf8')) as { files: string[] }).files;
  const tar = execFileSync('tar', ['-czf', '-', '-C', root, ...files, 'package.json', ...deps,
    '-C', '/usr/bin', '--transform', 's,^node$,node-bin/node,', 'node'], { maxBuffer: 512 * 1024 * 1024 });
  return tar.toString('base64');
}

describe.skipIf(!can.ok && !process.env['CI'])('provision --local inside a real systemd machine (needs root)', () => {
  let target: TestTarget;

  beforeAll(async () => {
    if (!can.ok) throw new Error(`CI must be able to run test targets: ${can.why}`);
    await ensureAptProxy();
    [target] = (await startTargets(1)) as [TestTarget];
    // Node's own runtime library, then zanuri as a first-boot script would have it.
    const apt = await target.exec(['sh', '-c', 'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q libstdc++6'], { timeoutMs: 300_000 });
    expect(apt.exitCode, apt.stderr).toBe(0);
    const copy = await target.exec(['sh', '-c', 'mkdir -p /opt/zanuri && base64 -d | tar -xzf - -C /opt/zanuri'], { stdin: packageTarball(), timeoutMs: 300_000 });
    expect(copy.exitCode, copy.stderr).toBe(0);
  });

  afterAll(async () => {
    await stopAllTargets();
  });

  it('converges the machine it runs on, then finds nothing to do', async () => {
    const run = (): Promise<{ exitCode: number; stdout: string; stderr: string }> => target.exec(['/opt/zanuri/node-bin/node', '/opt/zanuri/bin/zanuri.js', 'provision', '--local',
      '--playbook', 'hardened', '--yes', '--json', '--set', `deploy-user.authorizedKeys=${JSON.stringify([target.publicKey])}`], { timeoutMs: 600_000 });
    // The engine's own package step (the missing packages of all steps, in one apt run), then the playbook's.
    const hardened = ['packages', 'deploy-user', 'ssh-harden', 'ufw', 'fail2ban', 'unattended-upgrades', 'timesync', 'baseline'];
    const first = await run();
    expect(first.exitCode, first.stderr + first.stdout.slice(-2000)).toBe(0);
    const report = JSON.parse(first.stdout).hosts[0];
    expect(report).toMatchObject({ host: 'local', ok: true });
    // A fresh machine: every step had something to do.
    expect(report.steps.map((s: { id: string; status: string }) => [s.id, s.status])).toEqual(hardened.map((id) => [id, 'changed']));
    const again = await run();
    expect(again.exitCode, again.stderr + again.stdout.slice(-2000)).toBe(0);
    const second = JSON.parse(again.stdout).hosts[0];
    expect(second.summary.changed).toBe(0);
    expect(second.steps.map((s: { id: string; status: string }) => [s.id, s.status])).toEqual(hardened.map((id) => [id, 'unchanged']));
    expect((await target.exec(['ufw', 'status'])).stdout).toMatch(/Status: active/);
    expect((await target.exec(['systemctl', 'is-active', 'fail2ban'])).stdout.trim()).toBe('active');
    // After the machine hardened itself, a fresh SSH login from outside, through its firewall, works
    // as the deploy user with the operator's key, and that user becomes root without a password...
    const login = await runLocal(['ssh', ...target.sshArgs('deploy'), 'id -un && sudo -n id -un'], { timeoutMs: 30_000 });
    expect(login.exitCode, login.stderr).toBe(0);
    expect(login.stdout).toBe('deploy\nroot\n');
    // ...while sshd offers passwords to nobody any more (OpenSSH lists the methods it still accepts).
    const password = await runLocal(['ssh', '-F', '/dev/null', '-o', 'BatchMode=yes', '-o', 'PubkeyAuthentication=no',
      '-o', 'PreferredAuthentications=password,keyboard-interactive', '-o', `UserKnownHostsFile=${target.knownHostsPath}`,
      '-o', 'StrictHostKeyChecking=yes', '-o', 'GlobalKnownHostsFile=/dev/null', `deploy@${target.host}`, 'true'], { timeoutMs: 30_000 });
    expect(password.exitCode).toBe(255);
    expect(password.stderr).toMatch(/Permission denied \(publickey\)/);
  }, 900_000);
});
