import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/core/errors.js';
import { fileFact, userFact } from '../../../src/facts/state.js';
import { deployUser } from '../../../src/steps/deploy-user.js';
import { b64, factsOf } from './facts-of.js';

const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOm7Qe1vHq3kF9cP0y5H2m9b8sJf3nZ0XlWcQ6eT1uYd operator@laptop';
const params = deployUser.parseParams({ name: 'deploy', authorizedKeys: [key] });
const info = { loginUser: 'root', sshPort: 22, local: false };
const sudoers = '# Managed by zanuri (deploy-user).\ndeploy ALL=(ALL:ALL) NOPASSWD:ALL\n';

describe('deploy-user', () => {
  it('creates the user, its key file and a validated sudo rule on a fresh host', () => {
    const plan = deployUser.plan(factsOf([[userFact('deploy'), ''], [fileFact('/etc/sudoers.d/zanuri-deploy'), 'absent']]), params, info);
    expect(plan.actions.map((a) => a.kind)).toEqual(['run', 'run', 'put', 'put']);
    const [useradd, , keys, rule] = plan.actions;
    expect(useradd).toMatchObject({ cmd: { argv: ['useradd', '--create-home', '--shell', '/bin/bash', '--groups', 'sudo', '--', 'deploy'] } });
    expect(keys).toMatchObject({ path: '/home/deploy/.ssh/authorized_keys', content: `${key}\n`, mode: 0o600, owner: 'deploy' });
    expect(rule).toMatchObject({ path: '/etc/sudoers.d/zanuri-deploy', mode: 0o440, validate: { argv: ['visudo', '-c', '-q', '-f', '{}'] } });
  });

  it('has nothing to do on a converged host, and says why', () => {
    const plan = deployUser.plan(factsOf([
      [userFact('deploy'), `deploy:x:1000:1000::/home/deploy:/bin/bash\ndeploy sudo\nkeys\n${b64(`${key}\n`)}`],
      [fileFact('/etc/sudoers.d/zanuri-deploy'), `present 440 root root\n${b64(sudoers)}`],
    ]), params, info);
    expect(plan).toEqual({ actions: [], noop: 'deploy exists, is a sudoer without a password and has the operator\'s keys' });
  });

  it('adds a missing key without dropping keys someone else put there', () => {
    const other = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBXn0d5Jm3vZ9h6rXgE2sTq1l8uYw4cPzKfA7oN2bVeR colleague';
    const plan = deployUser.plan(factsOf([
      [userFact('deploy'), `deploy:x:1000:1000::/srv/deploy:/bin/bash\ndeploy sudo\nkeys\n${b64(`${other}\n`)}`],
      [fileFact('/etc/sudoers.d/zanuri-deploy'), `present 440 root root\n${b64(sudoers)}`],
    ]), params, info);
    const put = plan.actions.find((a) => a.kind === 'put');
    expect(put).toMatchObject({ path: '/srv/deploy/.ssh/authorized_keys', content: `${other}\n${key}\n`, before: `${other}\n` });
  });

  it('puts a drifted user back into the sudo group', () => {
    const plan = deployUser.plan(factsOf([
      [userFact('deploy'), `deploy:x:1000:1000::/home/deploy:/bin/bash\ndeploy\nkeys\n${b64(`${key}\n`)}`],
      [fileFact('/etc/sudoers.d/zanuri-deploy'), `present 440 root root\n${b64(sudoers)}`],
    ]), params, info);
    expect(plan.actions).toEqual([{ kind: 'run', cmd: { argv: ['usermod', '--append', '--groups', 'sudo', '--', 'deploy'] }, why: 'deploy is not in the sudo group' }]);
  });

  it('refuses hostile names, root, and keys that are not key lines', () => {
    for (const name of ['a;reboot', '$(id)', 'x\ny', 'root']) {
      expect(() => deployUser.parseParams({ name, authorizedKeys: [key] }), name).toThrow(ConfigError);
    }
    expect(() => deployUser.parseParams({ authorizedKeys: ['not a key'] })).toThrow(/not an SSH public key/);
    expect(() => deployUser.parseParams({ authorizedKeys: [] })).toThrow(/at least one/);
  });
});
