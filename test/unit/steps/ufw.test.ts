import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Action } from '../../../src/core/plan.js';
import type { Cmd, RunResult, Transport } from '../../../src/core/types.js';
import { commandFact, fileFact, sshdConfigFact } from '../../../src/facts/state.js';
import { sshSessionFact } from '../../../src/facts/sshd.js';
import type { HostContext, ServedPort } from '../../../src/steps/types.js';
import { contains, ufw } from '../../../src/steps/ufw.js';
import { rateLimitWindowMs } from '../../../src/steps/access.js';
import { AuthError, UnreachableError } from '../../../src/core/errors.js';
import { planOf, present } from './facts-of.js';

const params = ufw.parseParams({
  allow: [{ port: 80, protocol: 'tcp' }, { port: 443, protocol: 'tcp' }],
  internal: [{ port: 5432, protocol: 'tcp' }],
  internalFrom: ['10.213.0.0/24'],
  sshRateLimit: true,
});

// Captured on Debian 12 (ufw 0.36.2) in a test target, after the step's own commands.
const rules = (v6: boolean, ...tuples: string[]): string => [
  '*filter', `:ufw${v6 ? '6' : ''}-user-input - [0:0]`, '### RULES ###', '',
  ...tuples.flatMap((l) => [`### tuple ### ${l}`, `-A ufw${v6 ? '6' : ''}-user-input -p tcp --dport 0 -j ACCEPT`, '']),
  '### END RULES ###', 'COMMIT', '',
].join('\n');
const convergedV4 = rules(false, 'limit tcp 22 0.0.0.0/0 any 0.0.0.0/0 in', 'allow tcp 80 0.0.0.0/0 any 0.0.0.0/0 in',
  'allow tcp 443 0.0.0.0/0 any 0.0.0.0/0 in', 'allow tcp 5432 0.0.0.0/0 any 10.213.0.0/24 in');
const convergedV6 = rules(true, 'limit tcp 22 ::/0 any ::/0 in', 'allow tcp 80 ::/0 any ::/0 in', 'allow tcp 443 ::/0 any ::/0 in');
const debianDefaults = 'IPV6=yes\nDEFAULT_INPUT_POLICY="DROP"\nDEFAULT_OUTPUT_POLICY="ACCEPT"\nDEFAULT_FORWARD_POLICY="DROP"\n';
const active = 'Status: active\nLogging: on (low)\nDefault: deny (incoming), allow (outgoing), disabled (routed)\nNew profiles: skip\n\n@@rc=0';
const inactive = 'Status: inactive\n@@rc=0';
const sshdT = (...ports: number[]): string => `${ports.map((p) => `port ${p}`).join('\n')}\naddressfamily any\npermitrootlogin without-password\n@@rc=0`;

interface Host { status?: string; v4?: string | null; v6?: string | null; defaults?: string | null; enabled?: boolean; sshd?: string; session?: string }

/** The plan for a host that is converged for `params` except where `host` says otherwise. */
function planFor(host: Host, p = params, context: { sshPort?: number | null; local?: boolean; served?: ServedPort[] } = {}) {
  const file = (content: string | null | undefined, otherwise: string): string => {
    const text = content === undefined ? otherwise : content;
    return text === null ? 'absent' : present(text);
  };
  return planOf(ufw, [
    [commandFact(['ufw', 'status', 'verbose']), host.status ?? active],
    [fileFact('/etc/ufw/user.rules'), file(host.v4, convergedV4)],
    [fileFact('/etc/ufw/user6.rules'), file(host.v6, convergedV6)],
    [fileFact('/etc/default/ufw'), file(host.defaults, debianDefaults)],
    [fileFact('/etc/ufw/ufw.conf'), present(`ENABLED=${host.enabled === false ? 'no' : 'yes'}\nLOGLEVEL=low\n`)],
    [sshdConfigFact(), host.sshd ?? sshdT(22)],
    // Captured in a test target: SSH_CONNECTION of the zanuri session, as the ancestor walk prints it.
    [sshSessionFact(), host.session ?? 'session 10.213.0.1 53122 10.213.0.10 22'],
  ], p, context);
}
const commands = (actions: readonly Action[]): string[] => actions.map((a) => (a.kind === 'run' ? a.cmd.argv.join(' ') : a.kind));

describe('ufw', () => {
  const ssh22 = 'ufw limit proto tcp from any to any port 22';

  it('on a host without ufw yet, rate-limits SSH first, then opens the public and internal ports, sets the defaults and enables the firewall last', () => {
    const plan = planFor({ status: 'sh: 1: ufw: not found\n@@rc=127', v4: null, v6: null, defaults: null, enabled: false });
    expect(commands(plan.actions)).toEqual([
      ssh22,
      'ufw allow proto tcp from any to any port 80',
      'ufw allow proto tcp from any to any port 443',
      'ufw allow proto tcp from 10.213.0.0/24 to any port 5432',
      'ufw default deny incoming',
      'ufw default allow outgoing',
      'ufw --force enable',
    ]);
    expect(plan.actions.map((a) => a.why)).toEqual([
      'SSH (22/tcp) must be allowed before the firewall goes up, or the operator is locked out; it stays open to everyone (adminFrom is empty), so it is rate-limited: a 6th new connection from one address within 30 s is dropped',
      '80/tcp is to be open to everyone: the allow parameter',
      '443/tcp is to be open to everyone: the allow parameter',
      '5432/tcp is to be open from 10.213.0.0/24 only (internal): the internal parameter',
      'incoming traffic is not yet denied by default, not denied',
      'outgoing traffic is not yet allowed by default, not allowed',
      'the firewall is not active',
    ]);
  });

  it('can undo every rule it adds', () => {
    const plan = planFor({ status: inactive, v4: rules(false), v6: rules(true), enabled: false });
    expect(plan.actions.slice(0, 2)).toMatchObject([
      { kind: 'run', undo: { argv: ['ufw', 'delete', 'limit', 'proto', 'tcp', 'from', 'any', 'to', 'any', 'port', '22'] } },
      { kind: 'run', undo: { argv: ['ufw', 'delete', 'allow', 'proto', 'tcp', 'from', 'any', 'to', 'any', 'port', '80'] } },
    ]);
  });

  it('on a stock Debian install leaves the defaults alone: they already deny incoming and allow outgoing', () => {
    const plan = planFor({ status: inactive, v4: rules(false), v6: rules(true), enabled: false });
    expect(commands(plan.actions)).toEqual([
      ssh22,
      'ufw allow proto tcp from any to any port 80',
      'ufw allow proto tcp from any to any port 443',
      'ufw allow proto tcp from 10.213.0.0/24 to any port 5432',
      'ufw --force enable',
    ]);
  });

  it('leaves a converged host alone and says what is open', () => {
    expect(planFor({})).toEqual({
      actions: [],
      noop: 'ufw is active, denies incoming and allows outgoing by default, and allows 22/tcp (SSH, rate-limited), 80/tcp, 443/tcp, 5432/tcp from 10.213.0.0/24',
    });
  });

  it('rate-limits every port sshd listens on, the port of this connection and the sshPort parameter', () => {
    const plan = planFor({ sshd: sshdT(22, 2222) }, { ...params, sshPort: 4022 }, { sshPort: 2200 });
    expect(commands(plan.actions)).toEqual([
      'ufw limit proto tcp from any to any port 2200',
      'ufw limit proto tcp from any to any port 2222',
      'ufw limit proto tcp from any to any port 4022',
    ]);
  });

  it('in a --local run, where there is no connection port, limits the port sshd -T reports', () => {
    const plan = planFor({ sshd: sshdT(2200), v4: rules(false), v6: rules(true) }, { ...params, allow: [], internal: [] }, { sshPort: null, local: true });
    expect(commands(plan.actions)).toEqual(['ufw limit proto tcp from any to any port 2200']);
  });

  it('handles an SSH port listed among the public ports once, as SSH', () => {
    const plan = planFor({ v4: rules(false), v6: rules(true) }, { ...params, allow: [{ port: 22, protocol: 'tcp' }], internal: [] });
    expect(commands(plan.actions)).toEqual([ssh22]);
  });

  it('turns a plain SSH allow rule into a limit rule (ufw updates the rule in place), and deletes one left beside a limit rule', () => {
    const plainV4 = convergedV4.replace('limit tcp 22 0.0.0.0/0', 'allow tcp 22 0.0.0.0/0');
    const plainV6 = convergedV6.replace('limit tcp 22 ::/0', 'allow tcp 22 ::/0');
    expect(commands(planFor({ v4: plainV4, v6: plainV6 }).actions)).toEqual([ssh22]);
    const both = planFor({ v6: convergedV6 + rules(true, 'allow tcp 22 ::/0 any ::/0 in') });
    expect(commands(both.actions)).toEqual(['ufw delete allow proto tcp from ::/0 to ::/0 port 22']);
    expect(both.actions[0]).toMatchObject({ why: 'SSH (22/tcp) is also allowed from everyone without the rate limit', undo: { argv: ['ufw', 'allow', 'proto', 'tcp', 'from', '::/0', 'to', '::/0', 'port', '22'] } });
  });

  it('adds a public rule again when only its IPv6 half is missing, unless IPv6 is off in /etc/default/ufw', () => {
    const v6 = rules(true, 'limit tcp 22 ::/0 any ::/0 in', 'allow tcp 80 ::/0 any ::/0 in');
    expect(commands(planFor({ v6 }).actions)).toEqual(['ufw allow proto tcp from any to any port 443']);
    expect(planFor({ v6, defaults: debianDefaults.replace('IPV6=yes', 'IPV6=no') }).actions).toEqual([]);
  });

  it('does not count a rule for another interface, an application profile or a malformed tuple as opening a port', () => {
    const v4 = convergedV4.replace('allow tcp 80 0.0.0.0/0 any 0.0.0.0/0 in', 'allow tcp 80 0.0.0.0/0 any 0.0.0.0/0 in_lo')
      .replace('allow tcp 443 0.0.0.0/0 any 0.0.0.0/0 in', 'allow tcp 443;reboot 0.0.0.0/0 any 0.0.0.0/0 in')
      .replace('limit tcp 22 0.0.0.0/0 any 0.0.0.0/0 in', 'allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 OpenSSH - in');
    expect(commands(planFor({ v4 }).actions)).toEqual([
      ssh22,
      'ufw allow proto tcp from any to any port 80',
      'ufw allow proto tcp from any to any port 443',
    ]);
  });

  it('deletes every rule that opens an internal port wider than internalFrom, on any interface, and keeps the one from internalFrom', () => {
    const v4 = convergedV4 + rules(false, 'allow any 5432 0.0.0.0/0 any 0.0.0.0/0 in', 'allow tcp 5432 0.0.0.0/0 any 192.168.1.0/24 in comment=7765620a',
      'allow_log udp 5432 0.0.0.0/0 any 0.0.0.0/0 in', 'allow tcp 5432 0.0.0.0/0 any 0.0.0.0/0 in_eth1', 'deny tcp 5432 0.0.0.0/0 any 0.0.0.0/0 in');
    const plan = planFor({ v4, v6: convergedV6 + rules(true, 'allow any 5432 ::/0 any ::/0 in') });
    expect(commands(plan.actions)).toEqual([
      'ufw delete allow proto any from 0.0.0.0/0 to 0.0.0.0/0 port 5432',
      'ufw delete allow proto tcp from 192.168.1.0/24 to 0.0.0.0/0 port 5432',
      'ufw delete allow in on eth1 proto tcp from 0.0.0.0/0 to 0.0.0.0/0 port 5432',
      'ufw delete allow proto any from ::/0 to ::/0 port 5432',
    ]);
    expect(plan.actions[0]?.why).toBe('internal port 5432/tcp is open to everyone, not only to 10.213.0.0/24');
    expect(plan.actions[1]?.why).toBe('internal port 5432/tcp is open to 192.168.1.0/24, not only to 10.213.0.0/24');
    expect(plan.actions[2]).toMatchObject({ undo: { argv: ['ufw', 'allow', 'in', 'on', 'eth1', 'proto', 'tcp', 'from', '0.0.0.0/0', 'to', '0.0.0.0/0', 'port', '5432'] } });
  });

  it('deletes a rule that opens two internal ports\' shared number once', () => {
    const p = { ...params, internal: [{ port: 5432, protocol: 'tcp' as const }, { port: 5432, protocol: 'udp' as const }], internalFrom: [] };
    const v4 = rules(false, 'limit tcp 22 0.0.0.0/0 any 0.0.0.0/0 in', 'allow tcp 80 0.0.0.0/0 any 0.0.0.0/0 in', 'allow tcp 443 0.0.0.0/0 any 0.0.0.0/0 in',
      'allow any 5432 0.0.0.0/0 any 0.0.0.0/0 in');
    expect(commands(planFor({ v4 }, p).actions)).toEqual(['ufw delete allow proto any from 0.0.0.0/0 to 0.0.0.0/0 port 5432']);
  });

  it('keeps internal ports closed when internalFrom is empty, and says so', () => {
    const p = { ...params, internalFrom: [] };
    const closed = planFor({ v4: convergedV4.replace(/.*5432.*\n.*\n/, '') }, p);
    expect(closed).toMatchObject({ actions: [], noop: expect.stringMatching(/allows 22\/tcp \(SSH, rate-limited\), 80\/tcp, 443\/tcp; internal ports 5432\/tcp stay closed: internalFrom is empty$/) });
    const drifted = planFor({}, p);
    expect(commands(drifted.actions)).toEqual(['ufw delete allow proto tcp from 10.213.0.0/24 to 0.0.0.0/0 port 5432']);
    expect(drifted.actions[0]?.why).toBe('internal port 5432/tcp is open to 10.213.0.0/24, not only to nobody (internalFrom is empty); internal ports 5432/tcp stay closed: internalFrom is empty');
  });

  it('never deletes the SSH rule, even when the SSH port is listed as internal', () => {
    const plan = planFor({}, { ...params, internal: [{ port: 22, protocol: 'tcp' }] });
    expect(plan.actions).toEqual([]);
  });

  it('turns the firewall back on and restores the default policy after drift', () => {
    const plan = planFor({ status: inactive, defaults: debianDefaults.replace('"DROP"', '"ACCEPT"'), enabled: false });
    expect(commands(plan.actions)).toEqual(['ufw default deny incoming', 'ufw --force enable']);
    expect(plan.actions[0]?.why).toBe('incoming traffic is accept by default, not denied');
  });

  it('enables a firewall that is up but would not come up at boot', () => {
    const plan = planFor({ enabled: false });
    expect(plan.actions).toMatchObject([{ cmd: { argv: ['ufw', '--force', 'enable'] }, why: 'the firewall is active but not enabled at boot' }]);
  });

  it('on rollback turns the firewall off when this run enabled it or changed a default, and not for added rules alone', () => {
    const disable = ['ufw disable'];
    expect(commands(ufw.rollback?.(planFor({ status: inactive }).actions, params) ?? [])).toEqual(disable);
    expect(commands(ufw.rollback?.(planFor({ defaults: debianDefaults.replace('"DROP"', '"ACCEPT"') }).actions, params) ?? [])).toEqual(disable);
    const ruleOnly = planFor({ v6: rules(true, 'limit tcp 22 ::/0 any ::/0 in', 'allow tcp 80 ::/0 any ::/0 in') }).actions;
    expect(ruleOnly).toHaveLength(1);
    expect(ufw.rollback?.(ruleOnly, params)).toEqual([]);
  });

  describe('admin sources', () => {
    const admin = { ...params, adminFrom: ['10.213.0.1', '192.0.2.0/24'] };

    it('allows SSH from each admin source first, then deletes every rule that opens SSH wider, with its undo', () => {
      const plan = planFor({ v4: convergedV4 + rules(false, 'allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 OpenSSH - in') }, admin);
      expect(commands(plan.actions)).toEqual([
        'ufw allow proto tcp from 10.213.0.1 to any port 22',
        'ufw allow proto tcp from 192.0.2.0/24 to any port 22',
        'ufw delete limit proto tcp from 0.0.0.0/0 to 0.0.0.0/0 port 22',
        'ufw delete allow from 0.0.0.0/0 to 0.0.0.0/0 app OpenSSH',
        'ufw delete limit proto tcp from ::/0 to ::/0 port 22',
      ]);
      expect(plan.actions[0]?.why).toMatch(/^SSH \(22\/tcp\) must be allowed from 10\.213\.0\.1 \(adminFrom\) before the firewall goes up or narrows/);
      expect(plan.actions[2]).toMatchObject({
        why: 'SSH (22/tcp) is open to everyone, not only to adminFrom (10.213.0.1, 192.0.2.0/24)',
        undo: { argv: ['ufw', 'limit', 'proto', 'tcp', 'from', '0.0.0.0/0', 'to', '0.0.0.0/0', 'port', '22'] },
      });
    });

    it('leaves a host converged to the admin sources alone', () => {
      const v4 = rules(false, 'allow tcp 22 0.0.0.0/0 any 10.213.0.1 in', 'allow tcp 22 0.0.0.0/0 any 192.0.2.0/24 in', 'allow tcp 80 0.0.0.0/0 any 0.0.0.0/0 in',
        'allow tcp 443 0.0.0.0/0 any 0.0.0.0/0 in', 'allow tcp 5432 0.0.0.0/0 any 10.213.0.0/24 in');
      const v6 = rules(true, 'allow tcp 80 ::/0 any ::/0 in', 'allow tcp 443 ::/0 any ::/0 in');
      expect(planFor({ v4, v6 }, admin)).toEqual({ actions: [], noop: expect.stringContaining('allows 22/tcp (SSH) from 10.213.0.1, 192.0.2.0/24, 80/tcp') });
    });

    it('refuses before planning anything when this connection comes from outside them', () => {
      expect(() => planFor({}, { ...params, adminFrom: ['192.0.2.0/24'] })).toThrow(
        'ufw: this connection comes from 10.213.0.1, which is outside adminFrom (192.0.2.0/24): SSH would be closed to you, so nothing was changed');
      expect(() => planFor({ session: 'session ::ffff:192.0.2.7 40000 10.213.0.10 22' }, { ...params, adminFrom: ['192.0.2.0/24'] })).not.toThrow();
    });

    it('refuses a remote run whose source the host cannot tell, and lets a console run through', () => {
      expect(() => planFor({ session: 'session ' }, admin)).toThrow(/does not say where this SSH connection comes from/);
      expect(() => planFor({ session: 'session ' }, admin, { local: true, sshPort: null })).not.toThrow();
    });

    it('opens admin ports from the admin sources only, and keeps them closed without any', () => {
      const p = { ...params, admin: [{ port: 3000, protocol: 'tcp' as const }] };
      const open = planFor({}, { ...p, adminFrom: ['10.213.0.1'] });
      expect(commands(open.actions)).toContain('ufw allow proto tcp from 10.213.0.1 to any port 3000');
      const closed = planFor({ v4: convergedV4 + rules(false, 'allow tcp 3000 0.0.0.0/0 any 0.0.0.0/0 in') }, p);
      expect(commands(closed.actions)).toEqual(['ufw delete allow proto tcp from 0.0.0.0/0 to 0.0.0.0/0 port 3000']);
      expect(closed.actions[0]?.why).toBe('admin port 3000/tcp is open to everyone, not only to nobody (adminFrom is empty); admin ports 3000/tcp stay closed: adminFrom is empty');
    });
  });

  describe('ports the selected steps serve', () => {
    const served: ServedPort[] = [
      { port: 80, protocol: 'tcp', access: 'public', step: 'nginx', why: 'HTTP and the ACME challenge' },
      { port: 443, protocol: 'tcp', access: 'public', step: 'nginx', why: 'HTTPS' },
      { port: 5432, protocol: 'tcp', access: 'internal', step: 'postgresql', why: 'application servers' },
      { port: 9100, protocol: 'tcp', access: 'admin', step: 'node-exporter', why: 'metrics' },
    ];
    const bare = ufw.parseParams({ internalFrom: ['10.213.0.0/24'], adminFrom: ['10.213.0.1'] });

    it('opens what each step serves, to whom it says, with reasons that name the step', () => {
      const plan = planFor({ status: inactive, v4: rules(false), v6: rules(true), enabled: false }, bare, { served });
      expect(commands(plan.actions)).toEqual([
        'ufw allow proto tcp from 10.213.0.1 to any port 22',
        'ufw allow proto tcp from any to any port 80',
        'ufw allow proto tcp from any to any port 443',
        'ufw allow proto tcp from 10.213.0.0/24 to any port 5432',
        'ufw allow proto tcp from 10.213.0.1 to any port 9100',
        'ufw --force enable',
      ]);
      expect(plan.actions[1]?.why).toBe('80/tcp is to be open to everyone: nginx serves it (HTTP and the ACME challenge)');
      expect(plan.actions[3]?.why).toBe('5432/tcp is to be open from 10.213.0.0/24 only (internal): postgresql serves it (application servers)');
    });

    it('gives a port two steps serve differently the wider access, and a port the parameters name the access they give', () => {
      const twice: ServedPort[] = [...served, { port: 5432, protocol: 'tcp', access: 'public', step: 'pgbouncer', why: 'clients' }];
      const wider = planFor({ status: inactive, v4: rules(false), v6: rules(true), enabled: false }, bare, { served: twice });
      expect(commands(wider.actions)).toContain('ufw allow proto tcp from any to any port 5432');
      const named = planFor({ status: inactive, v4: rules(false), v6: rules(true), enabled: false }, { ...bare, internal: [{ port: 80, protocol: 'tcp' }] }, { served });
      expect(commands(named.actions)).toContain('ufw allow proto tcp from 10.213.0.0/24 to any port 80');
      expect(commands(named.actions)).not.toContain('ufw allow proto tcp from any to any port 80');
    });

    it('names the serving steps when converged', () => {
      const v4 = rules(false, 'allow tcp 22 0.0.0.0/0 any 10.213.0.1 in', 'allow tcp 80 0.0.0.0/0 any 0.0.0.0/0 in', 'allow tcp 443 0.0.0.0/0 any 0.0.0.0/0 in',
        'allow tcp 5432 0.0.0.0/0 any 10.213.0.0/24 in', 'allow tcp 9100 0.0.0.0/0 any 10.213.0.1 in');
      const v6 = rules(true, 'allow tcp 80 ::/0 any ::/0 in', 'allow tcp 443 ::/0 any ::/0 in');
      expect(planFor({ v4, v6 }, bare, { served })).toEqual({ actions: [], noop: 'ufw is active, denies incoming and allows outgoing by default, and allows 22/tcp (SSH) from 10.213.0.1, 80/tcp (nginx), 443/tcp (nginx), 5432/tcp (postgresql) from 10.213.0.0/24, 9100/tcp (node-exporter) from 10.213.0.1' });
    });
  });

  it('tells whether an address is inside a network, IPv4 and IPv6', () => {
    expect(contains('10.213.0.0/24', '10.213.0.1')).toBe(true);
    expect(contains('10.213.0.128/25', '10.213.0.1')).toBe(false);
    expect(contains('10.213.0.1', '10.213.0.1')).toBe(true);
    expect(contains('0.0.0.0/0', '192.0.2.1')).toBe(true);
    expect(contains('fd00::/64', 'fd00::1')).toBe(true);
    expect(contains('fd00::/64', 'fd01::1')).toBe(false);
    expect(contains('10.0.0.0/8', 'fd00::1')).toBe(false);
  });

  describe('verify', () => {
    const result = (stdout: string, exitCode = 0): RunResult => ({ command: '', target: 't', exitCode, stdout, stderr: '', durationMs: 0, ok: exitCode === 0 });
    const host = (status: string, fresh: string[], connect: () => Promise<void> = async () => {}): HostContext => ({
      loginUser: 'root', sshPort: 22, local: false, target: 't',
      run: async () => result(status),
      connectFresh: async () => {
        await connect();
        return { run: async (cmd: Cmd) => { fresh.push(cmd.argv.join(' ')); return result(''); }, close: async () => {} } as unknown as Transport;
      },
      connectAs: async () => { throw new Error('not used'); },
    });

    it('fails when the firewall is not active', async () => {
      const fresh: string[] = [];
      await expect(ufw.verify?.(host('Status: inactive\n', fresh), params)).rejects.toThrow(/the firewall is not active/);
    });

    it('proves a fresh SSH login gets through the active firewall', async () => {
      const fresh: string[] = [];
      await ufw.verify?.(host('Status: active\n', fresh), params);
      expect(fresh).toEqual(['true']);
    });

    it('counts sshd refusing the login user (ssh-harden just turned root logins off) as getting through', async () => {
      const refused = async (): Promise<void> => { throw new AuthError('authentication to root@t failed'); };
      await expect(ufw.verify?.(host('Status: active\n', [], refused), params)).resolves.toBeUndefined();
    });

    it('fails when a fresh connection cannot reach sshd through it', async () => {
      const dropped = async (): Promise<void> => { throw new UnreachableError('cannot reach root@t: ETIMEDOUT'); };
      await expect(ufw.verify?.(host('Status: active\n', [], dropped), params)).rejects.toThrow(/ETIMEDOUT/);
    });

    describe('when ufw limit refuses the proof (a 6th new connection within 30 s)', () => {
      beforeEach(() => { vi.useFakeTimers(); });
      afterEach(() => { vi.useRealTimers(); });
      const refusedThen = (times: number, attempts: number[]) => async (): Promise<void> => {
        attempts.push(Date.now());
        if (attempts.length <= times) throw new UnreachableError('cannot reach root@t: ECONNREFUSED', { cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) });
      };

      it('waits out the window once, without knocking in between, and then gets through', async () => {
        const attempts: number[] = [];
        const fresh: string[] = [];
        const proof = ufw.verify?.(host('Status: active\n', fresh, refusedThen(1, attempts)), params);
        await vi.advanceTimersByTimeAsync(rateLimitWindowMs);
        await proof;
        expect(attempts.length).toBe(2);
        expect(attempts[1]! - attempts[0]!).toBeGreaterThan(30_000);
        expect(fresh).toEqual(['true']);
      });

      it('fails (and so rolls back) when the port still refuses after the window', async () => {
        const attempts: number[] = [];
        const proof = expect(ufw.verify?.(host('Status: active\n', [], refusedThen(9, attempts)), params)).rejects.toThrow(/ECONNREFUSED/);
        await vi.advanceTimersByTimeAsync(rateLimitWindowMs * 3);
        await proof;
        expect(attempts.length).toBe(2);
      });
    });
  });

  describe('parameters', () => {
    it('default to no ports, no sources, a rate-limited public SSH and no extra SSH port', () => {
      expect(ufw.parseParams({})).toEqual({ allow: [], internal: [], admin: [], internalFrom: [], adminFrom: [], sshRateLimit: true, sshPort: null });
    });

    it('rate-limit a public SSH by default, and allow it plainly when sshRateLimit is off', () => {
      const fresh = { status: inactive, v4: null, v6: null, defaults: null, enabled: false };
      expect(commands(planFor(fresh, ufw.parseParams({})).actions)[0]).toBe('ufw limit proto tcp from any to any port 22');
      expect(commands(planFor(fresh, ufw.parseParams({ sshRateLimit: false })).actions)[0]).toBe('ufw allow proto tcp from any to any port 22');
    });

    it('take tcp when no protocol is given, and drop repeated rules and sources', () => {
      expect(ufw.parseParams({ allow: [{ port: 443 }, { port: 443, protocol: 'tcp' }, { port: 443, protocol: 'udp' }], internalFrom: ['10.0.0.0/8', '10.0.0.0/8'], sshPort: 2222 }))
        .toEqual({ allow: [{ port: 443, protocol: 'tcp' }, { port: 443, protocol: 'udp' }], internal: [], admin: [], internalFrom: ['10.0.0.0/8'], adminFrom: [], sshRateLimit: true, sshPort: 2222 });
    });

    it('write sources the way ufw stores them, so a converged host plans nothing', () => {
      expect(ufw.parseParams({ internalFrom: ['10.0.0.5/32', '10.213.0.0/24', 'fd00:0::/64', 'FD00:0:0:0:0:0:0:1', 'fd00::1/128'] }).internalFrom)
        .toEqual(['10.0.0.5', '10.213.0.0/24', 'fd00::/64', 'fd00::1']);
    });

    it('refuse a network with host bits set, which ufw would silently widen', () => {
      expect(() => ufw.parseParams({ internalFrom: ['10.213.0.5/24'] })).toThrow('ufw: internalFrom[0] has host bits set (did you mean 10.213.0.0/24?), got "10.213.0.5/24"');
      expect(() => ufw.parseParams({ internalFrom: ['10.0.0.0/8', 'fd00::1/64'] })).toThrow(/internalFrom\[1\] has host bits set/);
    });

    it('refuse a port in two of the public, internal and admin lists', () => {
      expect(() => ufw.parseParams({ allow: [{ port: 5432 }], internal: [{ port: 5432 }] })).toThrow('ufw: 5432/tcp cannot be in both allow and internal');
      expect(() => ufw.parseParams({ internal: [{ port: 3000 }], admin: [{ port: 3000 }] })).toThrow('ufw: 3000/tcp cannot be in both internal and admin');
    });

    it('hold admin sources to the same rules as internal ones', () => {
      expect(ufw.parseParams({ adminFrom: ['10.0.0.5/32', '10.0.0.5'] }).adminFrom).toEqual(['10.0.0.5']);
      expect(() => ufw.parseParams({ adminFrom: ['10.213.0.5/24'] })).toThrow('ufw: adminFrom[0] has host bits set (did you mean 10.213.0.0/24?), got "10.213.0.5/24"');
      expect(() => ufw.parseParams({ adminFrom: ['$(reboot)'] })).toThrow(/adminFrom\[0\]/);
    });

    it('refuse hostile and bad values before any connection', () => {
      expect(() => ufw.parseParams({ allow: [{ port: '80; reboot' }] })).toThrow(/allow\[0\]\.port must be a port number from 1 to 65535/);
      expect(() => ufw.parseParams({ allow: [{ port: 80, protocol: 'tcp; reboot' }] })).toThrow(/"tcp" or "udp"/);
      expect(() => ufw.parseParams({ allow: [{ port: 70000 }] })).toThrow(/from 1 to 65535/);
      expect(() => ufw.parseParams({ allow: ['80/tcp'] })).toThrow(/allow\[0\] must be a mapping/);
      expect(() => ufw.parseParams({ allow: [{ port: 80, extra: 1 }] })).toThrow(/unknown parameter "extra"/);
      for (const bad of ['$(id)', '10.0.0.0/8;reboot', "10.0.0.0/8'", '10.0.0.0/8\nreboot', '`id`', '300.1.1.1', '1.2.3.4/33', ':::1::', 'fd00::g']) {
        expect(() => ufw.parseParams({ internalFrom: [bad] }), bad).toThrow(/internalFrom\[0\]/);
      }
      expect(() => ufw.parseParams({ sshPort: 'a;reboot' })).toThrow(/sshPort/);
      expect(() => ufw.parseParams({ bogus: 1 })).toThrow(/unknown parameter "bogus"/);
    });
  });
});
