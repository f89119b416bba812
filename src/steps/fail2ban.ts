import { CommandError } from '../core/errors.js';
import type { Cmd } from '../core/types.js';
import { commandFact, parseSshdPorts, sshdConfigFact, type FactValues } from '../facts/state.js';
import { file } from '../resources/file.js';
import { packages } from '../resources/packages.js';
import { service } from '../resources/service.js';
import { cidr, params, Type } from './schema.js';
import { defineStep } from './types.js';

export const jailPath = '/etc/fail2ban/jail.local';
const authLog = '/var/log/auth.log';
const unit = 'fail2ban.service';
/** Does the classic syslog auth log exist? Debian 12 and later log sshd only to the journal. */
const authLogFact = commandFact(['test', '-f', authLog]);
const readsJournal = (facts: FactValues): boolean => facts.get(authLogFact).exitCode !== 0;

const duration = (description: string, fallback: string) =>
  Type.String({ pattern: '^[1-9][0-9]{0,6}[smhdw]?$', what: 'a duration like 600, 30s, 10m, 1h, 1d or 1w', default: fallback, description });

/**
 * Waits (bounded, on the host) for fail2ban's socket, then prints the sshd jail's status. Fixed
 * script, no arguments: the server needs a moment after a restart before the client can talk to it.
 */
const jailStatusScript = `i=0
while :; do
  if out=$(fail2ban-client status sshd 2>&1); then printf '%s\\n' "$out"; exit 0; fi
  i=$((i + 1)); [ "$i" -ge 40 ] && break; sleep 0.5
done
printf '%s\\n' "$out" >&2; exit 1`;
export const jailStatusCmd: Cmd = { argv: ['sh', '-c', jailStatusScript, 'zanuri-fail2ban-status'] };

/**
 * fail2ban with an active sshd jail. The stock Debian 12 jail reads /var/log/auth.log, which does not
 * exist there: fail2ban dies at start while the package install looks fine. Where the file is
 * missing the jail reads the journal (backend = systemd, with python3-systemd). The configuration is
 * checked in place by `fail2ban-client -t` (which reports a jail without a log) before the restart,
 * and verify() requires the jail to answer `fail2ban-client status sshd`.
 */
export const fail2ban = defineStep({
  id: 'fail2ban',
  title: 'fail2ban (sshd jail)',
  after: ['ufw', 'ssh-harden'],
  params: params({
    maxretry: Type.Integer({ minimum: 1, maximum: 100, default: 5, description: 'Failed logins within findtime that earn a ban.' }),
    bantime: duration('How long a ban lasts.', '1h'),
    findtime: duration('The window in which maxretry failures count.', '10m'),
    ignoreip: Type.Array(cidr(), { default: [], description: 'Sources never banned besides localhost (a bastion, the monitoring host).' }),
  }),

  check: (p) => ({ ...p, ignoreip: [...new Set(p.ignoreip)] }),

  // The default ban action (iptables-multiport) needs iptables, which fail2ban only recommends.
  packages: () => ['fail2ban', 'iptables'],

  facts: () => [authLogFact, sshdConfigFact()],

  resources(facts, p, { templates }) {
    const journal = readsJournal(facts);
    const ports = parseSshdPorts(facts.get(sshdConfigFact()));
    return [
      ...(journal ? [packages(['python3-systemd'], { why: `the journal backend needs python3-systemd (there is no ${authLog})` })] : []),
      file(jailPath, templates.render('fail2ban/jail.local', { ...p, journal, authLog, port: ports.length ? ports.join(',') : 'ssh' }), {
        validateInPlace: { argv: ['fail2ban-client', '-t'] },
        notify: [{ unit, op: 'restart' }],
        whyMissing: `no ${jailPath}: the stock sshd jail ${journal ? `reads ${authLog}, which does not exist, so fail2ban cannot start` : 'uses the package defaults'}`,
        whyDiffers: `${jailPath} differs from the wanted sshd jail`,
      }),
      service(unit),
    ];
  },

  converged: (p, facts) =>
    `fail2ban is running with the sshd jail (${readsJournal(facts) ? 'journal' : authLog}, maxretry ${p.maxretry}, findtime ${p.findtime}, bantime ${p.bantime})`,

  async verify(ctx) {
    const status = await ctx.run(jailStatusCmd);
    if (!status.ok || !/Currently banned:/.test(status.stdout)) throw new CommandError(status, 'fail2ban-client status sshd (the sshd jail is not active)');
    const active = await ctx.run({ argv: ['systemctl', 'is-active', '--', unit] });
    if (active.stdout.trim() !== 'active') throw new CommandError(active, `systemctl is-active ${unit}`);
  },
});
