import { CommandError, ConfigError } from '../core/errors.js';
import { plan, type Action } from '../core/plan.js';
import type { Transport } from '../core/types.js';
import { fileFact, serviceFact } from '../facts/state.js';
import { boolean, integer, list, object, string, userName } from './params.js';
import type { HostContext, Step } from './types.js';

export interface SshHardenParams {
  /** The user whose fresh key login must work before password logins are turned off; null: the login user. */
  deployUser: string | null;
  permitRootLogin: 'no' | 'prohibit-password';
  maxAuthTries: number;
  x11Forwarding: boolean;
  /** When set, only these users may log in (AllowUsers). */
  allowUsers: string[];
}

const id = 'ssh-harden';
/** sshd takes the first value it reads and includes sshd_config.d/*.conf first, in name order: 00- wins over cloud-init's 50-. */
export const dropInPath = '/etc/ssh/sshd_config.d/00-zanuri-hardening.conf';

export function renderDropIn(p: SshHardenParams): string {
  return [
    '# Managed by zanuri (ssh-harden); edits here are overwritten.',
    `PermitRootLogin ${p.permitRootLogin}`,
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PubkeyAuthentication yes',
    `MaxAuthTries ${p.maxAuthTries}`,
    `X11Forwarding ${p.x11Forwarding ? 'yes' : 'no'}`,
    ...(p.allowUsers.length ? [`AllowUsers ${p.allowUsers.join(' ')}`] : []),
    '',
  ].join('\n');
}

async function provesLogin(connect: () => Promise<Transport>, who: string): Promise<void> {
  const transport = await connect();
  try {
    const result = await transport.run({ argv: ['true'] });
    if (!result.ok) throw new CommandError(result, `a fresh SSH login as ${who}`);
  } finally {
    await transport.close();
  }
}

const freshLogin = (ctx: HostContext, p: SshHardenParams): Promise<void> =>
  p.deployUser === null ? provesLogin(() => ctx.connectFresh(), ctx.loginUser) : provesLogin(() => ctx.connectAs(p.deployUser as string), p.deployUser);

/**
 * An sshd drop-in that turns off password logins. It never locks the operator out: a fresh key
 * login must work before it is applied, `sshd -t` must accept it before the reload, and a fresh
 * login must work after the reload, or the old configuration comes back.
 */
export const sshHarden: Step<SshHardenParams> = {
  id,
  title: 'SSH hardening',
  after: ['deploy-user'],

  parseParams(raw) {
    const p = object(raw, id, ['deployUser', 'permitRootLogin', 'maxAuthTries', 'x11Forwarding', 'allowUsers']);
    const permitRootLogin = string(p, id, 'permitRootLogin', /^(?:no|prohibit-password)$/, '"no" or "prohibit-password"', 'prohibit-password') as SshHardenParams['permitRootLogin'];
    const users = (value: unknown, i: number): string => {
      if (typeof value !== 'string' || !userName.test(value)) throw new ConfigError(`${id}: allowUsers[${i}] must be a user name, got ${JSON.stringify(value)}`);
      return value;
    };
    return {
      deployUser: p['deployUser'] === null ? null : string(p, id, 'deployUser', userName, 'a user name', 'deploy'),
      permitRootLogin,
      maxAuthTries: integer(p, id, 'maxAuthTries', 1, 10, 3),
      x11Forwarding: boolean(p, id, 'x11Forwarding', false),
      allowUsers: list(p, id, 'allowUsers', users),
    };
  },

  packages: () => ['openssh-server'],

  facts: () => [fileFact(dropInPath), serviceFact('ssh.service'), serviceFact('sshd.service'), serviceFact('ssh.socket')],

  plan(facts, p) {
    const current = facts.get(fileFact(dropInPath));
    const wanted = renderDropIn(p);
    if (current.content === wanted && current.mode === '644') return plan([], `${dropInPath} already disables password logins`);
    // Debian and Ubuntu name the unit ssh, RHEL sshd. With socket activation (Ubuntu 22.10+) the
    // daemon reads its config per start, and restarting ssh.service applies it.
    const unit = facts.get(serviceFact('ssh.service')).enabled !== 'not-found' ? 'ssh.service' : 'sshd.service';
    const socketActivated = facts.get(serviceFact('ssh.socket')).active === 'active';
    const action: Action = {
      kind: 'put', path: dropInPath, content: wanted, mode: 0o644, owner: 'root', group: 'root', before: current.content,
      validateInPlace: { argv: ['sshd', '-t'] },
      notify: [{ unit, op: socketActivated ? 'restart' : 'reload' }],
      why: current.exists ? `${dropInPath} differs from the hardened settings` : 'password logins are not disabled by zanuri yet',
    };
    return plan([action], '');
  },

  async beforeApply(ctx, p) {
    if (ctx.local) return;
    await freshLogin(ctx, p);
  },

  async verify(ctx, p) {
    if (ctx.local) return;
    await freshLogin(ctx, p);
  },
};
