import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { commandFact, fileFact } from '../../../src/facts/state.js';
import { afterRulesPath, dockerUfw, dockerUserFact, markers, renderBlock, spliceBlock } from '../../../src/steps/docker-ufw.js';
import type { ServedPort } from '../../../src/steps/types.js';
import { ctx, planOf, present } from './facts-of.js';

/** Debian 12's after.rules as ufw 0.36.2 installs it (source: test/plans/docker-ufw/SOURCE). */
const stock = readFileSync(new URL('../../plans/docker-ufw/after.rules.debian12', import.meta.url), 'utf8');
const active = 'Status: active\nLogging: on (low)\nDefault: deny (incoming), allow (outgoing), deny (routed)\n\n@@rc=0';
const inactive = 'Status: inactive\n@@rc=0';
const noChain = 'iptables: No chain/target/match by that name.\n@@rc=1';

interface Host { rules?: string; status?: string; chain?: string }
function planFor(host: Host, raw: Record<string, unknown> = {}, served: ServedPort[] = []) {
  return planOf(dockerUfw, [
    [fileFact(afterRulesPath), present(host.rules ?? stock, '640')],
    [commandFact(['ufw', 'status', 'verbose']), host.status ?? active],
    [dockerUserFact(), host.chain ?? noChain],
  ], dockerUfw.parseParams(raw), { served });
}
const block = (raw: Record<string, unknown> = {}, served: ServedPort[] = []) => renderBlock(dockerUfw.parseParams(raw), { ...ctx, served });
const liveChain = (digest: string) => `-N DOCKER-USER\n-A DOCKER-USER -m comment --comment "zanuri-docker-ufw ${digest}"\n-A DOCKER-USER -j RETURN\n@@rc=0`;

describe('docker-ufw rules', () => {
  it('close every published port by default and exempt no private network', () => {
    const { text } = block();
    expect(text.split('\n')[0]).toBe(markers.begin);
    expect(text).toMatch(/^-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN$/m);
    expect(text).toMatch(/^-A DOCKER-USER -j ufw-user-forward$/m);
    expect(text).toMatch(/^-A DOCKER-USER -o docker0 -j DROP$/m);
    expect(text).not.toMatch(/--ctorigdstport/);
    // the ufw-docker block's mistake: RETURN for whole source ranges
    expect(text).not.toMatch(/-s (?:10\.0\.0\.0\/8|172\.16\.0\.0\/12|192\.168\.0\.0\/16)/);
    expect(text.match(/^-A DOCKER-USER .*-s /gm)).toBeNull();
  });

  it('open a published host port to everyone, an internal one only from internalFrom, and the ports other steps serve', () => {
    const served: ServedPort[] = [{ port: 8000, protocol: 'tcp', access: 'public', step: 'vllm', why: 'model server' }, { port: 9100, protocol: 'tcp', access: 'admin', step: 'node-exporter', why: 'metrics' }];
    const { text } = block({ allow: [{ port: 8080 }], internal: [{ port: 5432, protocol: 'tcp' }], internalFrom: ['10.20.0.0/16'] }, served);
    const open = text.split('\n').filter((l) => l.includes('--ctorigdstport'));
    expect(open).toEqual([
      '-A DOCKER-USER -p tcp -m conntrack --ctorigdstport 8080 --ctdir ORIGINAL -j RETURN',
      '-A DOCKER-USER -p tcp -s 10.20.0.0/16 -m conntrack --ctorigdstport 5432 --ctdir ORIGINAL -j RETURN',
      '-A DOCKER-USER -p tcp -m conntrack --ctorigdstport 8000 --ctdir ORIGINAL -j RETURN',
    ]);
    // the openings come before the final drop
    expect(text.indexOf('--ctorigdstport 8080')).toBeLessThan(text.indexOf('-o docker0 -j DROP'));
  });

  it('refuse a port both public and internal, IPv6 or hostile sources', () => {
    expect(() => dockerUfw.parseParams({ allow: [{ port: 80 }], internal: [{ port: 80 }] })).toThrow(/80\/tcp cannot be both/);
    expect(() => dockerUfw.parseParams({ internalFrom: ['fd00::/8'] })).toThrow(/internalFrom\[0\] must be an IPv4 address or CIDR/);
    expect(() => dockerUfw.parseParams({ internalFrom: ['10.0.0.0/8 -j ACCEPT'] })).toThrow(/must be an IPv4/);
  });

  it('carry a digest of their own text, which changes with the openings', () => {
    expect(block().digest).toMatch(/^[0-9a-f]{16}$/);
    expect(block().digest).toBe(block().digest);
    expect(block({ allow: [{ port: 8080 }] }).digest).not.toBe(block().digest);
    expect(block().text).toContain(`--comment "zanuri-docker-ufw ${block().digest}"`);
  });
});

describe('docker-ufw splice', () => {
  it('appends the block after ufw\'s own rules, keeping them byte for byte', () => {
    const spliced = spliceBlock(stock, block().text);
    expect(spliced.startsWith(stock)).toBe(true);
    expect(spliced.slice(stock.length)).toBe(block().text);
  });

  it('replaces its own block in place, and nothing else', () => {
    const first = spliceBlock(stock, block().text);
    const edited = `${first}# an operator's line after the block\n`;
    const again = spliceBlock(edited, block({ allow: [{ port: 8080 }] }).text);
    expect(again).toContain('--ctorigdstport 8080');
    expect(again.startsWith(stock)).toBe(true);
    expect(again.endsWith("# an operator's line after the block\n")).toBe(true);
    expect(again.match(new RegExp(markers.begin, 'g'))).toHaveLength(1);
  });

  it('refuses a file with broken markers rather than guess which lines are its own', () => {
    expect(() => spliceBlock(`${stock}${markers.begin}\n`, block().text)).toThrow(/exactly one of each/);
    expect(() => spliceBlock(`${markers.end}\n${stock}${markers.begin}\n`, block().text)).toThrow(/in order/);
  });
});

describe('docker-ufw plan', () => {
  it('on a host with published ports bypassing ufw, writes after.rules (checked by iptables-restore) and reloads ufw', () => {
    const plan = planFor({});
    expect(plan.actions.map((a) => a.kind)).toEqual(['put', 'run']);
    const [put, reload] = plan.actions;
    expect(put?.why).toMatch(/^published container ports bypass ufw: Docker forwards them ahead of ufw's rules \(to be open: none\)$/);
    expect(put?.kind === 'put' && put.mode).toBe(0o640);
    expect(put?.kind === 'put' && put.validate?.argv.join(' ')).toMatch(/iptables-restore --test/);
    expect(reload?.kind === 'run' && reload.cmd.argv).toEqual(['timeout', '120', 'ufw', 'reload']);
  });

  it('is converged when the file holds the block and the kernel the same rules', () => {
    const { text, digest } = block();
    expect(planFor({ rules: spliceBlock(stock, text), chain: liveChain(digest) })).toEqual({
      actions: [], noop: 'published container ports are closed unless opened (none, or by ufw route allow); the DOCKER-USER rules are loaded',
    });
  });

  it('reloads ufw when the kernel holds other rules than the file', () => {
    const plan = planFor({ rules: spliceBlock(stock, block().text), chain: liveChain('0123456789abcdef') });
    expect(plan.actions.map((a) => a.why)).toEqual(['the DOCKER-USER rules in the kernel are not the ones in after.rules']);
  });

  it('with ufw inactive, only writes the file: the rules load when ufw goes up', () => {
    const converged = planFor({ rules: spliceBlock(stock, block().text), status: inactive });
    expect(converged).toMatchObject({ actions: [], noop: expect.stringMatching(/they load when it goes up/) });
  });

  it('undoes its reload on rollback (after the engine put the old file back)', () => {
    expect(dockerUfw.rollback?.([{ kind: 'run', cmd: { argv: ['timeout', '120', 'ufw', 'reload'] }, why: 'x' }], dockerUfw.parseParams({}))?.map((a) => a.kind === 'run' && a.cmd.argv.join(' '))).toEqual(['timeout 120 ufw reload']);
    expect(dockerUfw.rollback?.([], dockerUfw.parseParams({}))).toEqual([]);
  });
});
