import { CommandError, ConfigError } from '../core/errors.js';
import type { Cmd } from '../core/types.js';
import { commandFact, fileFact, parseSshdPorts, sshdConfigFact, type FactValues } from '../facts/state.js';
import { command } from '../resources/command.js';
import { proveLogin } from './access.js';
import { cidr, params, port, Type, type Static } from './schema.js';
import { defineStep } from './types.js';

const id = 'ufw';
const statusFact = commandFact(['ufw', 'status', 'verbose']);
const userRules = fileFact('/etc/ufw/user.rules');
const user6Rules = fileFact('/etc/ufw/user6.rules');
const defaultsFile = fileFact('/etc/default/ufw');
const confFile = fileFact('/etc/ufw/ufw.conf');
const enableCmd: Cmd = { argv: ['ufw', '--force', 'enable'] };

const portRules = (description: string) => Type.Array(Type.Object({
  port: port(),
  protocol: Type.Union([Type.Literal('tcp'), Type.Literal('udp')], { default: 'tcp' }),
}, { additionalProperties: false }), { default: [], description });

const schema = params({
  allow: portRules('Ports open to everyone, e.g. [{port: 443, protocol: tcp}]; protocol defaults to tcp.'),
  internal: portRules('Ports open only from internalFrom (e.g. 5432, 8000); closed when internalFrom is empty.'),
  internalFrom: Type.Array(cidr(), { default: [], description: 'Sources of the internal ports: IPv4 or IPv6 addresses or networks, without host bits.' }),
  sshPort: Type.Union([port(), Type.Null()], { default: null, description: 'One more SSH port to allow (e.g. sshd is about to move there); the ports sshd uses now are always allowed.' }),
});

type UfwParams = Static<typeof schema>;
type PortRule = UfwParams['allow'][number];

const show = (r: PortRule): string => `${r.port}/${r.protocol}`;

/** The 8 groups of an IPv6 address in canonical form (as WHATWG URL prints it), or null. */
function ipv6Groups(address: string): number[] | null {
  const [head = '', tail, extra] = address.split('::');
  if (extra !== undefined) return null;
  const part = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => (/^[0-9a-f]{1,4}$/.test(g) ? parseInt(g, 16) : NaN)));
  const left = part(head);
  const right = tail === undefined ? [] : part(tail);
  const groups = tail === undefined ? left : [...left, ...Array<number>(8 - left.length - right.length).fill(0), ...right];
  return groups.length === 8 && groups.every((g) => Number.isInteger(g) && g >= 0) ? groups : null;
}

/**
 * A source as ufw stores it in user.rules: IPv4 `a.b.c.d` or `a.b.c.d/n`, IPv6 in canonical
 * compressed form; /32 and /128 dropped. A network with host bits set is refused (ufw would silently
 * rewrite it, and the firewall would not say what the playbook says).
 */
function normalizeCidr(value: string, what: string): string {
  const [address = '', bits] = value.split('/');
  const fail = (why: string): never => { throw new ConfigError(`${id}: ${what} ${why}, got ${JSON.stringify(value).slice(0, 80)}`); };
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(address);
  if (v4) {
    const octets = v4.slice(1).map(Number);
    const prefix = bits === undefined ? 32 : Number(bits);
    const n = octets.reduce((acc, o) => acc * 256 + o, 0);
    const network = n - (n % 2 ** (32 - prefix));
    if (network !== n) fail(`has host bits set (did you mean ${[24, 16, 8, 0].map((s) => Math.floor(network / 2 ** s) % 256).join('.')}/${prefix}?)`);
    return prefix === 32 ? address : `${address}/${prefix}`;
  }
  let canonical = '';
  try {
    canonical = new URL(`http://[${address}]/`).hostname.slice(1, -1);
  } catch {
    fail('must be an IPv4 or IPv6 address or CIDR');
  }
  const groups = ipv6Groups(canonical) ?? fail('must be an IPv4 or IPv6 address or CIDR');
  const prefix = bits === undefined ? 128 : Number(bits);
  if (groups.some((g, i) => (g & (0xffff >> Math.max(0, Math.min(16, prefix - 16 * i)))) !== 0)) fail('has host bits set');
  return prefix === 128 ? canonical : `${canonical}/${prefix}`;
}

/** One rule as ufw records it in user.rules: `### tuple ### allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 in`. */
interface UfwTuple {
  /** allow, limit, deny, reject, optionally with _log or _log-all. */
  action: string;
  proto: string;
  dport: string;
  dst: string;
  sport: string;
  src: string;
  /** in, out, fwd; `in_eth0` for a rule on one interface. */
  direction: string;
  /** An application-profile rule (ufw allow OpenSSH). */
  app: boolean;
}

const tupleField = {
  action: /^(?:allow|limit|deny|reject)(?:_log(?:-all)?)?$/,
  proto: /^[a-z0-9]+$/,
  port: /^(?:any|[0-9]+(?:[:,][0-9]+)*)$/,
  address: /^[0-9a-fA-F.:/]+$/,
  direction: /^(?:in|out|fwd)(?:_[A-Za-z0-9.+_-]+)?$/,
};

/** The rules in user.rules or user6.rules; lines that are not plain tuples are skipped. */
function parseTuples(content: string | null): UfwTuple[] {
  const tuples: UfwTuple[] = [];
  for (const line of (content ?? '').split('\n')) {
    const m = /^### tuple ### (.*)$/.exec(line);
    if (!m?.[1]) continue;
    const fields = m[1].split(' ').filter((f) => !f.startsWith('comment='));
    // 7 fields, or 9 with the destination and source application names before the direction.
    if (fields.length !== 7 && fields.length !== 9) continue;
    const [action = '', proto = '', dport = '', dst = '', sport = '', src = ''] = fields;
    const direction = fields[fields.length - 1] ?? '';
    if (!tupleField.action.test(action) || !tupleField.proto.test(proto) || !tupleField.port.test(dport) || !tupleField.port.test(sport) ||
        !tupleField.address.test(dst) || !tupleField.address.test(src) || !tupleField.direction.test(direction)) continue;
    tuples.push({ action, proto, dport, dst, sport, src, direction, app: fields.length === 9 });
  }
  return tuples;
}

/** KEY="value" or KEY=value lines of a shell-style config (/etc/default/ufw, /etc/ufw/ufw.conf). */
function parseShellVars(content: string | null): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const m of (content ?? '').matchAll(/^([A-Z_0-9]+)=("?)([^"\n]*)\2\s*$/gm)) vars[m[1] as string] = m[3] as string;
  return vars;
}

/** The SSH ports the firewall must keep open: sshd's own, the one this connection uses, and the parameter. */
function sshPorts(facts: FactValues, connectionPort: number | null, p: UfwParams): number[] {
  const ports = new Set(parseSshdPorts(facts.get(sshdConfigFact())));
  if (connectionPort !== null) ports.add(connectionPort);
  if (p.sshPort !== null) ports.add(p.sshPort);
  if (ports.size === 0) ports.add(22);
  return [...ports].sort((a, b) => a - b);
}

const isV6 = (address: string): boolean => address.includes(':');
const anySrc = (v6: boolean): string => (v6 ? '::/0' : '0.0.0.0/0');
const allowsTraffic = (t: UfwTuple): boolean => /^(?:allow|limit)(?:_|$)/.test(t.action);
/** Does this tuple let `rule` in, from any source port and on any interface? */
const opens = (t: UfwTuple, rule: PortRule): boolean => allowsTraffic(t) && !t.app && t.sport === 'any' &&
  t.dport === String(rule.port) && (t.proto === rule.protocol || t.proto === 'any');

/** The ufw command that deletes exactly this tuple. */
function deleteCmd(t: UfwTuple): Cmd {
  const [verb = 'allow', log] = t.action.split('_');
  const iface = t.direction.includes('_') ? ['in', 'on', t.direction.slice(t.direction.indexOf('_') + 1)] : [];
  return { argv: ['ufw', 'delete', verb, ...(log ? [log] : []), ...iface, 'proto', t.proto, 'from', t.src, 'to', t.dst, 'port', t.dport] };
}

const closedNote = (p: UfwParams): string =>
  (p.internal.length && !p.internalFrom.length ? `; internal ports ${p.internal.map(show).join(', ')} stay closed: internalFrom is empty` : '');

/**
 * The host firewall with ufw: SSH first, then the public and internal ports, default deny incoming
 * and allow outgoing, then `ufw enable`. State is read from ufw's own files (user.rules tuples are
 * exact and readable while ufw is inactive) and `ufw status verbose`; only what is missing is run.
 * verify() proves a fresh SSH connection gets through; if not, the firewall is turned off again.
 */
export const ufw = defineStep({
  id,
  title: 'Firewall (ufw)',
  after: ['deploy-user', 'ssh-harden'],
  params: schema,

  check(p): UfwParams {
    const unique = (rules: PortRule[]): PortRule[] => [...new Map(rules.map((r) => [show(r), r])).values()];
    const allow = unique(p.allow);
    const internal = unique(p.internal);
    const both = internal.filter((r) => allow.some((a) => show(a) === show(r)));
    if (both.length) throw new ConfigError(`${id}: ${both.map(show).join(', ')} cannot be both public (allow) and internal`);
    const internalFrom = [...new Set(p.internalFrom.map((source, i) => normalizeCidr(source, `internalFrom[${i}]`)))];
    return { allow, internal, internalFrom, sshPort: p.sshPort };
  },

  packages: () => ['ufw'],

  facts: () => [statusFact, userRules, user6Rules, defaultsFile, confFile, sshdConfigFact()],

  resources(facts, p, host) {
    const v4 = parseTuples(facts.get(userRules).content);
    const v6 = parseTuples(facts.get(user6Rules).content);
    const defaults = parseShellVars(facts.get(defaultsFile).content);
    const ipv6 = (defaults['IPV6'] ?? 'yes') === 'yes';
    const ssh = sshPorts(facts, host.sshPort, p);
    const isSsh = (r: PortRule): boolean => r.protocol === 'tcp' && ssh.includes(r.port);

    const present = (rule: PortRule, src: string): boolean =>
      (isV6(src) ? v6 : v4).some((t) => opens(t, rule) && t.direction === 'in' && t.dst === anySrc(isV6(src)) && t.src === src);
    const changes: Array<{ id: string; why: string | null; cmd: Cmd }> = [];
    const allow = (rule: PortRule, src: string | null, why: string): void => {
      const there = src !== null ? present(rule, src) : present(rule, anySrc(false)) && (!ipv6 || present(rule, anySrc(true)));
      const cmd: Cmd = { argv: ['ufw', 'allow', 'proto', rule.protocol, 'from', src ?? 'any', 'to', 'any', 'port', String(rule.port)] };
      changes.push({ id: `ufw allow ${show(rule)} from ${src ?? 'any'}`, why: there ? null : why, cmd });
    };

    for (const port of ssh) allow({ port, protocol: 'tcp' }, null, `SSH (${port}/tcp) must be allowed before the firewall goes up, or the operator is locked out`);
    for (const rule of p.allow.filter((r) => !isSsh(r))) allow(rule, null, `${show(rule)} is to be open to everyone`);
    for (const rule of p.internal) for (const src of p.internalFrom) allow(rule, src, `${show(rule)} is to be open from ${src} only`);
    // An internal port must not be reachable from anywhere else: rules that open it wider go (never an SSH port's).
    for (const rule of p.internal.filter((r) => !isSsh(r))) {
      for (const t of [...v4, ...v6].filter((t) => opens(t, rule) && t.direction.startsWith('in') && !p.internalFrom.includes(t.src))) {
        const from = t.src === anySrc(isV6(t.src)) ? 'everyone' : t.src;
        const cmd = deleteCmd(t);
        changes.push({ id: cmd.argv.join(' '), why: `internal port ${show(rule)} is open to ${from}, not only to ${p.internalFrom.join(', ') || 'nobody (internalFrom is empty)'}`, cmd });
      }
    }

    const policy = (direction: string, verb: 'deny' | 'allow', key: string, want: string): void => {
      const now = defaults[key]?.toLowerCase() ?? `not yet ${verb === 'deny' ? 'denied' : 'allowed'}`;
      changes.push({ id: `ufw default ${verb} ${direction}`, cmd: { argv: ['ufw', 'default', verb, direction] },
        why: defaults[key] === want ? null : `${direction} traffic is ${now} by default, not ${verb === 'deny' ? 'denied' : 'allowed'}` });
    };
    policy('incoming', 'deny', 'DEFAULT_INPUT_POLICY', 'DROP');
    policy('outgoing', 'allow', 'DEFAULT_OUTPUT_POLICY', 'ACCEPT');
    const active = /^Status: active$/m.test(facts.get(statusFact).stdout);
    const enabled = parseShellVars(facts.get(confFile).content)['ENABLED'] === 'yes';
    changes.push({ id: 'ufw enable', cmd: enableCmd, why: !active ? 'the firewall is not active' : enabled ? null : 'the firewall is active but not enabled at boot' });

    const last = changes.filter((c) => c.why !== null).at(-1);
    if (last) last.why += closedNote(p);
    // One delete per tuple, even when it opens two internal rules (a proto any rule for 5432/tcp and 5432/udp).
    return [...new Map(changes.map((c) => [c.id, command(c.id, c.why, c.cmd)])).values()];
  },

  converged(p, facts, host) {
    const open = [...sshPorts(facts, host.sshPort, p).map((port) => `${port}/tcp (SSH)`), ...p.allow.map(show), ...p.internal.flatMap((r) => p.internalFrom.map((s) => `${show(r)} from ${s}`))];
    return `ufw is active, denies incoming and allows outgoing by default, and allows ${open.join(', ')}${closedNote(p)}`;
  },

  async verify(ctx) {
    const status = await ctx.run({ argv: ['ufw', 'status', 'verbose'] });
    if (!status.ok || !/^Status: active$/m.test(status.stdout)) throw new CommandError(status, 'ufw status (the firewall is not active)');
    await proveLogin(ctx);
  },

  /**
   * The firewall is turned off when this run turned it on or changed its defaults: that is what can
   * cut the operator off. Rules added to a firewall that was already up cannot, so it stays up then.
   */
  rollback(applied) {
    const risky = applied.some((a) => a.kind === 'run' && (a.cmd.argv.join(' ') === enableCmd.argv.join(' ') || a.cmd.argv[1] === 'default'));
    return risky ? [{ kind: 'run', cmd: { argv: ['ufw', 'disable'] }, why: 'a fresh SSH connection failed with the firewall up: it is turned off so the operator keeps access' }] : [];
  },
});
