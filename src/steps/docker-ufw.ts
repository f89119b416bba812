import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { CommandError, ConfigError } from '../core/errors.js';
import type { Action } from '../core/plan.js';
import type { Cmd } from '../core/types.js';
import { commandFact, fileFact, type FactValues } from '../facts/state.js';
import { command } from '../resources/command.js';
import { file } from '../resources/file.js';
import { proveLogin } from './access.js';
import { daemonJsonPath, dockerdVersionFact, dockerIpv6 } from './docker-shared.js';
import { params, port, Type, type Static } from './schema.js';
import { defineStep, type PlanContext } from './types.js';

const id = 'docker-ufw';
export const afterRulesPath = '/etc/ufw/after.rules';
export const after6RulesPath = '/etc/ufw/after6.rules';
export const markers = { begin: '# BEGIN zanuri docker-ufw', end: '# END zanuri docker-ufw' } as const;

/** IPv4 rules in after.rules (iptables), IPv6 rules in after6.rules (ip6tables): ufw loads each with its own tool. */
export type Family = 4 | 6;
const family = {
  4: { path: afterRulesPath, template: 'docker/ufw-after.rules', iptables: 'iptables', restore: 'iptables-restore' },
  6: { path: after6RulesPath, template: 'docker/ufw-after6.rules', iptables: 'ip6tables', restore: 'ip6tables-restore' },
} as const;
const families: readonly Family[] = [4, 6];
const rulesFact = (f: Family) => fileFact(family[f].path);
/** The live chain, as the kernel holds it now (no chain: exit 1). */
export const dockerUserFact = (f: Family = 4) => commandFact([family[f].iptables, '-w', '10', '-S', 'DOCKER-USER']);
/** ip6tables' FORWARD chain: does Docker forward IPv6 to containers, and does it jump to DOCKER-USER first? */
export const forward6Fact = () => commandFact(['ip6tables', '-w', '10', '-S', 'FORWARD']);
export const ufwDefaultsPath = '/etc/default/ufw';
const ufwDefaults = fileFact(ufwDefaultsPath);
const daemonJson = fileFact(daemonJsonPath);
const statusFact = commandFact(['ufw', 'status', 'verbose']);
const reloadCmd: Cmd = { argv: ['timeout', '120', 'ufw', 'reload'] };

const ipv4Cidr = '(?:25[0-5]|2[0-4]\\d|1?\\d?\\d)(?:\\.(?:25[0-5]|2[0-4]\\d|1?\\d?\\d)){3}(?:/(?:3[0-2]|[12]?\\d))?';
/** The characters of an IPv6 address (check() asks node:net whether it is one). */
const ipv6Cidr = '[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*(?:/(?:12[0-8]|1[01]\\d|[1-9]?\\d))?';
const addressOf = (source: string): string => source.split('/')[0] ?? '';
const familyOf = (source: string): Family => (isIP(addressOf(source)) === 6 ? 6 : 4);
const portRules = (description: string) => Type.Array(Type.Object({
  port: port(),
  protocol: Type.Union([Type.Literal('tcp'), Type.Literal('udp')], { default: 'tcp' }),
}, { additionalProperties: false }), { default: [], description });

const schema = params({
  allow: portRules('Published ports (the host side of docker run -p HOST:CONTAINER) that everyone may reach; protocol defaults to tcp.'),
  internal: portRules('Published ports that only internalFrom may reach; closed when internalFrom is empty.'),
  internalFrom: Type.Array(Type.String({ pattern: `^(?:${ipv4Cidr}|${ipv6Cidr})$`, what: 'an IPv4 or IPv6 address or CIDR' }), {
    default: [], description: 'Sources of the internal ports: IPv4 or IPv6 addresses or networks, each in the rules of its own family (after.rules, after6.rules). Where Docker writes no ip6tables rules, IPv6 clients reach published ports only through docker-proxy, which ufw\'s own rules govern.',
  }),
});

type Params = Static<typeof schema>;
type PortRule = Params['allow'][number];
interface Opening { port: number; protocol: string; source: string | null; why: string }

/** The openings of one family: the parameters' and the public and internal ports other selected steps serve. */
function openings(p: Params, ctx: Pick<PlanContext, 'served'>, f: Family = 4): Opening[] {
  const all: Opening[] = [];
  const internalFrom = p.internalFrom.filter((s) => familyOf(s) === f);
  const add = (r: PortRule, sources: readonly (string | null)[], why: string): void => {
    for (const source of sources) if (!all.some((o) => o.port === r.port && o.protocol === r.protocol && o.source === source)) all.push({ port: r.port, protocol: r.protocol, source, why });
  };
  for (const r of p.allow) add(r, [null], 'allow');
  for (const r of p.internal) add(r, internalFrom, 'internal');
  for (const s of ctx.served) {
    if (s.access === 'public') add(s, [null], `served by ${s.step}`);
    if (s.access === 'internal') add(s, internalFrom, `served by ${s.step}`);
  }
  return all;
}

const describeOpen = (open: Opening[]): string =>
  open.length ? open.map((o) => `${o.port}/${o.protocol}${o.source ? ` from ${o.source}` : ''}`).join(', ') : 'none';

/** The rendered block of one family, with the digest of its own text (rendered once without it) in its marker rule. */
export function renderBlock(p: Params, ctx: Pick<PlanContext, 'served' | 'templates'>, f: Family = 4): { text: string; digest: string; source?: string } {
  const vars = { open: openings(p, ctx, f).map((o) => ({ port: String(o.port), protocol: o.protocol, source: o.source })) };
  const draft = ctx.templates.render(family[f].template, { ...vars, digest: '-' });
  const digest = createHash('sha256').update(String(draft.text)).digest('hex').slice(0, 16);
  const content = ctx.templates.render(family[f].template, { ...vars, digest });
  const text = String(content.text);
  const lines = text.trimEnd().split('\n');
  if (lines[0] !== markers.begin || lines.at(-1) !== markers.end) {
    throw new ConfigError(`${id}: the ${family[f].template} template must start with "${markers.begin}" and end with "${markers.end}"`);
  }
  return { text: `${lines.join('\n')}\n`, digest, ...(content.source ? { source: content.source } : {}) };
}

/** after.rules (or after6.rules) with zanuri's block in place of the old one, or appended after ufw's own rules; the rest kept byte for byte. */
export function spliceBlock(current: string, block: string, path: string = afterRulesPath): string {
  const lines = current.split('\n');
  const begins = lines.flatMap((l, i) => (l.trim() === markers.begin ? [i] : []));
  const ends = lines.flatMap((l, i) => (l.trim() === markers.end ? [i] : []));
  if (!begins.length && !ends.length) return `${current}${current === '' || current.endsWith('\n') ? '' : '\n'}${block}`;
  const [begin] = begins;
  const [end] = ends;
  if (begins.length !== 1 || ends.length !== 1 || begin === undefined || end === undefined || end < begin) {
    throw new ConfigError(`${path} has ${begins.length} "${markers.begin}" and ${ends.length} "${markers.end}" lines: zanuri needs exactly one of each, in order`, {
      hint: 'mend the markers by hand, or remove both and the lines between them',
    });
  }
  return [...lines.slice(0, begin), ...block.trimEnd().split('\n'), ...lines.slice(end + 1)].join('\n');
}

/** Does ufw load after6.rules (IPV6=yes in /etc/default/ufw, its default)? */
export function ufwIpv6(defaults: string | null): boolean {
  const m = /^\s*IPV6\s*=\s*["']?([A-Za-z]*)/m.exec(defaults ?? '');
  return !m || m[1]?.toLowerCase() === 'yes';
}

/** Is each family's block loaded in the kernel: ufw active and DOCKER-USER carrying its digest (IPv6: when ufw loads after6.rules)? */
function liveState(facts: FactValues, digests: Record<Family, string>): { active: boolean; ipv6: boolean; loaded: Record<Family, boolean> } {
  const active = /^Status: active$/m.test(facts.get(statusFact).stdout);
  const ipv6 = ufwIpv6(facts.get(ufwDefaults).content);
  const loaded = (f: Family): boolean => {
    const chain = facts.get(dockerUserFact(f));
    return chain.exitCode === 0 && chain.stdout.includes(`zanuri-docker-ufw ${digests[f]}`);
  };
  return { active, ipv6, loaded: { 4: loaded(4), 6: !ipv6 || loaded(6) } };
}

/** Docker's own rules in ip6tables' FORWARD (it forwards IPv6 to containers), and whether DOCKER-USER comes first. */
export function ipv6Forwarding(forward: { exitCode: number; stdout: string }): { docker: boolean; userChain: boolean } {
  if (forward.exitCode !== 0) return { docker: false, userChain: false };
  return {
    docker: /^-A FORWARD\b.*-j DOCKER(?:-ISOLATION-STAGE-1|-FORWARD)?$/m.test(forward.stdout),
    userChain: /^-A FORWARD -j DOCKER-USER$/m.test(forward.stdout),
  };
}

/**
 * Refuses, before anything changes, a host where Docker forwards IPv6 to containers past any rule
 * ufw's files can hold: Docker 20.10's experimental ip6tables (Debian 12's docker.io with
 * ip6tables and experimental in daemon.json) writes no DOCKER-USER chain for IPv6 (moby#44451),
 * and with ufw's IPv6 off after6.rules is never loaded.
 */
function refuseIpv6Bypass(facts: FactValues): void {
  const fwd = ipv6Forwarding(facts.get(forward6Fact()));
  const docker = dockerIpv6(facts.get(dockerdVersionFact()), facts.get(daemonJson).content);
  // Rules left in ip6tables by an earlier dockerd that had ip6tables on are not forwarding now.
  if (!fwd.docker || docker.state === 'off') return;
  if (!ufwIpv6(facts.get(ufwDefaults).content)) {
    throw new ConfigError(`${id}: Docker forwards IPv6 to containers (ip6tables FORWARD holds its rules), but ufw's IPv6 is off (IPV6=no in ${ufwDefaultsPath}), so the IPv6 rules in ${after6RulesPath} would never load and published ports would stay open over IPv6`, {
      hint: `set IPV6=yes in ${ufwDefaultsPath} (the ufw step), or turn Docker's ip6tables off in ${daemonJsonPath}`,
    });
  }
  if (!fwd.userChain) {
    const which = docker.state === 'absent' ? 'this dockerd' : `Docker ${docker.version}`;
    throw new ConfigError(`${id}: Docker forwards IPv6 to containers, but ip6tables' FORWARD does not jump to DOCKER-USER: ${which} makes no DOCKER-USER chain for IPv6 (Docker 20.10's experimental ip6tables never does, moby#44451), so published ports would bypass ufw over IPv6; nothing changed`, {
      hint: `turn ip6tables and experimental off in ${daemonJsonPath} (IPv6 clients then reach published ports through docker-proxy, which ufw's own rules govern), or run a Docker that makes the IPv6 DOCKER-USER chain (docker.source: docker)`,
    });
  }
}

/** What the IPv6 rules do on this host, for the reasons. */
function ipv6Story(facts: FactValues): string {
  if (!ufwIpv6(facts.get(ufwDefaults).content)) return `IPv6: ufw's IPv6 is off (IPV6=no in ${ufwDefaultsPath}), so ${after6RulesPath} is not loaded`;
  const docker = dockerIpv6(facts.get(dockerdVersionFact()), facts.get(daemonJson).content);
  if (docker.state === 'on') return `IPv6 too: ${docker.why}, and the same rules are in ip6tables' DOCKER-USER (${after6RulesPath})`;
  if (docker.state === 'off') return `Docker's IPv6 is off (${docker.why}): IPv6 clients reach published ports only through docker-proxy, which ufw's own rules govern; the same rules for ip6tables wait in ${after6RulesPath}`;
  return `IPv6: the same rules in ${after6RulesPath} (${docker.why})`;
}

/** The staged file's block, parsed by (ip6)iptables-restore itself (it declares every chain it names). */
const validateBlock = (f: Family): Cmd => ({
  argv: ['sh', '-c', `sed -n "/^$2\\$/,/^$3\\$/p" "$1" | ${family[f].restore} --test`, 'zanuri-docker-ufw', '{}', markers.begin, markers.end],
});

/**
 * Published container ports obey ufw. Docker's DNAT rules send them through FORWARD ahead of ufw,
 * so `ufw default deny incoming` never sees them. A marked block in ufw's own after.rules fills
 * DOCKER-USER (which Docker consults first): replies and container egress pass, new connections
 * to containers pass only to the published ports the profile opens (matched on the host port the
 * client used, conntrack's original destination) or by `ufw route allow` rules; the rest is dropped.
 * Unlike the widely copied ufw-docker block, no private range is exempt as a whole: a neighbour on
 * the datacenter's 10.x network is a stranger too. ufw reloads the rules with its own files, so
 * they survive reboots, `ufw reload` and Docker restarts. The same rules for IPv6 go to ip6tables'
 * DOCKER-USER through after6.rules: they act where Docker writes ip6tables rules (ip6tables on, the
 * default since Docker 27) for IPv6 networks; where it does not (Debian 12's docker.io 20.10 by
 * default), IPv6 clients reach published ports only through docker-proxy, under ufw's own rules,
 * and the reason says so. A Docker that forwards IPv6 without an IPv6 DOCKER-USER chain (20.10's
 * experimental ip6tables) is refused before anything changes.
 */
export const dockerUfw = defineStep({
  id,
  title: 'Published container ports obey ufw',
  after: ['ufw', 'docker'],
  params: schema,

  check(p): Params {
    const both = p.internal.filter((r) => p.allow.some((a) => a.port === r.port && a.protocol === r.protocol));
    if (both.length) throw new ConfigError(`${id}: ${both.map((r) => `${r.port}/${r.protocol}`).join(', ')} cannot be both open to everyone (allow) and internal`);
    const bad = p.internalFrom.filter((s) => isIP(addressOf(s)) === 0);
    if (bad.length) throw new ConfigError(`${id}: internalFrom ${bad.join(', ')} is not an IPv4 or IPv6 address or CIDR`);
    return { ...p, internalFrom: [...new Set(p.internalFrom)] };
  },

  packages: () => ['ufw', 'iptables'],

  facts: () => [rulesFact(4), rulesFact(6), statusFact, ufwDefaults, dockerUserFact(4), dockerUserFact(6), forward6Fact(), dockerdVersionFact(), daemonJson],

  resources(facts, p, ctx) {
    refuseIpv6Bypass(facts);
    const blocks = { 4: renderBlock(p, ctx, 4), 6: renderBlock(p, ctx, 6) };
    const live = liveState(facts, { 4: blocks[4].digest, 6: blocks[6].digest });
    const changed: string[] = [];
    const files = families.map((f) => {
      const { path } = family[f];
      const current = facts.get(rulesFact(f));
      const wanted = spliceBlock(current.content ?? '', blocks[f].text, path);
      if (current.content !== wanted) changed.push(path);
      const open = describeOpen(openings(p, ctx, f));
      return file(path, { text: wanted, ...(blocks[f].source ? { source: blocks[f].source } : {}) }, {
        mode: current.mode ?? 0o640,
        validate: validateBlock(f),
        whyMissing: `${path} does not exist (ufw is not installed yet)`,
        whyDiffers: current.content?.includes(markers.begin)
          ? `the published ports containers may be reached on${f === 6 ? ' over IPv6' : ''} are to be ${open}`
          : f === 4
            ? `published container ports bypass ufw: Docker forwards them ahead of ufw's rules (to be open: ${open})`
            : `published container ports of IPv6 networks bypass ufw where Docker writes ip6tables rules (to be open over IPv6: ${open})`,
      });
    });
    const stale = families.filter((f) => !live.loaded[f]).map((f) => family[f].path);
    const reload = changed.length
      ? `ufw loads ${changed.join(' and ')} only when it (re)starts`
      : live.active && stale.length ? `the DOCKER-USER rules in the kernel are not the ones in ${stale.join(' and ')}` : null;
    return [...files, command('ufw reload', reload, reloadCmd, { describe: 'ufw has loaded the DOCKER-USER rules' })];
  },

  converged(p, facts, ctx) {
    const live = liveState(facts, { 4: renderBlock(p, ctx, 4).digest, 6: renderBlock(p, ctx, 6).digest });
    const where = live.active ? 'loaded' : 'in after.rules and after6.rules (ufw is not active: they load when it goes up)';
    const open6 = describeOpen(openings(p, ctx, 6));
    const open4 = describeOpen(openings(p, ctx, 4));
    const open = open6 === open4 ? open4 : `${open4}; over IPv6 ${open6}`;
    return `published container ports are closed unless opened (${open}, or by ufw route allow); the DOCKER-USER rules are ${where}; ${ipv6Story(facts)}`;
  },

  /** The rules are live where ufw is up, Docker jumps to them (IPv6 too where it forwards IPv6), and a fresh SSH login still works. */
  async verify(ctx) {
    const status = await ctx.run({ argv: ['ufw', 'status'] });
    if (/^Status: active$/m.test(status.stdout)) {
      const chain = await ctx.run({ argv: ['iptables', '-w', '10', '-S', 'DOCKER-USER'] });
      if (!chain.ok || !chain.stdout.includes('zanuri-docker-ufw ')) throw new CommandError(chain, 'iptables -S DOCKER-USER (the rules did not load)');
      const dockerd = await ctx.run({ argv: ['systemctl', 'is-active', 'docker.service'] });
      const forward = await ctx.run({ argv: ['iptables', '-w', '10', '-S', 'FORWARD'] });
      if (dockerd.stdout.trim() === 'active' && !/^-A FORWARD -j DOCKER-USER$/m.test(forward.stdout)) {
        throw new ConfigError(`${id}: dockerd runs but FORWARD does not jump to DOCKER-USER: published ports would bypass these rules`);
      }
      const defaults = await ctx.run({ argv: ['cat', ufwDefaultsPath] });
      if (ufwIpv6(defaults.ok ? defaults.stdout : null)) {
        const chain6 = await ctx.run({ argv: ['ip6tables', '-w', '10', '-S', 'DOCKER-USER'] });
        if (!chain6.ok || !chain6.stdout.includes('zanuri-docker-ufw ')) throw new CommandError(chain6, 'ip6tables -S DOCKER-USER (the IPv6 rules did not load)');
        const fwd6 = ipv6Forwarding(await ctx.run({ argv: ['ip6tables', '-w', '10', '-S', 'FORWARD'] }).then((r) => ({ exitCode: r.exitCode ?? -1, stdout: r.stdout })));
        if (fwd6.docker && !fwd6.userChain) {
          throw new ConfigError(`${id}: Docker forwards IPv6 to containers but ip6tables' FORWARD does not jump to DOCKER-USER: published ports would bypass these rules over IPv6`);
        }
      }
    }
    await proveLogin(ctx);
  },

  /** The engine puts after.rules and after6.rules back; ufw must then load the old rules. */
  rollback(applied: readonly Action[]): Action[] {
    const reloaded = applied.some((a) => a.kind === 'run' && a.cmd.argv.includes('reload'));
    return reloaded ? [{ kind: 'run', cmd: reloadCmd, why: 'after.rules and after6.rules are back as they were: ufw loads them again' }] : [];
  },
});
