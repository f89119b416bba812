import { file } from '../resources/file.js';
import { serviceFact } from '../facts/state.js';
import { proveLogin } from './access.js';
import { params, Type, userName } from './schema.js';
import { defineStep } from './types.js';

/** sshd takes the first value it reads and includes sshd_config.d/*.conf first, in name order: 00- wins over cloud-init's 50-. */
export const dropInPath = '/etc/ssh/sshd_config.d/00-zanuri-hardening.conf';

/**
 * An sshd drop-in that turns off password logins. It never locks the operator out: a fresh key
 * login must work before it is applied, `sshd -t` must accept it before the reload, and a fresh
 * login must work after the reload, or the old configuration comes back.
 */
export const sshHarden = defineStep({
  id: 'ssh-harden',
  title: 'SSH hardening',
  after: ['deploy-user'],
  params: params({
    deployUser: Type.Union([userName(), Type.Null()], { default: 'deploy', description: 'The user whose fresh key login must work before password logins are turned off; null: the login user.' }),
    permitRootLogin: Type.Union([Type.Literal('no'), Type.Literal('prohibit-password')], { default: 'prohibit-password', description: 'PermitRootLogin.' }),
    maxAuthTries: Type.Integer({ minimum: 1, maximum: 10, default: 3, description: 'MaxAuthTries.' }),
    x11Forwarding: Type.Boolean({ default: false, description: 'X11Forwarding.' }),
    allowUsers: Type.Array(userName(), { default: [], description: 'When set, only these users may log in (AllowUsers).' }),
  }),

  packages: () => ['openssh-server'],

  facts: () => [serviceFact('ssh.service'), serviceFact('ssh.socket')],

  resources(facts, p, { templates }) {
    // Debian and Ubuntu name the unit ssh, RHEL sshd. With socket activation (Ubuntu 22.10+) the
    // daemon reads its config per start, and restarting ssh.service applies it.
    const unit = facts.get(serviceFact('ssh.service')).enabled !== 'not-found' ? 'ssh.service' : 'sshd.service';
    const socketActivated = facts.get(serviceFact('ssh.socket')).active === 'active';
    return [
      file(dropInPath, templates.render('ssh/hardening.conf', { ...p, x11Forwarding: p.x11Forwarding ? 'yes' : 'no', allowUsers: p.allowUsers.join(' ') }), {
        validateInPlace: { argv: ['sshd', '-t'] },
        notify: [{ unit, op: socketActivated ? 'restart' : 'reload' }],
        whyMissing: 'password logins are not disabled by zanuri yet',
        whyDiffers: `${dropInPath} differs from the hardened settings`,
      }),
    ];
  },

  converged: () => `${dropInPath} already disables password logins`,

  beforeApply: (ctx, p) => proveLogin(ctx, { user: p.deployUser }),
  verify: (ctx, p) => proveLogin(ctx, { user: p.deployUser }),
});
