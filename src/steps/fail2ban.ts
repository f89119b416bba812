import { CommandError, ConfigError } from '../core/errors.js';
import { plan, type Action } from '../core/plan.js';
import type { Cmd } from '../core/types.js';
import { commandFact, fileFact, packagesFact, parseSshdPorts, serviceFact, sshdConfigFact, type CommandState, type FactRequest } from '../facts/state.js';
import { cidr as cidrPattern, integer, list, object, string } from './params.js';
import type { Step } from './types.js';

export interface Fail2banParams {
  /** Failures within findtime that earn a ban. */
  maxretry: number;
  /** fail2ban time abbreviations: 600, 30s, 10m, 1h, 1d, 1w. */
  bantime: string;
  findtime: string;
  /** Sources never banned besides localhost (the operator's bastion, the monitoring host). */
  ignoreip: string[];
}

const id = 'fail2ban';
export const jailPath = '/etc/fail2ban/jail.local';
export const authLog = '/var/log/auth.log';
export const unit = 'fail2ban.service';
/** Does the classic syslog auth log exist? Debian 12 and later log sshd only to the journal. */
export const authLogFact = (): FactRequest<CommandState> => commandFact(['test', '-f', authLog]);
export const systemdModule = 'python3-systemd';
const duration = /^[1-9][0-9]{0,6}[smhdw]?$/;

export type Backend = 'systemd' | 'auto';

export function renderJail(p: Fail2banParams, backend: Backend, sshPorts: number[]): string {
  return [
    '# Managed by zanuri (fail2ban); edits here are overwritten.',
    '[sshd]',
    'enabled = true',
    `port = ${sshPorts.length ? sshPorts.join(',') : 'ssh'}`,
    ...(backend === 'systemd'
      ? [`# ${authLog} does not exist: sshd's failures are read from the systemd journal (the stock jail would not start).`, 'backend = systemd']
      : ['backend = auto', `logpath = ${authLog}`]),
    `maxretry = ${p.maxretry}`,
    `findtime = ${p.findtime}`,
    `bantime = ${p.bantime}`,
    `ignoreip = ${['127.0.0.1/8', '::1', ...p.ignoreip].join(' ')}`,
    '',
  ].join('\n');
}

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
export const fail2ban: Step<Fail2banParams> = {
  id,
  title: 'fail2ban (sshd jail)',
  after: ['ufw', 'ssh-harden'],

  parseParams(raw) {
    const p = object(raw, id, ['maxretry', 'bantime', 'findtime', 'ignoreip']);
    const what = 'a duration like 600, 30s, 10m, 1h, 1d or 1w';
    return {
      maxretry: integer(p, id, 'maxretry', 1, 100, 5),
      bantime: string(p, id, 'bantime', duration, what, '1h'),
      findtime: string(p, id, 'findtime', duration, what, '10m'),
      ignoreip: [...new Set(list(p, id, 'ignoreip', (value, i) => {
        if (typeof value !== 'string' || !cidrPattern.test(value)) {
          throw new ConfigError(`${id}: ignoreip[${i}] must be an IPv4 or IPv6 address or CIDR, got ${JSON.stringify(value)?.slice(0, 80)}`);
        }
        return value;
      }))],
    };
  },

  // The default ban action (iptables-multiport) needs iptables, which fail2ban only recommends.
  packages: () => ['fail2ban', 'iptables'],

  facts: () => [fileFact(jailPath), authLogFact(), packagesFact([systemdModule]), serviceFact(unit), sshdConfigFact()],

  plan(facts, p) {
    const actions: Action[] = [];
    const backend: Backend = facts.get(authLogFact()).exitCode === 0 ? 'auto' : 'systemd';
    if (backend === 'systemd' && facts.get(packagesFact([systemdModule]))[systemdModule] === null) {
      actions.push({ kind: 'packages', install: [systemdModule], why: `the journal backend needs ${systemdModule} (there is no ${authLog})` });
    }
    const current = facts.get(fileFact(jailPath));
    const wanted = renderJail(p, backend, parseSshdPorts(facts.get(sshdConfigFact())));
    const changed = current.content !== wanted || current.mode !== '644';
    if (changed) {
      actions.push({
        kind: 'put', path: jailPath, content: wanted, mode: 0o644, owner: 'root', group: 'root', before: current.content,
        validateInPlace: { argv: ['fail2ban-client', '-t'] },
        notify: [{ unit, op: 'restart' }],
        why: current.exists ? `${jailPath} differs from the wanted sshd jail` : `no ${jailPath}: the stock sshd jail ${backend === 'systemd' ? `reads ${authLog}, which does not exist, so fail2ban cannot start` : 'uses the package defaults'}`,
      });
    }
    const service = facts.get(serviceFact(unit));
    if (service.enabled !== 'enabled') actions.push({ kind: 'service', unit, op: 'enable', why: `${unit} is ${service.enabled}, not enabled at boot` });
    if (!changed && service.active !== 'active') actions.push({ kind: 'service', unit, op: 'restart', why: `${unit} is ${service.active}` });
    return plan(actions, `fail2ban is running with the sshd jail (${backend === 'systemd' ? 'journal' : authLog}, maxretry ${p.maxretry}, findtime ${p.findtime}, bantime ${p.bantime})`);
  },

  async verify(ctx) {
    const status = await ctx.run(jailStatusCmd);
    if (!status.ok || !/Currently banned:/.test(status.stdout)) throw new CommandError(status, 'fail2ban-client status sshd (the sshd jail is not active)');
    const active = await ctx.run({ argv: ['systemctl', 'is-active', '--', unit] });
    if (active.stdout.trim() !== 'active') throw new CommandError(active, `systemctl is-active ${unit}`);
  },
};
