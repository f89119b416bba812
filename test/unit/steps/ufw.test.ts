import { describe, expect, it } from 'vitest';
import type { Action } from '../../../src/core/plan.js';
import { commandFact, fileFact, sshdConfigFact } from '../../../src/facts/state.js';
import {
  confPath, defaultsPath, deleteCmd, normalizeCidr, parseTuples, statusFact, ufw, user6RulesPath, userRulesPath,
} from '../../../src/steps/ufw.js';
import { b64, factsOf } from './facts-of.js';

const info = { loginUser: 'root', sshPort: 22, local: false };
const params = ufw.parseParams({
  allow: [{ port: 80, protocol: 'tcp' }, { port: 443, protocol: 'tcp' }],
  internal: [{ port: 5432, protocol: 'tcp' }],
  internalFrom: ['10.213.0.0/24'],
});

// Captured on Debian 12 (ufw 0.36.2) in a test target, after the step's own commands.
const tuple = (v6: boolean, ...lines: string[]): string => [
  '*filter', `:ufw${v6 ? '6' : ''}-user-input - [0:0]`, '### RULES ###', '',
  ...lines.flatMap((l) => [`### tuple ### ${l}`, `-A ufw${v6 ? '6' : ''}-user-input -p tcp --dport 0 -j ACCEPT`, '']),
  '### END RULES ###', 'COMMIT', '',
].join('\n');
const convergedV4 = tuple(false, 'allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 in', 'allow tcp 80 0.0.0.0/0 any 0.0.0.0/0 in',
  'allow tcp 443 0.0.0.0/0 any 0.0.0.0/0 in', 'allow tcp 5432 0.0.0.0/0 any 10.213.0.0/24 in');
const convergedV6 = tuple(true, 'allow tcp 22 ::/0 any ::/0 in', 'allow tcp 80 ::/0 any ::/0 in', 'allow tcp 443 ::/0 any ::/0 in');
const defaults = 'IPV6=yes\nDEFAULT_INPUT_POLICY="DROP"\nDEFAULT_OUTPUT_POLICY="ACCEPT"\nDEFAULT_FORWARD_POLICY="DROP"\n';
const active = 'Status: active\nLogging: on (low)\nDefault: deny (incoming), allow (outgoing), disabled (routed)\nNew profiles: skip\n\n@@rc=0';
const file = (content: string): string => `present 644 root root\n${b64(content)}`;
const sshdT = (...ports: number[]): string => `${ports.map((p) => `port ${p}`).join('\n')}\naddressfamily any\npermitrootlogin without-password\n@@rc=0`;

function facts(o: { status?: string; v4?: string | null; v6?: string | null; defaults?: string | null; enabled?: boolean; sshd?: string }) {
  const f = (c: string | null | undefined): string => (c === null || c === undefined ? 'absent' : file(c));
  return factsOf([
    [statusFact(), o.status ?? active],
    [fileFact(userRulesPath), f(o.v4 === undefined ? convergedV4 : o.v4)],
    [fileFact(user6RulesPath), f(o.v6 === undefined ? convergedV6 : o.v6)],
    [fileFact(defaultsPath), f(o.defaults === undefined ? defaults : o.defaults)],
    [fileFact(confPath), f(`ENABLED=${o.enabled === false ? 'no' : 'yes'}\nLOGLEVEL=low\n`)],
    [sshdConfigFact(), o.sshd ?? sshdT(22)],
  ]);
}
const argvs = (actions: readonly Action[]): string[] => actions.map((a) => (a.kind === 'run' ? a.cmd.argv.join(' ') : a.kind));

describe('ufw', () => {
  it('plans SSH first, then the open and internal ports, then enable, on a host where ufw is not installed yet', () => {
    const plan = ufw.plan(facts({ status: 'sh: 1: ufw: not found\n@@rc=127', v4: null, v6: null, defaults: null, enabled: false }), params, info);
    expect(argvs(plan.actions)).toEqual([
      'ufw allow proto tcp from any to any port 22',
      'ufw allow proto tcp from any to any port 80',
      'ufw allow proto tcp from any to any port 443',
      'ufw allow proto tcp from 10.213.0.0/24 to any port 5432',
      'ufw default deny incoming',
      'ufw default allow outgoing',
      'ufw --force enable',
    ]);
    expect(plan.actions[0]?.why).toMatch(/SSH \(22\/tcp\) must be allowed before the firewall goes up/);
  });

  it('on a stock Debian install plans only the rules and enable: its defaults already deny incoming', () => {
    const stock = tuple(false);
    const plan = ufw.plan(facts({ status: 'Status: inactive\n@@rc=0', v4: stock, v6: tuple(true), enabled: false }), params, info);
    expect(argvs(plan.actions)).not.toContain('ufw default deny incoming');
    expect(argvs(plan.actions).at(-1)).toBe('ufw --force enable');
    expect(argvs(plan.actions)[0]).toBe('ufw allow proto tcp from any to any port 22');
  });

  it('leaves a converged host alone and says what is open', () => {
    const plan = ufw.plan(facts({}), params, info);
    expect(plan).toMatchObject({ actions: [], noop: expect.stringMatching(/ufw is active.*22\/tcp \(SSH\), 80\/tcp, 443\/tcp, 5432\/tcp from 10\.213\.0\.0\/24/) });
  });

  it('allows every port sshd listens on, the connection\'s port and the sshPort parameter', () => {
    const plan = ufw.plan(facts({ sshd: sshdT(22, 2222) }), { ...params, sshPort: 4022 }, { ...info, sshPort: 22 });
    expect(argvs(plan.actions)).toEqual(['ufw allow proto tcp from any to any port 2222', 'ufw allow proto tcp from any to any port 4022']);
  });

  it('in a --local run reads the SSH port from sshd -T', () => {
    const plan = ufw.plan(facts({ sshd: sshdT(2200), v4: tuple(false), v6: tuple(true) }), { ...params, allow: [], internal: [] }, { ...info, sshPort: null, local: true });
    expect(argvs(plan.actions)).toEqual(['ufw allow proto tcp from any to any port 2200']);
  });

  it('re-adds a rule whose IPv6 half is missing', () => {
    const plan = ufw.plan(facts({ v6: tuple(true, 'allow tcp 22 ::/0 any ::/0 in', 'allow tcp 80 ::/0 any ::/0 in') }), params, info);
    expect(argvs(plan.actions)).toEqual(['ufw allow proto tcp from any to any port 443']);
  });

  it('deletes a rule that opens an internal port to everyone, and keeps the one from internalFrom', () => {
    const v4 = convergedV4 + tuple(false, 'allow any 5432 0.0.0.0/0 any 0.0.0.0/0 in', 'allow tcp 5432 0.0.0.0/0 any 192.168.1.0/24 in');
    const plan = ufw.plan(facts({ v4, v6: convergedV6 + tuple(true, 'allow any 5432 ::/0 any ::/0 in') }), params, info);
    expect(argvs(plan.actions)).toEqual([
      'ufw delete allow proto any from 0.0.0.0/0 to 0.0.0.0/0 port 5432',
      'ufw delete allow proto tcp from 192.168.1.0/24 to 0.0.0.0/0 port 5432',
      'ufw delete allow proto any from ::/0 to ::/0 port 5432',
    ]);
    expect(plan.actions[0]?.why).toMatch(/internal port 5432\/tcp is open to everyone, not only to 10\.213\.0\.0\/24/);
  });

  it('keeps internal ports closed when internalFrom is empty, and says so', () => {
    const p = { ...params, internalFrom: [] };
    const plan = ufw.plan(facts({ v4: convergedV4.replace(/.*5432.*\n.*\n/, '') }), p, info);
    expect(plan).toMatchObject({ actions: [], noop: expect.stringMatching(/internal ports 5432\/tcp stay closed: internalFrom is empty/) });
    const drifted = ufw.plan(facts({}), p, info);
    expect(argvs(drifted.actions)).toEqual(['ufw delete allow proto tcp from 10.213.0.0/24 to 0.0.0.0/0 port 5432']);
    expect(drifted.actions[0]?.why).toMatch(/stay closed: internalFrom is empty/);
  });

  it('never deletes the SSH rule, even when the SSH port is listed as internal', () => {
    const plan = ufw.plan(facts({}), { ...params, internal: [{ port: 22, protocol: 'tcp' }] }, info);
    expect(argvs(plan.actions)).toEqual(['ufw allow proto tcp from 10.213.0.0/24 to any port 22']);
  });

  it('turns the firewall back on and restores the defaults after drift', () => {
    const plan = ufw.plan(facts({ status: 'Status: inactive\n@@rc=0', defaults: defaults.replace('"DROP"', '"ACCEPT"'), enabled: false }), params, info);
    expect(argvs(plan.actions)).toEqual(['ufw default deny incoming', 'ufw --force enable']);
    expect(plan.actions[0]?.why).toMatch(/incoming traffic is accept by default/);
  });

  it('counts a limit rule on the SSH port as allowed', () => {
    const v4 = convergedV4.replace('allow tcp 22 0.0.0.0/0', 'limit tcp 22 0.0.0.0/0');
    expect(ufw.plan(facts({ v4 }), params, info).actions).toEqual([]);
  });

  it('turns the firewall off on rollback only when this run enabled it or changed its defaults', () => {
    const enable = ufw.plan(facts({ status: 'Status: inactive\n@@rc=0' }), params, info).actions;
    expect(argvs(ufw.rollback?.(enable, params) ?? [])).toEqual(['ufw disable']);
    const ruleOnly = ufw.plan(facts({ v6: tuple(true, 'allow tcp 22 ::/0 any ::/0 in', 'allow tcp 80 ::/0 any ::/0 in') }), params, info).actions;
    expect(ufw.rollback?.(ruleOnly, params)).toEqual([]);
  });

  it('reads user.rules tuples, with interface, application and comment forms', () => {
    const tuples = parseTuples([
      '### tuple ### allow udp 9000 0.0.0.0/0 any 0.0.0.0/0 in_lo',
      '### tuple ### allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 OpenSSH - in',
      '### tuple ### allow tcp 80 0.0.0.0/0 any 0.0.0.0/0 in comment=7765620a',
      '### tuple ### allow tcp 80;reboot 0.0.0.0/0 any 0.0.0.0/0 in',
      '-A ufw-user-input -p tcp --dport 22 -j ACCEPT',
    ].join('\n'));
    expect(tuples).toMatchObject([{ dport: '9000', direction: 'in_lo', app: false }, { dport: '22', app: true }, { dport: '80', direction: 'in' }]);
    expect(deleteCmd(tuples[0]!).argv).toEqual(['ufw', 'delete', 'allow', 'in', 'on', 'lo', 'proto', 'udp', 'from', '0.0.0.0/0', 'to', '0.0.0.0/0', 'port', '9000']);
    expect(parseTuples(null)).toEqual([]);
  });

  it('reads the state of ufw status as a command fact', () => {
    expect(statusFact().key).toBe(commandFact(['ufw', 'status', 'verbose']).key);
  });

  it('normalizes sources the way ufw stores them and refuses networks with host bits set', () => {
    expect(normalizeCidr('10.213.0.0/24', 'x')).toBe('10.213.0.0/24');
    expect(normalizeCidr('10.0.0.5/32', 'x')).toBe('10.0.0.5');
    expect(normalizeCidr('fd00:0::/64', 'x')).toBe('fd00::/64');
    expect(normalizeCidr('FD00:0:0:0:0:0:0:1', 'x')).toBe('fd00::1');
    expect(() => normalizeCidr('10.213.0.5/24', 'x')).toThrow(/host bits set \(did you mean 10\.213\.0\.0\/24\?\)/);
    expect(() => normalizeCidr('fd00::1/64', 'x')).toThrow(/host bits set/);
  });

  it('parses good parameters with defaults', () => {
    expect(ufw.parseParams({})).toEqual({ allow: [], internal: [], internalFrom: [], sshPort: null });
    expect(ufw.parseParams({ allow: [{ port: 443 }, { port: 443, protocol: 'tcp' }], internalFrom: ['10.0.0.0/8', '10.0.0.0/8'], sshPort: 2222 }))
      .toEqual({ allow: [{ port: 443, protocol: 'tcp' }], internal: [], internalFrom: ['10.0.0.0/8'], sshPort: 2222 });
  });

  it('refuses hostile and bad values before any connection', () => {
    expect(() => ufw.parseParams({ allow: [{ port: '80; reboot' }] })).toThrow(/allow\[0\]: port must be a whole number/);
    expect(() => ufw.parseParams({ allow: [{ port: 80, protocol: 'tcp; reboot' }] })).toThrow(/"tcp" or "udp"/);
    expect(() => ufw.parseParams({ allow: [{ port: 70000 }] })).toThrow(/from 1 to 65535/);
    expect(() => ufw.parseParams({ allow: ['80/tcp'] })).toThrow(/allow\[0\] must be a mapping/);
    expect(() => ufw.parseParams({ allow: [{ port: 80, extra: 1 }] })).toThrow(/unknown parameter "extra"/);
    for (const bad of ['$(id)', '10.0.0.0/8;reboot', "10.0.0.0/8'", '10.0.0.0/8\nreboot', '`id`', '300.1.1.1', '1.2.3.4/33', ':::1::']) {
      expect(() => ufw.parseParams({ internalFrom: [bad] }), bad).toThrow(/internalFrom\[0\]/);
    }
    expect(() => ufw.parseParams({ sshPort: 'a;reboot' })).toThrow(/sshPort/);
    expect(() => ufw.parseParams({ allow: [{ port: 5432 }], internal: [{ port: 5432 }] })).toThrow(/both public \(allow\) and internal/);
    expect(() => ufw.parseParams({ bogus: 1 })).toThrow(/unknown parameter "bogus"/);
  });
});
