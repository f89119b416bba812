import { ConfigError, CommandError } from '../core/errors.js';
import { plan, type Action } from '../core/plan.js';
import { fileFact, userFact } from '../facts/state.js';
import { list, object, string, sshPublicKey, userName } from './params.js';
import type { Step } from './types.js';

export interface DeployUserParams {
  name: string;
  authorizedKeys: string[];
  shell: string;
}

const id = 'deploy-user';
const sudoersPath = (name: string): string => `/etc/sudoers.d/zanuri-${name}`;
const sudoersLine = (name: string): string => `# Managed by zanuri (deploy-user).\n${name} ALL=(ALL:ALL) NOPASSWD:ALL\n`;

/** A non-root deploy user in the sudo group, with passwordless sudo and the operator's public keys. */
export const deployUser: Step<DeployUserParams> = {
  id,
  title: 'Deploy user',

  parseParams(raw) {
    const p = object(raw, id, ['name', 'authorizedKeys', 'shell']);
    const authorizedKeys = list(p, id, 'authorizedKeys', (value, i) => {
      if (typeof value !== 'string' || !sshPublicKey.test(value.trim())) throw new ConfigError(`${id}: authorizedKeys[${i}] is not an SSH public key line`);
      return value.trim();
    });
    if (!authorizedKeys.length) throw new ConfigError(`${id}: authorizedKeys needs at least one public key`, { hint: 'e.g. --set deploy-user.authorizedKeys=@~/.ssh/id_ed25519.pub' });
    const name = string(p, id, 'name', userName, 'a user name (lower case letters, digits, _ and -)', 'deploy');
    if (name === 'root') throw new ConfigError(`${id}: the deploy user must not be root`);
    return { name, authorizedKeys, shell: string(p, id, 'shell', /^\/[A-Za-z0-9/_.-]+$/, 'an absolute path', '/bin/bash') };
  },

  packages: () => ['sudo'],

  facts: (p) => [userFact(p.name), fileFact(sudoersPath(p.name))],

  plan(facts, p) {
    const user = facts.get(userFact(p.name));
    const sudoers = facts.get(fileFact(sudoersPath(p.name)));
    const home = user.home ?? `/home/${p.name}`;
    const actions: Action[] = [];
    if (!user.exists) {
      actions.push({ kind: 'run', cmd: { argv: ['useradd', '--create-home', '--shell', p.shell, '--groups', 'sudo', '--', p.name] }, why: `user ${p.name} does not exist` });
    } else {
      if (!user.groups.includes('sudo')) actions.push({ kind: 'run', cmd: { argv: ['usermod', '--append', '--groups', 'sudo', '--', p.name] }, why: `${p.name} is not in the sudo group` });
      if (user.shell !== p.shell) actions.push({ kind: 'run', cmd: { argv: ['usermod', '--shell', p.shell, '--', p.name] }, why: `${p.name}'s shell is ${user.shell}, not ${p.shell}` });
    }
    const present = new Set((user.authorizedKeys ?? '').split('\n').map((l) => l.trim()).filter(Boolean));
    const missing = p.authorizedKeys.filter((k) => !present.has(k));
    if (missing.length) {
      // Keys already there stay: removing someone's access is not this step's call.
      const lines = [...(user.authorizedKeys ?? '').split('\n').filter((l) => l.trim()), ...missing];
      actions.push({ kind: 'run', cmd: { argv: ['install', '-d', '-m', '0700', '-o', p.name, '-g', p.name, '--', `${home}/.ssh`] }, why: `${home}/.ssh must exist, owned by ${p.name}, mode 0700` });
      actions.push({
        kind: 'put', path: `${home}/.ssh/authorized_keys`, content: `${lines.join('\n')}\n`, mode: 0o600, owner: p.name, group: p.name,
        before: user.authorizedKeys, why: `${missing.length} of the operator's keys missing from ${home}/.ssh/authorized_keys`,
      });
    }
    if (sudoers.content !== sudoersLine(p.name) || sudoers.mode !== '440') {
      actions.push({
        kind: 'put', path: sudoersPath(p.name), content: sudoersLine(p.name), mode: 0o440, owner: 'root', group: 'root', before: sudoers.content,
        validate: { argv: ['visudo', '-c', '-q', '-f', '{}'] },
        why: sudoers.exists ? `${sudoersPath(p.name)} differs from the passwordless sudo rule` : `${p.name} has no passwordless sudo rule`,
      });
    }
    return plan(actions, `${p.name} exists, is a sudoer without a password and has the operator's keys`);
  },

  /** Proves the user can log in with the operator's key and become root without a password. */
  async verify(ctx, p) {
    if (ctx.local) return;
    const login = await ctx.connectAs(p.name);
    try {
      const result = await login.run({ argv: ['sudo', '-n', 'true'] });
      if (!result.ok) throw new CommandError(result, `sudo -n as ${p.name}`);
    } finally {
      await login.close();
    }
  },
};
