import { beforeAll, describe, expect, it } from 'vitest';
import type { Action, Plan } from '../../../src/core/plan.js';
import { commandFact, fileFact, osReleaseFact, packagesFact, serviceFact, sshdConfigFact } from '../../../src/facts/state.js';
import { brokenOnUbuntu, fail2ban, fail2banVersion, jailPath, jailStatusCmd, policyFact } from '../../../src/steps/fail2ban.js';
import { planStep } from '../../../src/steps/plan.js';
import type { PlanContext } from '../../../src/steps/types.js';
import { loadTemplates } from '../../../src/templates/load.js';
import { b64, factsOf } from './facts-of.js';

let ctx: PlanContext;
beforeAll(async () => {
  ctx = { loginUser: 'root', sshPort: 22, local: false, templates: await loadTemplates(), served: [] };
});
const defaults = fail2ban.parseParams({});

interface Host { jail?: string | null; owner?: string; authLog?: boolean; module?: boolean; service?: string; ports?: number[]; osRelease?: string; policy?: string; ufw?: boolean; selected?: string[] }
const debian12 = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n';
const ubuntu2404 = 'PRETTY_NAME="Ubuntu 24.04.1 LTS"\nNAME="Ubuntu"\nVERSION_ID="24.04"\nID=ubuntu\nID_LIKE=debian\n';
/** `apt-cache policy fail2ban` as apt prints it (captured on Debian 12 and on Ubuntu 24.04 without noble-updates). */
const policyOf = (installed: string, candidate: string): string => `fail2ban:\n  Installed: ${installed}\n  Candidate: ${candidate}\n  Version table:\n     ${candidate} 500\n        500 http://deb.debian.org/debian bookworm/main amd64 Packages\n@@rc=0`;
function planFor(host: Host, p = defaults): Plan {
  return planStep(fail2ban, factsOf([
    [fileFact(jailPath), host.jail == null ? 'absent' : `present 644 ${host.owner ?? 'root'} root\n${b64(host.jail)}`],
    [commandFact(['test', '-f', '/var/log/auth.log']), `\n@@rc=${host.authLog ? 0 : 1}`],
    // dpkg-query output as packagesFact reads it.
    [packagesFact(['python3-systemd']), host.module ? 'python3-systemd\tii \t235-1+b2\n' : ''],
    [serviceFact('fail2ban.service'), host.service ?? 'enabled\nactive'],
    [sshdConfigFact(), `${(host.ports ?? [22]).map((n) => `port ${n}`).join('\n')}\nusepam yes\n@@rc=0`],
    [osReleaseFact(), host.osRelease ?? debian12],
    [policyFact, host.policy ?? policyOf('1.0.1-1', '1.0.1-1')],
    [packagesFact(['ufw']), host.ufw ? 'ufw\tii \t0.36.2-1\n' : ''],
  ]), p, { ...ctx, ...(host.selected ? { selected: host.selected } : {}) });
}
const kinds = (actions: readonly Action[]): string[] => actions.map((a) => (a.kind === 'service' ? `service ${a.op}` : a.kind));
const written = (plan: Plan): string => {
  const put = plan.actions.find((a) => a.kind === 'put');
  if (put?.kind !== 'put') throw new Error(`no put in ${kinds(plan.actions).join(', ')}`);
  return String(put.content);
};
/** The jail.local the step writes on a journal host with these parameters. */
const journalJail = (p = defaults): string => written(planFor({}, p));

describe('fail2ban', () => {
  it('on Debian 12 (no /var/log/auth.log, fail2ban failed at install) reads the journal: python3-systemd, jail.local, start, then one restart', () => {
    const plan = planFor({ service: 'enabled\nfailed' });
    expect(kinds(plan.actions)).toEqual(['packages', 'put', 'service start']);
    expect(plan.actions[0]).toMatchObject({ kind: 'packages', install: ['python3-systemd'], why: 'the journal backend needs python3-systemd (there is no /var/log/auth.log)' });
    expect(plan.actions[1]).toMatchObject({
      kind: 'put', path: '/etc/fail2ban/jail.local', mode: 0o644, owner: 'root', group: 'root',
      validateInPlace: { argv: ['fail2ban-client', '-t'] }, notify: [{ unit: 'fail2ban.service', op: 'restart' }], source: 'template fail2ban/jail.local',
    });
    expect(plan.actions[1]?.why).toMatch(/reads \/var\/log\/auth\.log, which does not exist, so fail2ban cannot start/);
    expect(written(plan)).toBe([
      '# Managed by zanuri (fail2ban); edits here are overwritten.',
      '[DEFAULT]',
      '# Bans of a source that comes back grow each time (bantime x 2^n), up to bantime.maxtime.',
      'bantime.increment = true',
      'bantime.maxtime = 1w',
      'banaction = iptables-multiport',
      'banaction_allports = iptables-allports',
      '',
      '[sshd]',
      'enabled = true',
      'port = 22',
      '# /var/log/auth.log does not exist: sshd\'s failures are read from the systemd journal (the stock jail would not start).',
      'backend = systemd',
      'maxretry = 5',
      'findtime = 10m',
      'bantime = 1h',
      'ignoreip = 127.0.0.1/8 ::1',
      '',
      '# A source banned 5 times within a day is banned from every port for a week.',
      '[recidive]',
      'enabled = true',
      'backend = auto',
      'logpath = /var/log/fail2ban.log',
      'banaction = %(banaction_allports)s',
      'maxretry = 5',
      'findtime = 1d',
      'bantime = 1w',
      'ignoreip = 127.0.0.1/8 ::1',
      '',
    ].join('\n'));
  });

  it('keeps the auth.log backend where the file exists, without python3-systemd', () => {
    const plan = planFor({ authLog: true });
    expect(kinds(plan.actions)).toEqual(['put']);
    expect(plan.actions[0]?.why).toMatch(/uses the package defaults/);
    expect(written(plan)).toMatch(/^enabled = true\nport = 22\nbackend = auto\nlogpath = \/var\/log\/auth\.log\nmaxretry = 5$/m);
  });

  it('leaves a converged host alone and says why', () => {
    expect(planFor({ jail: journalJail(), module: true })).toEqual({
      actions: [], noop: 'fail2ban is running with the sshd jail (journal, maxretry 5, findtime 10m, bantime 1h increasing to 1w, bans by iptables) and the recidive jail',
    });
  });

  it('rewrites a drifted jail.local, validated in place, and restarts fail2ban through the handler', () => {
    const plan = planFor({ jail: journalJail().replace('maxretry = 5', 'maxretry = 50'), module: true });
    expect(kinds(plan.actions)).toEqual(['put']);
    expect(plan.actions[0]).toMatchObject({ why: '/etc/fail2ban/jail.local differs from the wanted sshd jail', notify: [{ unit: 'fail2ban.service', op: 'restart' }] });
  });

  it('gives a jail.local with the right content but the wrong owner back to root', () => {
    const plan = planFor({ jail: journalJail(), owner: 'deploy', module: true });
    expect(plan.actions).toEqual([expect.objectContaining({ kind: 'chmod', path: jailPath, owner: 'root', group: 'root', mode: 0o644 })]);
  });

  it('guards the ports sshd really listens on, and the ssh service name when sshd -T says none', () => {
    expect(written(planFor({ ports: [22, 2222] }))).toMatch(/^port = 22,2222$/m);
    expect(written(planFor({ ports: [] }))).toMatch(/^port = ssh$/m);
  });

  it('never bans localhost, and adds the operator\'s sources once each', () => {
    const p = fail2ban.parseParams({ ignoreip: ['10.0.0.0/8', '2001:db8::/32', '10.0.0.0/8'] });
    expect(written(planFor({}, p))).toMatch(/^ignoreip = 127\.0\.0\.1\/8 ::1 10\.0\.0\.0\/8 2001:db8::\/32$/m);
    // The recidive jail never bans them either.
    expect(written(planFor({}, p)).match(/^ignoreip = 127\.0\.0\.1\/8 ::1 10\.0\.0\.0\/8 2001:db8::\/32$/gm)).toHaveLength(2);
  });

  it('enables and starts a stopped, disabled service whose config is right', () => {
    expect(kinds(planFor({ jail: journalJail(), module: true, service: 'disabled\ninactive' }).actions)).toEqual(['service enable-now']);
  });

  it('verifies with a bounded wait for the sshd jail', () => {
    expect(jailStatusCmd.argv.slice(0, 2)).toEqual(['sh', '-c']);
    expect(jailStatusCmd.argv[2]).toMatch(/fail2ban-client status sshd/);
    expect(jailStatusCmd.argv[2]).toMatch(/-ge 40 \] && break/);
    expect(jailStatusCmd.argv).toHaveLength(4);
  });

  it('fills in defaults and keeps good parameters', () => {
    const rest = { maxBantime: '1w', recidive: true, recidiveMaxretry: 5, banaction: 'auto' };
    expect(defaults).toEqual({ maxretry: 5, bantime: '1h', findtime: '10m', ignoreip: [], ...rest });
    expect(fail2ban.parseParams({ maxretry: 3, bantime: '600', findtime: '1d', ignoreip: ['10.0.0.0/8', '2001:db8::/32'] }))
      .toEqual({ maxretry: 3, bantime: '600', findtime: '1d', ignoreip: ['10.0.0.0/8', '2001:db8::/32'], ...rest });
    expect(() => fail2ban.parseParams({ banaction: 'shorewall' })).toThrow(/banaction/);
  });

  it('refuses hostile and bad values before any connection', () => {
    for (const bad of ['1h; reboot', '$(id)', '1h\nbackend = polling', "1h'", '`id`', '-1', '0', '1 h', '1y']) {
      expect(() => fail2ban.parseParams({ bantime: bad }), bad).toThrow(/bantime must be a duration/);
      expect(() => fail2ban.parseParams({ findtime: bad }), bad).toThrow(/findtime must be a duration/);
    }
    expect(() => fail2ban.parseParams({ maxretry: 0 })).toThrow(/maxretry must be a whole number from 1 to 100/);
    expect(() => fail2ban.parseParams({ maxretry: '5; reboot' })).toThrow(/maxretry/);
    expect(() => fail2ban.parseParams({ ignoreip: ['10.0.0.1 0.0.0.0/0'] })).toThrow(/ignoreip\[0\] must be an IPv4 or IPv6 address or CIDR/);
    expect(() => fail2ban.parseParams({ ignoreip: ['10.0.0.0/8\n[DEFAULT]'] })).toThrow(/ignoreip\[0\]/);
    expect(() => fail2ban.parseParams({ enabled: false })).toThrow(/unknown parameter "enabled"/);
  });

  it('bans through ufw when the ufw step runs in the same playbook or ufw is installed, both for sshd and recidive', () => {
    for (const host of [{ selected: ['ufw', 'fail2ban'] }, { ufw: true }]) {
      const jail = written(planFor(host));
      expect(jail).toMatch(/^banaction = ufw\nbanaction_allports = ufw$/m);
      expect(jail).toMatch(/^\[recidive\][^[]*banaction = %\(banaction_allports\)s$/m);
    }
    expect(written(planFor({ ufw: true }, fail2ban.parseParams({ banaction: 'nftables' })))).toMatch(/^banaction = nftables-multiport\nbanaction_allports = nftables-allports$/m);
  });

  it('drops the recidive jail when asked, and grows bans up to maxBantime', () => {
    const jail = written(planFor({}, fail2ban.parseParams({ recidive: false, maxBantime: '30d' })));
    expect(jail).not.toMatch(/recidive/);
    expect(jail).toMatch(/^bantime\.increment = true\nbantime\.maxtime = 30d$/m);
  });

  it('refuses, before any change, the fail2ban of Ubuntu 24.04\'s release pocket that crashes at start (missing asynchat)', () => {
    expect(() => planFor({ osRelease: ubuntu2404, policy: policyOf('(none)', '1.0.2-3') })).toThrow(/1\.0\.2-3 from Ubuntu 24\.04's release pocket crashes/);
    expect(() => planFor({ osRelease: ubuntu2404, policy: policyOf('(none)', '1.0.2-3ubuntu0.1') })).not.toThrow();
    expect(brokenOnUbuntu({ ID: 'debian', VERSION_ID: '24.04' }, '1.0.2-3')).toBe(false);
  });

  it('reads the installed version first, else the candidate, from apt-cache policy', () => {
    expect(fail2banVersion('fail2ban:\n  Installed: 1.0.2-3ubuntu0.1\n  Candidate: 1.0.2-3ubuntu0.1\n')).toBe('1.0.2-3ubuntu0.1');
    expect(fail2banVersion('fail2ban:\n  Installed: (none)\n  Candidate: 1.0.2-3\n')).toBe('1.0.2-3');
    expect(fail2banVersion('N: Unable to locate package fail2ban\n')).toBeNull();
  });
});
