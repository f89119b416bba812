import { CommandError, StepFailedError } from '../core/errors.js';
import type { Cmd } from '../core/types.js';
import { commandFact, osReleaseFact, packagesFact, parseSshdPorts, sshdConfigFact, type FactValues } from '../facts/state.js';
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

/** The fail2ban apt would install (or has installed): `apt-cache policy` reads the host's own sources. */
export const policyFact = commandFact(['apt-cache', 'policy', 'fail2ban']);
/** Installed, else candidate version from `apt-cache policy` output; null when apt knows no fail2ban. */
export function fail2banVersion(policy: string): string | null {
  const installed = /^\s*Installed:\s*(\S+)/m.exec(policy)?.[1];
  if (installed && installed !== '(none)') return installed;
  const candidate = /^\s*Candidate:\s*(\S+)/m.exec(policy)?.[1];
  return candidate && candidate !== '(none)' ? candidate : null;
}
/**
 * Ubuntu 24.04's release pocket has fail2ban 1.0.2-3, which crashes at start under Python 3.12
 * (asynchat was removed; Launchpad #2055114); noble-updates has the fix (1.0.2-3ubuntu0.1).
 */
export function brokenOnUbuntu(release: Record<string, string>, version: string | null): boolean {
  return (release['ID'] ?? '') === 'ubuntu' && release['VERSION_ID'] === '24.04' && version === '1.0.2-3';
}

/** The ban action: ufw's rules where ufw is the firewall (a ban is then visible in ufw status), else iptables or nftables. */
const banactions = { ufw: ['ufw', 'ufw'], nftables: ['nftables-multiport', 'nftables-allports'], iptables: ['iptables-multiport', 'iptables-allports'] } as const;
type Banaction = keyof typeof banactions;
function banactionOf(choice: 'auto' | Banaction, facts: FactValues, selected: readonly string[] | undefined): Banaction {
  if (choice !== 'auto') return choice;
  return selected?.includes('ufw') || facts.get(packagesFact(['ufw']))['ufw'] ? 'ufw' : 'iptables';
}

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
 * and verify() requires the jail to answer `fail2ban-client status sshd` (and `recidive`). Bans of
 * returning sources grow (bantime.increment); recidive bans a source banned again and again from
 * every port for a week; bans go through ufw where ufw is the firewall, so they show in `ufw status`.
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
    maxBantime: duration('bantime.increment: a source banned again is banned twice as long each time, up to this.', '1w'),
    recidive: Type.Boolean({ default: true, description: 'The recidive jail: a source banned recidiveMaxretry times within a day is banned from every port for a week (slow, patient scanners).' }),
    recidiveMaxretry: Type.Integer({ minimum: 2, maximum: 100, default: 5, description: 'Bans within a day that earn a recidive ban.' }),
    banaction: Type.Union([Type.Literal('auto'), Type.Literal('ufw'), Type.Literal('nftables'), Type.Literal('iptables')], {
      default: 'auto', description: 'How bans are enforced; auto: ufw when the ufw step runs or ufw is installed (bans show in ufw status and survive its reloads), else iptables.',
    }),
  }),

  check: (p) => ({ ...p, ignoreip: [...new Set(p.ignoreip)] }),

  // The default ban action (iptables-multiport) needs iptables, which fail2ban only recommends.
  packages: () => ['fail2ban', 'iptables'],

  facts: () => [authLogFact, sshdConfigFact(), osReleaseFact(), policyFact, packagesFact(['ufw'])],

  resources(facts, p, { templates, selected }) {
    const version = fail2banVersion(facts.get(policyFact).stdout);
    if (brokenOnUbuntu(facts.get(osReleaseFact()), version)) {
      throw new StepFailedError('this host', 'fail2ban 1.0.2-3 from Ubuntu 24.04\'s release pocket crashes at start (Python 3.12 has no asynchat module)', {
        hint: 'enable the noble-updates pocket in the apt sources (it has 1.0.2-3ubuntu0.1), run apt-get update, then provision again; or --skip fail2ban',
      });
    }
    const journal = readsJournal(facts);
    const ports = parseSshdPorts(facts.get(sshdConfigFact()));
    const [banaction, banactionAllports] = banactions[banactionOf(p.banaction, facts, selected)];
    return [
      ...(journal ? [packages(['python3-systemd'], { why: `the journal backend needs python3-systemd (there is no ${authLog})` })] : []),
      file(jailPath, templates.render('fail2ban/jail.local', { ...p, journal, authLog, port: ports.length ? ports.join(',') : 'ssh', banaction, banactionAllports }), {
        validateInPlace: { argv: ['fail2ban-client', '-t'] },
        notify: [{ unit, op: 'restart' }],
        whyMissing: `no ${jailPath}: the stock sshd jail ${journal ? `reads ${authLog}, which does not exist, so fail2ban cannot start` : 'uses the package defaults'}`,
        whyDiffers: `${jailPath} differs from the wanted sshd jail`,
      }),
      service(unit),
    ];
  },

  converged: (p, facts, { selected }) =>
    `fail2ban is running with the sshd jail (${readsJournal(facts) ? 'journal' : authLog}, maxretry ${p.maxretry}, findtime ${p.findtime}, bantime ${p.bantime} increasing to ${p.maxBantime}, bans by ${banactionOf(p.banaction, facts, selected)})${p.recidive ? ' and the recidive jail' : ''}`,

  async verify(ctx, p) {
    const status = await ctx.run(jailStatusCmd);
    if (!status.ok || !/Currently banned:/.test(status.stdout)) throw new CommandError(status, 'fail2ban-client status sshd (the sshd jail is not active)');
    if (p.recidive) {
      const recidive = await ctx.run({ argv: ['fail2ban-client', 'status', 'recidive'] });
      if (!recidive.ok || !/Currently banned:/.test(recidive.stdout)) throw new CommandError(recidive, 'fail2ban-client status recidive (the recidive jail is not active)');
    }
    const active = await ctx.run({ argv: ['systemctl', 'is-active', '--', unit] });
    if (active.stdout.trim() !== 'active') throw new CommandError(active, `systemctl is-active ${unit}`);
  },
});
