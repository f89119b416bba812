import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/core/errors.js';
import { directoryFact, fileFact, userFact } from '../../../src/facts/state.js';
import { deployUser } from '../../../src/steps/deploy-user.js';
import { b64, planOf, present } from './facts-of.js';

const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOm7Qe1vHq3kF9cP0y5H2m9b8sJf3nZ0XlWcQ6eT1uYd operator@laptop';
const params = deployUser.parseParams({ name: 'deploy', authorizedKeys: [key] });
const sudoers = '# Managed by zanuri (deploy-user).\ndeploy ALL=(ALL:ALL) NOPASSWD:ALL\n';
const rulePath = '/etc/sudoers.d/zanuri-deploy';
const user = (groups: string, keys: string | null, home = '/home/deploy'): string =>
  `deploy:x:1000:1000::${home}:/bin/bash\n${groups}${keys === null ? '' : `\nkeys\n${b64(keys)}`}`;

describe('deploy-user', () => {
  it('creates the user, its key directory and file, and a validated sudo rule on a fresh host', () => {
    const plan = planOf(deployUser, [
      [userFact('deploy'), ''], [directoryFact('/home/deploy/.ssh'), 'absent'], [fileFact('/home/deploy/.ssh/authorized_keys'), 'absent'], [fileFact(rulePath), 'absent'],
    ], params);
    expect(plan.actions.map((a) => a.kind)).toEqual(['run', 'directory', 'put', 'put']);
    const [useradd, dir, keys, rule] = plan.actions;
    expect(useradd).toMatchObject({ cmd: { argv: ['useradd', '--create-home', '--shell', '/bin/bash', '--groups', 'sudo', '--', 'deploy'] } });
    expect(dir).toMatchObject({ path: '/home/deploy/.ssh', mode: 0o700, owner: 'deploy', group: 'deploy' });
    expect(keys).toMatchObject({ path: '/home/deploy/.ssh/authorized_keys', content: `${key}\n`, mode: 0o600, owner: 'deploy', group: 'deploy' });
    expect(rule).toMatchObject({ path: rulePath, content: sudoers, mode: 0o440, owner: 'root', group: 'root', validate: { argv: ['visudo', '-c', '-q', '-f', '{}'] }, source: 'template sudo/deploy-user' });
  });

  it('has nothing to do on a converged host, and says why', () => {
    const plan = planOf(deployUser, [
      [userFact('deploy'), user('deploy sudo', `${key}\n`)], [directoryFact('/home/deploy/.ssh'), 'dir 700 deploy deploy'],
      [fileFact('/home/deploy/.ssh/authorized_keys'), present(`${key}\n`, '600', 'deploy')], [fileFact(rulePath), present(sudoers, '440')],
    ], params);
    expect(plan).toEqual({ actions: [], noop: 'deploy exists, is a sudoer without a password and has the operator\'s keys' });
  });

  it('adds a missing key without dropping keys someone else put there', () => {
    const other = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBXn0d5Jm3vZ9h6rXgE2sTq1l8uYw4cPzKfA7oN2bVeR colleague';
    const plan = planOf(deployUser, [
      [userFact('deploy'), user('deploy sudo', `${other}\n`, '/srv/deploy')], [directoryFact('/srv/deploy/.ssh'), 'dir 700 deploy deploy'],
      [fileFact('/srv/deploy/.ssh/authorized_keys'), present(`${other}\n`, '600', 'deploy')], [fileFact(rulePath), present(sudoers, '440')],
    ], params);
    expect(plan.actions).toHaveLength(1);
    expect(plan.actions[0]).toMatchObject({ kind: 'put', path: '/srv/deploy/.ssh/authorized_keys', content: `${other}\n${key}\n`, before: { content: Buffer.from(`${other}\n`), mode: 0o600, owner: 'deploy' } });
  });

  it('fixes a sudo rule owned by someone else without rewriting it', () => {
    const plan = planOf(deployUser, [
      [userFact('deploy'), user('deploy sudo', `${key}\n`)], [directoryFact('/home/deploy/.ssh'), 'dir 700 deploy deploy'],
      [fileFact('/home/deploy/.ssh/authorized_keys'), present(`${key}\n`, '600', 'deploy')], [fileFact(rulePath), present(sudoers, '440', 'deploy')],
    ], params);
    expect(plan.actions).toEqual([expect.objectContaining({ kind: 'chmod', path: rulePath, owner: 'root', group: 'root', why: `${rulePath} is 0440 deploy:deploy, not 0440 root:root` })]);
  });

  it('puts a drifted user back into the sudo group', () => {
    const plan = planOf(deployUser, [
      [userFact('deploy'), user('deploy', `${key}\n`)], [directoryFact('/home/deploy/.ssh'), 'dir 700 deploy deploy'],
      [fileFact('/home/deploy/.ssh/authorized_keys'), present(`${key}\n`, '600', 'deploy')], [fileFact(rulePath), present(sudoers, '440')],
    ], params);
    expect(plan.actions).toEqual([expect.objectContaining({ kind: 'run', cmd: { argv: ['usermod', '--append', '--groups', 'sudo', '--', 'deploy'] }, why: 'deploy is not in sudo' })]);
  });

  it('refuses hostile names, root, and keys that are not key lines', () => {
    for (const name of ['a;reboot', '$(id)', 'x\ny', 'root']) {
      expect(() => deployUser.parseParams({ name, authorizedKeys: [key] }), name).toThrow(ConfigError);
    }
    expect(() => deployUser.parseParams({ authorizedKeys: ['not a key'] })).toThrow(/authorizedKeys\[0\] must be an SSH public key line/);
    expect(() => deployUser.parseParams({ authorizedKeys: [] })).toThrow(/at least one/);
    expect(() => deployUser.parseParams({ authorizedKeys: [key], home: '/x' })).toThrow(/unknown parameter "home"/);
  });
});
