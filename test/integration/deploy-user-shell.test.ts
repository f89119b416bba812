/**
 * A deploy-user.shell that locks the operator out (an existing path that is no shell, e.g.
 * /usr/sbin/nologin) is caught by the fresh login of verify and rolled back on a real target
 * (needs root): the user's shell is the one it had, the operator still logs in, and the next run
 * with the old value changes nothing.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { operatorKeyArgs, zanuriProvision } from '../helpers/provision.js';
import { canRunTargets, startTargets, stopAllTargets, type TestTarget } from '../helpers/targets.js';

const can = canRunTargets();

describe.skipIf(!can.ok && !process.env['CI'])('provision: a rolled-back deploy-user.shell leaves the old shell in place (needs root)', () => {
  let target: TestTarget;

  beforeAll(async () => {
    if (!can.ok) throw new Error(`CI must be able to run test targets: ${can.why}`);
    [target] = (await startTargets(1)) as [TestTarget];
  }, 600_000);

  afterAll(async () => {
    await stopAllTargets();
  });

  const shellOf = async (user: string): Promise<string> => (await target.exec(['getent', 'passwd', user])).stdout.trim().split(':').at(-1) ?? '';
  const args = (shell?: string): string[] => ['--playbook', 'base', '--only', 'deploy-user', ...operatorKeyArgs(target), ...(shell ? ['--set', `deploy-user.shell=${shell}`] : [])];

  it('rolls a shell that refuses logins back to the previous one, and the operator still logs in', async () => {
    const first = await zanuriProvision(target, args());
    expect(first.code, first.stderr).toBe(0);
    expect(await shellOf('deploy')).toBe('/bin/bash');

    const bad = await zanuriProvision(target, args('/usr/sbin/nologin'));
    expect(bad.code, bad.stderr).not.toBe(0);
    const step = bad.host.steps.find((s) => s.id === 'deploy-user');
    expect(step?.status, JSON.stringify(step)).toBe('rolled-back');
    expect(await shellOf('deploy'), 'the bad shell must not stay in place').toBe('/bin/bash');

    const login = spawnSync('ssh', [...target.sshArgs('deploy'), 'sudo', '-n', 'true'], { timeout: 60_000 });
    expect(login.status, login.stderr.toString()).toBe(0);

    const again = await zanuriProvision(target, args());
    expect(again.code, again.stderr).toBe(0);
    expect(again.host.summary.changed, 'nothing left to undo').toBe(0);
  }, 900_000);
});
