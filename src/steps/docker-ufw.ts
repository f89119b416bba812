import { createHash } from 'node:crypto';
import { CommandError, ConfigError } from '../core/errors.js';
import type { Action } from '../core/plan.js';
import type { Cmd } from '../core/types.js';
import { commandFact, fileFact, type FactValues } from '../facts/state.js';
import { command } from '../resources/command.js';
import { file } from '../resources/file.js';
import { proveLogin } from './access.js';
import { params, port, Type, type Static } from './schema.js';
import { defineStep, type PlanContext } from './types.js';

const id = 'docker-ufw';
export const afterRulesPath = '/etc/ufw/after.rules';
export const markers = { begin: '# BEGIN zanuri docker-ufw', end: '# END zanuri docker-ufw' } as const;
const afterRules = fileFact(afterRulesPath);
/** The live chain, as the kernel holds it now (no chain: exit 1). */
export const dockerUserFact = () => commandFact(['iptables', '-w', '10', '-S', 'DOCKER-USER']);
const statusFact = commandFact(['ufw', 'status', 'verbose']);
const reloadCmd: Cmd = { argv: ['timeout', '120', 'ufw', 'reload'] };

const ipv4Cidr = '^(?:25[0-5]|2[0-4]\\d|1?\\d?\\d)(?:\\.(?:25[0-5]|2[0-4]\\d|1?\\d?\\d)){3}(?:/(?:3[0-2]|[12]?\\d))?$';
const portRules = (description: string) => Type.Array(Type.Object({
  port: port(),
  protocol: Type.Union([Type.Literal('tcp'), Type.Literal('udp')], { default: 'tcp' }),
}, { additionalProperties: false }), { default: [], description });

const schema = params({
  allow: portRules('Published ports (the host side of docker run -p HOST:CONTAINER) that everyone may reach; protocol defaults to tcp.'),
  internal: portRules('Published ports that only internalFrom may reach; closed when internalFrom is empty.'),
  internalFrom: Type.Array(Type.String({ pattern: ipv4Cidr, what: 'an IPv4 address or CIDR' }), {
    default: [], description: 'Sources of the internal ports: IPv4 addresses or networks (Docker publishes IPv4 ports through these rules; IPv6 clients reach published ports through docker-proxy, which ufw\'s INPUT rules already govern).',
  }),
});

type Params = Static<typeof schema>;
type PortRule = Params['allow'][number];
interface Opening { port: number; protocol: string; source: string | null; why: string }

/** The openings: the parameters' and the public and internal ports other selected steps serve. */
function openings(p: Params, ctx: Pick<PlanContext, 'served'>): Opening[] {
  const all: Opening[] = [];
  const add = (r: PortRule, sources: readonly (string | null)[], why: string): void => {
    for (const source of sources) if (!all.some((o) => o.port === r.port && o.protocol === r.protocol && o.source === source)) all.push({ port: r.port, protocol: r.protocol, source, why });
  };
  for (const r of p.allow) add(r, [null], 'allow');
  for (const r of p.internal) add(r, p.internalFrom, 'internal');
  for (const s of ctx.served) {
    if (s.access === 'public') add(s, [null], `served by ${s.step}`);
    if (s.access === 'internal') add(s, p.internalFrom, `served by ${s.step}`);
  }
  return all;
}

const describeOpen = (open: Opening[]): string =>
  open.length ? open.map((o) => `${o.port}/${o.protocol}${o.source ? ` from ${o.source}` : ''}`).join(', ') : 'none';

/** The rendered block, with the digest of its own text (rendered once without it) in its marker rule. */
export function renderBlock(p: Params, ctx: Pick<PlanContext, 'served' | 'templates'>): { text: string; digest: string; source?: string } {
  const vars = { open: openings(p, ctx).map((o) => ({ port: String(o.port), protocol: o.protocol, source: o.source })) };
  const draft = ctx.templates.render('docker/ufw-after.rules', { ...vars, digest: '-' });
  const digest = createHash('sha256').update(String(draft.text)).digest('hex').slice(0, 16);
  const content = ctx.templates.render('docker/ufw-after.rules', { ...vars, digest });
  const text = String(content.text);
  const lines = text.trimEnd().split('\n');
  if (lines[0] !== markers.begin || lines.at(-1) !== markers.end) {
    throw new ConfigError(`${id}: the docker/ufw-after.rules template must start with "${markers.begin}" and end with "${markers.end}"`);
  }
  return { text: `${lines.join('\n')}\n`, digest, ...(content.source ? { source: content.source } : {}) };
}

/** after.rules with zanuri's block in place of the old one, or appended after ufw's own rules; the rest kept byte for byte. */
export function spliceBlock(current: string, block: string): string {
  const lines = current.split('\n');
  const begins = lines.flatMap((l, i) => (l.trim() === markers.begin ? [i] : []));
  const ends = lines.flatMap((l, i) => (l.trim() === markers.end ? [i] : []));
  if (!begins.length && !ends.length) return `${current}${current === '' || current.endsWith('\n') ? '' : '\n'}${block}`;
  const [begin] = begins;
  const [end] = ends;
  if (begins.length !== 1 || ends.length !== 1 || begin === undefined || end === undefined || end < begin) {
    throw new ConfigError(`${afterRulesPath} has ${begins.length} "${markers.begin}" and ${ends.length} "${markers.end}" lines: zanuri needs exactly one of each, in order`, {
      hint: 'mend the markers by hand, or remove both and the lines between them',
    });
  }
  return [...lines.slice(0, begin), ...block.trimEnd().split('\n'), ...lines.slice(end + 1)].join('\n');
}

/** Is the block loaded in the kernel: ufw active and DOCKER-USER carrying this digest? */
function liveState(facts: FactValues, digest: string): { active: boolean; loaded: boolean } {
  const active = /^Status: active$/m.test(facts.get(statusFact).stdout);
  const chain = facts.get(dockerUserFact());
  return { active, loaded: chain.exitCode === 0 && chain.stdout.includes(`zanuri-docker-ufw ${digest}`) };
}

/** The staged file's block, parsed by iptables itself (it declares every chain it names). */
const validateBlock: Cmd = {
  argv: ['sh', '-c', 'sed -n "/^$2\\$/,/^$3\\$/p" "$1" | iptables-restore --test', 'zanuri-docker-ufw', '{}', markers.begin, markers.end],
};

/**
 * Published container ports obey ufw. Docker's DNAT rules send them through FORWARD ahead of ufw,
 * so `ufw default deny incoming` never sees them. A marked block in ufw's own after.rules fills
 * DOCKER-USER (which Docker consults first): replies and container egress pass, new connections
 * to containers pass only to the published ports the profile opens (matched on the host port the
 * client used, conntrack's original destination) or by `ufw route allow` rules; the rest is dropped.
 * Unlike the widely copied ufw-docker block, no private range is exempt as a whole: a neighbour on
 * the datacenter's 10.x network is a stranger too. ufw reloads the rules with its own files, so
 * they survive reboots, `ufw reload` and Docker restarts.
 */
export const dockerUfw = defineStep({
  id,
  title: 'Published container ports obey ufw',
  after: ['ufw', 'docker'],
  params: schema,

  check(p): Params {
    const both = p.internal.filter((r) => p.allow.some((a) => a.port === r.port && a.protocol === r.protocol));
    if (both.length) throw new ConfigError(`${id}: ${both.map((r) => `${r.port}/${r.protocol}`).join(', ')} cannot be both open to everyone (allow) and internal`);
    return { ...p, internalFrom: [...new Set(p.internalFrom)] };
  },

  packages: () => ['ufw', 'iptables'],

  facts: () => [afterRules, statusFact, dockerUserFact()],

  resources(facts, p, ctx) {
    const block = renderBlock(p, ctx);
    const current = facts.get(afterRules);
    const wanted = spliceBlock(current.content ?? '', block.text);
    const fileChanges = current.content !== wanted;
    const live = liveState(facts, block.digest);
    const reload = fileChanges
      ? 'ufw loads after.rules only when it (re)starts'
      : live.active && !live.loaded ? 'the DOCKER-USER rules in the kernel are not the ones in after.rules' : null;
    return [
      file(afterRulesPath, { text: wanted, ...(block.source ? { source: block.source } : {}) }, {
        mode: current.mode ?? 0o640,
        validate: validateBlock,
        whyMissing: `${afterRulesPath} does not exist (ufw is not installed yet)`,
        whyDiffers: current.content?.includes(markers.begin)
          ? `the published ports containers may be reached on are to be ${describeOpen(openings(p, ctx))}`
          : `published container ports bypass ufw: Docker forwards them ahead of ufw's rules (to be open: ${describeOpen(openings(p, ctx))})`,
      }),
      command('ufw reload', reload, reloadCmd, { describe: 'ufw has loaded the DOCKER-USER rules' }),
    ];
  },

  converged(p, facts, ctx) {
    const live = liveState(facts, renderBlock(p, ctx).digest);
    const where = live.active ? 'loaded' : 'in after.rules (ufw is not active: they load when it goes up)';
    return `published container ports are closed unless opened (${describeOpen(openings(p, ctx))}, or by ufw route allow); the DOCKER-USER rules are ${where}`;
  },

  /** The rules are live where ufw is up, Docker jumps to them, and a fresh SSH login still works. */
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
    }
    await proveLogin(ctx);
  },

  /** The engine puts after.rules back; ufw must then load the old rules. */
  rollback(applied: readonly Action[]): Action[] {
    const reloaded = applied.some((a) => a.kind === 'run' && a.cmd.argv.includes('reload'));
    return reloaded ? [{ kind: 'run', cmd: reloadCmd, why: 'after.rules is back as it was: ufw loads it again' }] : [];
  },
});
