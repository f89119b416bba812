import { describe, expect, it } from 'vitest';
import type { Action } from '../../../src/core/plan.js';
import { fileFact, packagesFact, serviceFact } from '../../../src/facts/state.js';
import { authLogFact, fail2ban, jailPath, jailStatusCmd, renderJail, systemdModule, unit } from '../../../src/steps/fail2ban.js';
import { sshdConfigFact } from '../../../src/facts/state.js';
import { b64, factsOf } from './facts-of.js';

const info = { loginUser: 'root', sshPort: 22, local: false };
const params = fail2ban.parseParams({});

function facts(o: { jail?: string | null; authLog?: boolean; module?: boolean; service?: string; ports?: number[] }) {
  return factsOf([
    [fileFact(jailPath), o.jail === null || o.jail === undefined ? 'absent' : `present 644 root root\n${b64(o.jail)}`],
    [authLogFact(), `\n@@rc=${o.authLog ? 0 : 1}`],
    // dpkg-query output as packagesFact reads it.
    [packagesFact([systemdModule]), o.module ? `${systemdModule}\tii \t235-1+b2\n` : ''],
    [serviceFact(unit), o.service ?? 'enabled\nactive'],
    [sshdConfigFact(), `${(o.ports ?? [22]).map((p) => `port ${p}`).join('\n')}\nusepam yes\n@@rc=0`],
  ]);
}
const kinds = (actions: readonly Action[]): string[] => actions.map((a) => (a.kind === 'service' ? `service ${a.op}` : a.kind));
const journalJail = renderJail(params, 'systemd', [22]);

describe('fail2ban', () => {
  it('on Debian 12 (no /var/log/auth.log, fail2ban failed at install) reads the journal: python3-systemd, jail.local, restart', () => {
    const plan = fail2ban.plan(facts({ service: 'enabled\nfailed' }), params, info);
    expect(kinds(plan.actions)).toEqual(['packages', 'put']);
    expect(plan.actions[0]).toMatchObject({ kind: 'packages', install: ['python3-systemd'] });
    expect(plan.actions[1]).toMatchObject({
      kind: 'put', path: '/etc/fail2ban/jail.local', mode: 0o644, validateInPlace: { argv: ['fail2ban-client', '-t'] }, notify: [{ unit: 'fail2ban.service', op: 'restart' }],
    });
    expect(plan.actions[1]?.why).toMatch(/reads \/var\/log\/auth\.log, which does not exist, so fail2ban cannot start/);
    const content = String((plan.actions[1] as { content: string }).content);
    expect(content).toMatch(/^\[sshd\]\nenabled = true$/m);
    expect(content).toMatch(/^backend = systemd$/m);
    expect(content).not.toMatch(/^logpath/m);
    expect(content).toMatch(/^maxretry = 5$/m);
    expect(content).toMatch(/^findtime = 10m$/m);
    expect(content).toMatch(/^bantime = 1h$/m);
    expect(content).toMatch(/^port = 22$/m);
  });

  it('keeps the auth.log backend where the file exists, without python3-systemd', () => {
    const plan = fail2ban.plan(facts({ authLog: true }), params, info);
    expect(kinds(plan.actions)).toEqual(['put']);
    const content = String((plan.actions[0] as { content: string }).content);
    expect(content).toMatch(/^backend = auto\nlogpath = \/var\/log\/auth\.log$/m);
  });

  it('leaves a converged host alone and says why', () => {
    const plan = fail2ban.plan(facts({ jail: journalJail, module: true }), params, info);
    expect(plan).toMatchObject({ actions: [], noop: expect.stringMatching(/fail2ban is running with the sshd jail \(journal, maxretry 5, findtime 10m, bantime 1h\)/) });
  });

  it('rewrites a drifted jail.local and restarts fail2ban once, through the handler', () => {
    const plan = fail2ban.plan(facts({ jail: journalJail.replace('maxretry = 5', 'maxretry = 50'), module: true }), params, info);
    expect(kinds(plan.actions)).toEqual(['put']);
    expect(plan.actions[0]?.why).toMatch(/differs from the wanted sshd jail/);
  });

  it('guards the ports sshd really listens on', () => {
    const plan = fail2ban.plan(facts({ jail: journalJail, module: true, ports: [22, 2222] }), params, info);
    expect(String((plan.actions[0] as { content: string }).content)).toMatch(/^port = 22,2222$/m);
  });

  it('enables and restarts a stopped, disabled service whose config is right', () => {
    const plan = fail2ban.plan(facts({ jail: journalJail, module: true, service: 'disabled\ninactive' }), params, info);
    expect(kinds(plan.actions)).toEqual(['service enable', 'service restart']);
  });

  it('verifies with a bounded wait for the sshd jail', () => {
    expect(jailStatusCmd.argv.slice(0, 2)).toEqual(['sh', '-c']);
    expect(jailStatusCmd.argv[2]).toMatch(/fail2ban-client status sshd/);
    expect(jailStatusCmd.argv).toHaveLength(4);
  });

  it('parses good parameters', () => {
    expect(params).toEqual({ maxretry: 5, bantime: '1h', findtime: '10m', ignoreip: [] });
    expect(fail2ban.parseParams({ maxretry: 3, bantime: '600', findtime: '1d', ignoreip: ['10.0.0.0/8', '2001:db8::/32'] }))
      .toEqual({ maxretry: 3, bantime: '600', findtime: '1d', ignoreip: ['10.0.0.0/8', '2001:db8::/32'] });
    expect(renderJail({ ...params, ignoreip: ['10.0.0.0/8'] }, 'systemd', [])).toMatch(/^port = ssh$\n[\s\S]*^ignoreip = 127\.0\.0\.1\/8 ::1 10\.0\.0\.0\/8$/m);
  });

  it('refuses hostile and bad values before any connection', () => {
    for (const bad of ['1h; reboot', '$(id)', '1h\nbackend = polling', "1h'", '`id`', '-1', '0', '1 h', '1y']) {
      expect(() => fail2ban.parseParams({ bantime: bad }), bad).toThrow(/bantime must be a duration/);
      expect(() => fail2ban.parseParams({ findtime: bad }), bad).toThrow(/findtime must be a duration/);
    }
    expect(() => fail2ban.parseParams({ maxretry: 0 })).toThrow(/maxretry/);
    expect(() => fail2ban.parseParams({ maxretry: '5; reboot' })).toThrow(/maxretry/);
    expect(() => fail2ban.parseParams({ ignoreip: ['10.0.0.1 0.0.0.0/0'] })).toThrow(/ignoreip\[0\]/);
    expect(() => fail2ban.parseParams({ ignoreip: ['10.0.0.0/8\n[DEFAULT]'] })).toThrow(/ignoreip\[0\]/);
    expect(() => fail2ban.parseParams({ enabled: false })).toThrow(/unknown parameter "enabled"/);
  });
});
