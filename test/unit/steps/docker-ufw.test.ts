import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { commandFact, fileFact } from '../../../src/facts/state.js';
import { dockerdVersionFact, dockerIpv6 } from '../../../src/steps/docker-shared.js';
import { after6RulesPath, afterRulesPath, dockerUfw, dockerUserFact, forward6Fact, ipv6Forwarding, markers, renderBlock, spliceBlock, ufwDefaultsPath, ufwIpv6, type Family } from '../../../src/steps/docker-ufw.js';
import type { ServedPort } from '../../../src/steps/types.js';
import { ctx, planOf, present } from './facts-of.js';

/** Debian 12's after.rules as ufw 0.36.2 installs it (source: test/plans/docker-ufw/SOURCE). */
const fixture = (name: string): string => readFileSync(new URL(`../../plans/docker-ufw/${name}`, import.meta.url), 'utf8');
const stock = fixture('after.rules.debian12');
/** Captured on a Debian 12 target (test/plans/docker-ufw/SOURCE). */
const stock6 = fixture('after6.rules.debian12');
const dockerd2010 = `${fixture('dockerd-version.debian12')}@@rc=0`;
const forwardIpv6Off = `${fixture('ip6tables-forward.ipv6-off.debian12')}@@rc=0`;
const forwardExperimental = `${fixture('ip6tables-forward.experimental-ip6tables.debian12')}@@rc=0`;
/** What later Dockers add in front of FORWARD for IPv6 (moby#44451: setupUserChain for IPv6), on top of the capture. */
const forwardWithUserChain = forwardExperimental.replace('-P FORWARD DROP\n', '-P FORWARD DROP\n-A FORWARD -j DOCKER-USER\n');
const experimentalJson = JSON.stringify({ ipv6: true, 'fixed-cidr-v6': 'fd00:d0c::/64', experimental: true, ip6tables: true });
const ufwDefaults = 'IPV6=yes\nDEFAULT_INPUT_POLICY="DROP"\n';
const active = 'Status: active\nLogging: on (low)\nDefault: deny (incoming), allow (outgoing), deny (routed)\n\n@@rc=0';
const inactive = 'Status: inactive\n@@rc=0';
const noChain = 'iptables: No chain/target/match by that name.\n@@rc=1';

interface Host { rules?: string; rules6?: string; status?: string; chain?: string; chain6?: string; forward6?: string; dockerd?: string; daemonJson?: string | null; defaults?: string }
function planFor(host: Host, raw: Record<string, unknown> = {}, served: ServedPort[] = []) {
  return planOf(dockerUfw, [
    [fileFact(afterRulesPath), present(host.rules ?? stock, '640')],
    [fileFact(after6RulesPath), present(host.rules6 ?? stock6, '640')],
    [commandFact(['ufw', 'status', 'verbose']), host.status ?? active],
    [fileFact(ufwDefaultsPath), present(host.defaults ?? ufwDefaults)],
    [dockerUserFact(4), host.chain ?? noChain],
    [dockerUserFact(6), host.chain6 ?? noChain],
    [forward6Fact(), host.forward6 ?? forwardIpv6Off],
    [dockerdVersionFact(), host.dockerd ?? dockerd2010],
    [fileFact('/etc/docker/daemon.json'), host.daemonJson === null ? 'absent' : present(host.daemonJson ?? '{"log-driver": "json-file"}')],
  ], dockerUfw.parseParams(raw), { served });
}
const block = (raw: Record<string, unknown> = {}, served: ServedPort[] = [], f: Family = 4) => renderBlock(dockerUfw.parseParams(raw), { ...ctx, served }, f);
const liveChain = (digest: string) => `-N DOCKER-USER\n-A DOCKER-USER -m comment --comment "zanuri-docker-ufw ${digest}"\n-A DOCKER-USER -j RETURN\n@@rc=0`;
/** A host where both blocks are in place and loaded. */
const convergedHost = (raw: Record<string, unknown> = {}, more: Host = {}): Host => ({
  rules: spliceBlock(stock, block(raw).text), rules6: spliceBlock(stock6, block(raw, [], 6).text, after6RulesPath),
  chain: liveChain(block(raw).digest), chain6: liveChain(block(raw, [], 6).digest), ...more,
});

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

  it('refuse a port both public and internal, and hostile or malformed sources', () => {
    expect(() => dockerUfw.parseParams({ allow: [{ port: 80 }], internal: [{ port: 80 }] })).toThrow(/80\/tcp cannot be both/);
    expect(() => dockerUfw.parseParams({ internalFrom: ['10.0.0.0/8 -j ACCEPT'] })).toThrow(/internalFrom\[0\] must be an IPv4 or IPv6 address or CIDR/);
    expect(() => dockerUfw.parseParams({ internalFrom: ['fd00::/8 -j ACCEPT'] })).toThrow(/must be an IPv4 or IPv6/);
    expect(() => dockerUfw.parseParams({ internalFrom: ["fd00::'; $(reboot)"] })).toThrow(/must be an IPv4 or IPv6/);
    expect(() => dockerUfw.parseParams({ internalFrom: ['fd00:::1::2/64'] })).toThrow(/fd00:::1::2\/64 is not an IPv4 or IPv6 address/);
    expect(() => dockerUfw.parseParams({ internalFrom: ['fd00::/129'] })).toThrow(/must be an IPv4 or IPv6/);
  });

  it('put each internal source in the rules of its own family, and the public openings in both', () => {
    const raw = { allow: [{ port: 8080 }], internal: [{ port: 5432 }], internalFrom: ['10.20.0.0/16', 'fd7a:6e::/64'] };
    const open = (f: Family) => block(raw, [], f).text.split('\n').filter((l) => l.includes('--ctorigdstport'));
    expect(open(4)).toEqual([
      '-A DOCKER-USER -p tcp -m conntrack --ctorigdstport 8080 --ctdir ORIGINAL -j RETURN',
      '-A DOCKER-USER -p tcp -s 10.20.0.0/16 -m conntrack --ctorigdstport 5432 --ctdir ORIGINAL -j RETURN',
    ]);
    expect(open(6)).toEqual([
      '-A DOCKER-USER -p tcp -m conntrack --ctorigdstport 8080 --ctdir ORIGINAL -j RETURN',
      '-A DOCKER-USER -p tcp -s fd7a:6e::/64 -m conntrack --ctorigdstport 5432 --ctdir ORIGINAL -j RETURN',
    ]);
  });

  it('for IPv6 are the same policy in ip6tables terms: ufw6-user-forward, and no ULA range exempt', () => {
    const { text, digest } = block({}, [], 6);
    expect(text.split('\n')[0]).toBe(markers.begin);
    expect(text).toMatch(/^:ufw6-user-forward - \[0:0\]$/m);
    expect(text).toMatch(/^-A DOCKER-USER -j ufw6-user-forward$/m);
    expect(text).not.toMatch(/ufw-user-forward/);
    expect(text).toMatch(/^-A DOCKER-USER -o docker0 -j DROP$/m);
    expect(text.match(/^-A DOCKER-USER .*-s /gm)).toBeNull();
    expect(digest).not.toBe(block().digest);
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
  it('on a host with published ports bypassing ufw, writes after.rules and after6.rules (each checked by its own restore tool) and reloads ufw', () => {
    const plan = planFor({});
    expect(plan.actions.map((a) => a.kind)).toEqual(['put', 'put', 'run']);
    const [put, put6, reload] = plan.actions;
    expect(put?.why).toMatch(/^published container ports bypass ufw: Docker forwards them ahead of ufw's rules \(to be open: none\)$/);
    expect(put?.kind === 'put' && put.mode).toBe(0o640);
    expect(put?.kind === 'put' && put.validate?.argv.join(' ')).toMatch(/\| iptables-restore --test/);
    expect(put6?.kind === 'put' && put6.path).toBe(after6RulesPath);
    expect(put6?.kind === 'put' && put6.mode).toBe(0o640);
    expect(put6?.kind === 'put' && put6.validate?.argv.join(' ')).toMatch(/\| ip6tables-restore --test/);
    expect(put6?.kind === 'put' && String(put6.content)).toBe(spliceBlock(stock6, block({}, [], 6).text, after6RulesPath));
    expect(reload?.why).toBe('ufw loads /etc/ufw/after.rules and /etc/ufw/after6.rules only when it (re)starts');
    expect(reload?.kind === 'run' && reload.cmd.argv).toEqual(['timeout', '120', 'ufw', 'reload']);
  });

  it('is converged when both files hold their blocks and the kernel the same rules, and says Docker\'s IPv6 is off (Debian 12\'s docker.io 20.10 by default)', () => {
    expect(planFor(convergedHost())).toEqual({
      actions: [], noop: 'published container ports are closed unless opened (none, or by ufw route allow); the DOCKER-USER rules are loaded; '
        + 'Docker\'s IPv6 is off (Docker 20.10 writes no ip6tables rules (before Docker 27 that takes ip6tables and experimental in /etc/docker/daemon.json)): '
        + 'IPv6 clients reach published ports only through docker-proxy, which ufw\'s own rules govern; the same rules for ip6tables wait in /etc/ufw/after6.rules',
    });
  });

  it('with Docker\'s ip6tables on and its IPv6 DOCKER-USER chain in FORWARD, says the IPv6 rules act there', () => {
    const plan = planFor(convergedHost({}, { dockerd: 'Docker version 27.3.1, build ce12230\n@@rc=0', forward6: forwardWithUserChain }));
    expect(plan).toMatchObject({ actions: [], noop: expect.stringMatching(/; IPv6 too: Docker 27\.3 writes ip6tables rules \(its default since Docker 27\), and the same rules are in ip6tables' DOCKER-USER \(\/etc\/ufw\/after6\.rules\)$/) });
  });

  it('reloads ufw when the kernel holds other rules than a file, IPv6 included', () => {
    const plan = planFor(convergedHost({}, { chain: liveChain('0123456789abcdef') }));
    expect(plan.actions.map((a) => a.why)).toEqual(['the DOCKER-USER rules in the kernel are not the ones in /etc/ufw/after.rules']);
    const plan6 = planFor(convergedHost({}, { chain6: noChain }));
    expect(plan6.actions.map((a) => a.why)).toEqual(['the DOCKER-USER rules in the kernel are not the ones in /etc/ufw/after6.rules']);
  });

  it('with ufw\'s IPv6 off, expects no IPv6 rules in the kernel and says after6.rules is not loaded', () => {
    const plan = planFor(convergedHost({}, { chain6: noChain, defaults: 'IPV6=no\n' }));
    expect(plan).toMatchObject({ actions: [], noop: expect.stringMatching(/IPv6: ufw's IPv6 is off \(IPV6=no in \/etc\/default\/ufw\), so \/etc\/ufw\/after6\.rules is not loaded$/) });
  });

  it('with ufw inactive, only writes the files: the rules load when ufw goes up', () => {
    const converged = planFor({ ...convergedHost(), chain: noChain, chain6: noChain, status: inactive });
    expect(converged).toMatchObject({ actions: [], noop: expect.stringMatching(/they load when it goes up/) });
  });

  it('refuses, changing nothing, a Docker that forwards IPv6 without an IPv6 DOCKER-USER chain (20.10\'s experimental ip6tables)', () => {
    expect(() => planFor({ forward6: forwardExperimental, daemonJson: experimentalJson })).toThrow(/Docker 20\.10 makes no DOCKER-USER chain for IPv6 .* published ports would bypass ufw over IPv6; nothing changed/);
    // the same rules with ufw's IPv6 off: after6.rules would never load
    expect(() => planFor({ forward6: forwardWithUserChain, daemonJson: experimentalJson, defaults: 'IPV6=no\n' })).toThrow(/ufw's IPv6 is off \(IPV6=no/);
    // rules an earlier dockerd left in ip6tables do not count once its ip6tables is off again
    expect(planFor({ forward6: forwardExperimental }).actions.map((a) => a.kind)).toEqual(['put', 'put', 'run']);
    // and with Docker's IPv6 DOCKER-USER chain in place the plan goes ahead
    expect(planFor({ forward6: forwardWithUserChain, daemonJson: experimentalJson }).actions.map((a) => a.kind)).toEqual(['put', 'put', 'run']);
  });

  it('undoes its reload on rollback (after the engine put the old file back)', () => {
    expect(dockerUfw.rollback?.([{ kind: 'run', cmd: { argv: ['timeout', '120', 'ufw', 'reload'] }, why: 'x' }], dockerUfw.parseParams({}))?.map((a) => a.kind === 'run' && a.cmd.argv.join(' '))).toEqual(['timeout 120 ufw reload']);
    expect(dockerUfw.rollback?.([], dockerUfw.parseParams({}))).toEqual([]);
  });
});

describe('Docker\'s IPv6 filtering', () => {
  const v = (line: string) => ({ exitCode: 0, stdout: `${line}\n` });
  it('is off in Debian 12\'s docker.io 20.10 unless daemon.json turns on ip6tables and experimental (it refuses to start with ip6tables alone)', () => {
    const version = { exitCode: 0, stdout: fixture('dockerd-version.debian12') };
    expect(dockerIpv6(version, null)).toMatchObject({ state: 'off', version: '20.10' });
    expect(dockerIpv6(version, '{"ip6tables": true, "ipv6": true}')).toMatchObject({ state: 'off' });
    expect(dockerIpv6(version, experimentalJson)).toMatchObject({ state: 'on', why: 'Docker 20.10 writes ip6tables rules (experimental ip6tables in /etc/docker/daemon.json)' });
  });
  it('is on by default from Docker 27, unless daemon.json turns ip6tables off', () => {
    expect(dockerIpv6(v('Docker version 27.0.3, build 662f78c'), '{}')).toMatchObject({ state: 'on' });
    expect(dockerIpv6(v('Docker version 28.5.1, build f8215cc'), '{"ip6tables": false}')).toMatchObject({ state: 'off', why: 'Docker 28.5 has ip6tables turned off in /etc/docker/daemon.json' });
    expect(dockerIpv6(v('Docker version 28.5.1, build f8215cc'), 'not json')).toMatchObject({ state: 'on' });
  });
  it('is unknown while Docker is not installed', () => {
    expect(dockerIpv6({ exitCode: 127, stdout: 'sh: 1: dockerd: not found\n' }, null)).toEqual({ state: 'absent', why: 'Docker is not installed yet' });
  });
  it('shows in ip6tables\' FORWARD: Docker\'s rules, and whether DOCKER-USER comes first', () => {
    const parse = (out: string) => ipv6Forwarding({ exitCode: 0, stdout: out.replace(/@@rc=0$/, '') });
    expect(parse(forwardIpv6Off)).toEqual({ docker: false, userChain: false });
    expect(parse(forwardExperimental)).toEqual({ docker: true, userChain: false });
    expect(parse(forwardWithUserChain)).toEqual({ docker: true, userChain: true });
    expect(ipv6Forwarding({ exitCode: 127, stdout: 'ip6tables: not found' })).toEqual({ docker: false, userChain: false });
  });
  it('needs ufw\'s IPv6 on (IPV6=yes, its default) for after6.rules to load', () => {
    expect(ufwIpv6('IPV6=yes\n')).toBe(true);
    expect(ufwIpv6('IPV6="no"\n')).toBe(false);
    expect(ufwIpv6('# IPV6=no\n')).toBe(true);
    expect(ufwIpv6(null)).toBe(true);
  });
});
