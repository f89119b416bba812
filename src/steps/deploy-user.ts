import { ConfigError } from '../core/errors.js';
import { directory } from '../resources/directory.js';
import { file } from '../resources/file.js';
import { user } from '../resources/user.js';
import { userFact } from '../facts/state.js';
import { proveLogin } from './access.js';
import { absolutePath, params, sshPublicKey, Type, userName } from './schema.js';
import { defineStep } from './types.js';

/** Accounts Debian's base-passwd and common packages create: never a deploy user by accident. */
const reservedAccounts = new Set([
  'daemon', 'bin', 'sys', 'sync', 'games', 'man', 'lp', 'mail', 'news', 'uucp', 'proxy', 'www-data', 'backup', 'list', 'irc', 'gnats',
  'nobody', 'messagebus', 'sshd', 'postgres', 'mysql', 'redis', 'nginx', 'ntp', 'chrony', 'dnsmasq', 'syslog', 'tcpdump', 'uuidd', 'polkitd', 'tss', 'landscape', 'pollinate', 'lxd', 'statd', 'docker', 'ollama',
]);

const sudoersPath = (name: string): string => `/etc/sudoers.d/zanuri-${name}`;

/** A non-root deploy user in the sudo group, with passwordless sudo and the operator's public keys. */
export const deployUser = defineStep({
  id: 'deploy-user',
  title: 'Deploy user',
  params: params({
    name: userName({ default: 'deploy', description: 'The user to create (never root).' }),
    authorizedKeys: Type.Array(sshPublicKey(), { default: [], description: 'The operator\'s public keys, e.g. --set deploy-user.authorizedKeys=@~/.ssh/id_ed25519.pub. At least one.' }),
    shell: absolutePath({ default: '/bin/bash', description: 'Login shell.' }),
    systemAccount: Type.Boolean({ default: false, description: 'Allow name to be an existing system account (uid below 1000, or a name Debian reserves such as www-data or postgres): it would get a shell, the operator\'s keys and passwordless sudo. Off: refused.' }),
  }),

  check(p) {
    if (p.name === 'root') throw new ConfigError('deploy-user: the deploy user must not be root');
    if (!p.systemAccount && (reservedAccounts.has(p.name) || p.name.startsWith('systemd-') || p.name.startsWith('_'))) {
      throw new ConfigError(`deploy-user: "${p.name}" is a system account: it would get a login shell, the operator's keys and passwordless sudo`, { hint: 'name a user of its own (e.g. deploy), or set deploy-user.systemAccount=true if this is really meant' });
    }
    const authorizedKeys = p.authorizedKeys.map((k) => k.trim());
    if (!authorizedKeys.length) throw new ConfigError('deploy-user: authorizedKeys needs at least one public key', { hint: 'e.g. --set deploy-user.authorizedKeys=@~/.ssh/id_ed25519.pub' });
    return { ...p, authorizedKeys };
  },

  packages: () => ['sudo'],

  facts: (p) => [userFact(p.name)],

  resources(facts, p, { templates }) {
    const current = facts.get(userFact(p.name));
    if (!p.systemAccount && current.exists && current.uid !== null && current.uid < 1000) {
      throw new ConfigError(`deploy-user: ${p.name} exists as a system account (uid ${current.uid}): it would get a login shell, the operator's keys and passwordless sudo`, { hint: 'name a user of its own, or set deploy-user.systemAccount=true if this is really meant' });
    }
    const home = current.home ?? `/home/${p.name}`;
    // Keys already there stay: removing someone's access is not this step's call.
    const present = (current.authorizedKeys ?? '').split('\n').filter((l) => l.trim());
    const missing = p.authorizedKeys.filter((k) => !present.some((l) => l.trim() === k));
    // With every key present the file's bytes stay as they are; only its owner and mode are enforced.
    const keys = missing.length || current.authorizedKeys === null ? `${[...present, ...missing].join('\n')}\n` : current.authorizedKeys;
    return [
      user(p.name, { shell: p.shell, groups: ['sudo'] }),
      directory(`${home}/.ssh`, { mode: 0o700, owner: p.name }),
      file(`${home}/.ssh/authorized_keys`, keys, {
        mode: 0o600, owner: p.name,
        whyDiffers: `${missing.length} of the operator's keys missing from ${home}/.ssh/authorized_keys`,
        whyMissing: `${home}/.ssh/authorized_keys does not hold the operator's keys`,
      }),
      file(sudoersPath(p.name), templates.render('sudo/deploy-user', { name: p.name }), {
        mode: 0o440, validate: { argv: ['visudo', '-c', '-q', '-f', '{}'] },
        whyMissing: `${p.name} has no passwordless sudo rule`,
        whyDiffers: `${sudoersPath(p.name)} differs from the passwordless sudo rule`,
      }),
    ];
  },

  converged: (p) => `${p.name} exists, is a sudoer without a password and has the operator's keys`,

  /** Proves the user can log in with the operator's key and become root without a password. */
  verify: (ctx, p) => proveLogin(ctx, { user: p.name, sudo: true }),
});
