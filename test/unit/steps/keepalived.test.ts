import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Plan } from '../../../src/core/plan.js';
import { fileFact, serviceFact } from '../../../src/facts/state.js';
import { configPath, keepalived, ufwBeforeRules, withVrrpBlock } from '../../../src/steps/keepalived.js';
import { planOf, present } from './facts-of.js';

/** Debian 12's before.rules (see test/plans/keepalived/SOURCE). */
const debianRules = readFileSync(new URL('../../plans/keepalived/ufw-before.rules', import.meta.url), 'utf8');
const base = { virtualIp: '10.213.0.250', peers: ['10.213.0.12'], authPass: 'secret1' };
const planFor = (params: unknown, rules: string | null = debianRules): Plan => planOf(keepalived, [
  [fileFact(configPath), 'absent'],
  [fileFact(ufwBeforeRules), rules === null ? 'absent' : present(rules, '640')],
  [serviceFact('keepalived.service'), 'disabled\ninactive'],
], keepalived.parseParams(params));
const puts = (plan: Plan): Record<string, string> => Object.fromEntries(plan.actions.flatMap((a) => (a.kind === 'put' ? [[a.path, String(a.content)]] : [])));

describe('keepalived', () => {
  it('declares a unicast VRRP instance with the virtual IP, authentication and the haproxy check, validated by keepalived --config-test', () => {
    const plan = planFor({ ...base, role: 'master' });
    const conf = puts(plan)[configPath] ?? '';
    expect(conf).toContain('state MASTER');
    expect(conf).toContain('priority 150');
    expect(conf).toContain('unicast_peer {\n        10.213.0.12\n    }');
    expect(conf).toContain('auth_pass secret1');
    expect(conf).toContain('10.213.0.250/24 dev eth0');
    expect(conf).toContain('script "/usr/bin/systemctl is-active --quiet haproxy.service"');
    expect(conf).toContain('weight -60');
    const put = plan.actions.find((a) => a.kind === 'put' && a.path === configPath);
    expect(put?.kind === 'put' && put.validate?.argv).toEqual(['keepalived', '--config-test', '-f', '{}']);
    expect(put?.kind === 'put' && put.mode).toBe(0o640);
  });

  it('a backup starts lower than a master by less than the check weight, so a failed check moves the address', () => {
    const conf = puts(planFor(base))[configPath] ?? '';
    expect(conf).toContain('state BACKUP');
    expect(conf).toContain('priority 100');
    expect(150 - 60).toBeLessThan(100);
  });

  it('admits VRRP from the peers only, right after the required lines of Debian\'s before.rules, and restarts ufw', () => {
    const plan = planFor({ ...base, peers: ['10.213.0.12', '10.213.0.13'] });
    const rules = puts(plan)[ufwBeforeRules] ?? '';
    expect(rules).toContain('# End required lines\n# BEGIN zanuri keepalived\n');
    expect(rules).toContain('-A ufw-before-input -p 112 -s 10.213.0.12 -j ACCEPT\n-A ufw-before-input -p 112 -s 10.213.0.13 -j ACCEPT\n# END zanuri keepalived\n');
    expect(rules.replace(/# BEGIN zanuri keepalived[\s\S]*# END zanuri keepalived\n/, '')).toBe(debianRules);
    const at = plan.actions.findIndex((a) => a.kind === 'put' && a.path === ufwBeforeRules);
    const reload = plan.actions[at + 1];
    expect(reload?.kind === 'run' && reload.cmd.argv.at(-2)).toMatch(/ufw reload$/);
  });

  it('replaces its own block when the peers change and leaves the rest of before.rules as it was', () => {
    const once = withVrrpBlock(debianRules, '# BEGIN zanuri keepalived\n-A ufw-before-input -p vrrp -s 10.0.0.1 -j ACCEPT\n# END zanuri keepalived\n') ?? '';
    const twice = withVrrpBlock(`${once}# an operator's line\n`, '# BEGIN zanuri keepalived\n-A ufw-before-input -p vrrp -s 10.0.0.2 -j ACCEPT\n# END zanuri keepalived\n') ?? '';
    expect(twice).not.toContain('10.0.0.1');
    expect(twice).toContain('10.0.0.2');
    expect(twice.endsWith("# an operator's line\n")).toBe(true);
  });

  it('neither writes before.rules nor reloads ufw when the block is already there', () => {
    const rules = puts(planFor(base))[ufwBeforeRules] ?? '';
    const plan = planFor(base, rules);
    expect(Object.keys(puts(plan))).toEqual([configPath]);
    expect(plan.actions.some((a) => a.kind === 'run')).toBe(false);
  });

  it('touches no firewall file where ufw is not installed', () => {
    expect(Object.keys(puts(planFor(base, null)))).toEqual([configPath]);
  });

  it('refuses a before.rules it cannot place the block in, and bad parameters, before any change', () => {
    expect(() => planFor(base, '*filter\nCOMMIT\n')).toThrow(/End required lines/);
    expect(() => keepalived.parseParams({ ...base, authPass: 'has space' })).toThrow();
    expect(() => keepalived.parseParams({ ...base, authPass: 'muchtoolong' })).toThrow();
    expect(() => keepalived.parseParams({ ...base, virtualIp: '999.1.1.1' })).toThrow(/not an IPv4/);
    expect(() => keepalived.parseParams({ ...base, peers: ['10.213.0.250'] })).toThrow(/among the peers/);
    expect(() => keepalived.parseParams({ ...base, interface: 'eth0; reboot' })).toThrow();
    expect(() => keepalived.parseParams({ virtualIp: '10.0.0.1', authPass: 'abcd' })).toThrow();
  });
});
