import { CommandError, ConfigError } from '../core/errors.js';
import type { Cmd } from '../core/types.js';
import { commandFact, fileFact, parseSshdPorts, sshdConfigFact, type FactValues } from '../facts/state.js';
import { sshSessionFact } from '../facts/sshd.js';
import { command } from '../resources/command.js';
import { proveReachable } from './access.js';
import { cidr, params, port, Type, type Static } from './schema.js';
import { defineStep, type ServedPort } from './types.js';

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
  admin: portRules('Ports open only from adminFrom besides SSH (e.g. Grafana on 3000); closed when adminFrom is empty.'),
  adminFrom: Type.Array(cidr(), { default: [], description: 'The operators\' sources (a VPN, a bastion): SSH and the admin ports are open from these only. This connection must come from one of them, or the run refuses before changing anything. Empty: SSH is open to everyone (rate-limited with sshRateLimit).' }),
  sshRateLimit: Type.Boolean({ default: true, description: 'With adminFrom empty, rate-limit SSH (ufw limit: a 6th new connection from one address within 30 s is refused). zanuri\'s own fresh-login proofs wait out the window when refused. Turn it off for automation that opens many connections in a row without waiting (CI runners, Ansible without ControlMaster); fail2ban still bans password guessing.' }),
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
  /** The destination application's name (ufw writes spaces as %20), for deleting an application rule. */
  dapp: string | null;
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
    tuples.push({ action, proto, dport, dst, sport, src, direction, app: fields.length === 9, dapp: fields.length === 9 && fields[6] !== '-' ? fields[6] ?? null : null });
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
const isAny = (src: string): boolean => src === '0.0.0.0/0' || src === '::/0';
const allowsTraffic = (t: UfwTuple): boolean => /^(?:allow|limit)(?:_|$)/.test(t.action);
const isLimit = (t: UfwTuple): boolean => /^limit(?:_|$)/.test(t.action);
/** Does this tuple let `rule` in, from any source port and on any interface? */
const opens = (t: UfwTuple, rule: PortRule): boolean => allowsTraffic(t) && !t.app && t.sport === 'any' &&
  t.dport === String(rule.port) && (t.proto === rule.protocol || t.proto === 'any');
/** Does this application-profile tuple (ufw allow OpenSSH) open this port? */
const opensAsApp = (t: UfwTuple, rule: PortRule): boolean => allowsTraffic(t) && t.app && t.dapp !== null &&
  t.dport.split(/[,:]/).includes(String(rule.port)) && (t.proto === rule.protocol || t.proto === 'any');

/** The ufw words that add (verb) or delete (`delete verb`) exactly this tuple. */
function tupleArgv(t: UfwTuple): string[] {
  const [verb = 'allow', log] = t.action.split('_');
  const iface = t.direction.includes('_') ? ['in', 'on', t.direction.slice(t.direction.indexOf('_') + 1)] : [];
  const what = t.app && t.dapp ? ['app', t.dapp.replace(/%20/g, ' ')] : ['port', t.dport];
  return [verb, ...(log ? [log] : []), ...iface, ...(t.app ? [] : ['proto', t.proto]), 'from', t.src, 'to', t.dst, ...what];
}
const deleteCmd = (t: UfwTuple): Cmd => ({ argv: ['ufw', 'delete', ...tupleArgv(t)] });
const addCmd = (t: UfwTuple): Cmd => ({ argv: ['ufw', ...tupleArgv(t)] });

/** A parsed IPv4 or IPv6 address as 32 or 128 bits, or null. */
function bitsOf(address: string): { v6: boolean; value: bigint } | null {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(address);
  if (v4) return { v6: false, value: v4.slice(1).reduce((acc, o) => (acc << 8n) + BigInt(Number(o)), 0n) };
  let canonical: string;
  try {
    canonical = new URL(`http://[${address}]/`).hostname.slice(1, -1);
  } catch {
    return null;
  }
  const groups = ipv6Groups(canonical);
  return groups ? { v6: true, value: groups.reduce((acc, g) => (acc << 16n) + BigInt(g), 0n) } : null;
}

/** Is `address` inside `network` (a normalised address or CIDR)? */
export function contains(network: string, address: string): boolean {
  const [base = '', bits] = network.split('/');
  const net = bitsOf(base);
  const host = bitsOf(address);
  if (!net || !host || net.v6 !== host.v6) return false;
  const width = net.v6 ? 128 : 32;
  const prefix = BigInt(bits === undefined ? width : Number(bits));
  const shift = BigInt(width) - prefix;
  return (net.value >> shift) === (host.value >> shift);
}

type Access = ServedPort['access'];
interface Wanted { rule: PortRule; access: Access; reasons: string[]; fromParams: boolean }

/**
 * Every port to open and to whom: the parameters' lists, then what the selected steps serve
 * (ctx.served). A port named in the parameters keeps the access they give it; a port two steps
 * serve differently gets the wider access, so no step's service is shut out. SSH is not among them.
 */
function wantedPorts(p: UfwParams, served: readonly ServedPort[], ssh: readonly number[]): Wanted[] {
  const byKey = new Map<string, Wanted>();
  const rank: Record<Access, number> = { admin: 0, internal: 1, public: 2 };
  const add = (rule: PortRule, access: Access, reason: string, fromParams: boolean): void => {
    if (rule.protocol === 'tcp' && ssh.includes(rule.port)) return;
    const seen = byKey.get(show(rule));
    if (seen && seen.access === access) seen.reasons.push(reason);
    else if (!seen || (!seen.fromParams && rank[access] > rank[seen.access])) byKey.set(show(rule), { rule, access, reasons: [reason], fromParams });
  };
  for (const rule of p.allow) add(rule, 'public', 'the allow parameter', true);
  for (const rule of p.internal) add(rule, 'internal', 'the internal parameter', true);
  for (const rule of p.admin) add(rule, 'admin', 'the admin parameter', true);
  for (const s of served) add({ port: s.port, protocol: s.protocol }, s.access, `${s.step} serves it (${s.why})`, false);
  return [...byKey.values()];
}

const closedNote = (wanted: readonly Wanted[], p: UfwParams): string => {
  const closed = (access: Access): string => wanted.filter((w) => w.access === access).map((w) => show(w.rule)).join(', ');
  const internal = !p.internalFrom.length && closed('internal') ? `; internal ports ${closed('internal')} stay closed: internalFrom is empty` : '';
  const admin = !p.adminFrom.length && closed('admin') ? `; admin ports ${closed('admin')} stay closed: adminFrom is empty` : '';
  return internal + admin;
};

/**
 * The host firewall with ufw: SSH first (from adminFrom only, or rate-limited for everyone), then
 * the public, internal and admin ports (the parameters' and those the selected steps serve), default
 * deny incoming and allow outgoing, then `ufw enable`. State is read from ufw's own files
 * (user.rules tuples are exact and readable while ufw is inactive) and `ufw status verbose`; only
 * what is missing is run, and every rule it deletes or adds can be put back. A run whose own
 * connection comes from outside adminFrom is refused before anything changes; verify() proves a
 * fresh SSH connection gets through, or the changes are undone and a firewall this run turned on
 * is turned off again.
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
    const admin = unique(p.admin);
    const lists = { allow, internal, admin } as const;
    for (const [a, b] of [['allow', 'internal'], ['allow', 'admin'], ['internal', 'admin']] as const) {
      const both = lists[a].filter((r) => lists[b].some((o) => show(o) === show(r)));
      if (both.length) throw new ConfigError(`${id}: ${both.map(show).join(', ')} cannot be in both ${a} and ${b}`);
    }
    const sources = (list: string[], name: string): string[] => [...new Set(list.map((source, i) => normalizeCidr(source, `${name}[${i}]`)))];
    return { allow, internal, admin, internalFrom: sources(p.internalFrom, 'internalFrom'), adminFrom: sources(p.adminFrom, 'adminFrom'), sshRateLimit: p.sshRateLimit, sshPort: p.sshPort };
  },

  packages: () => ['ufw'],

  facts: () => [statusFact, userRules, user6Rules, defaultsFile, confFile, sshdConfigFact(), sshSessionFact()],

  resources(facts, p, host) {
    const session = facts.get(sshSessionFact());
    if (p.adminFrom.length && session.read) {
      const source = session.session?.client;
      if (!source && !host.local) {
        throw new ConfigError(`${id}: adminFrom is set, but the host does not say where this SSH connection comes from (no SSH_CONNECTION above the run), so zanuri cannot prove it would not lock you out`, {
          hint: 'run from a shell where SSH_CONNECTION is set, or leave adminFrom empty',
        });
      }
      if (source && !p.adminFrom.some((n) => contains(n, source))) {
        throw new ConfigError(`${id}: this connection comes from ${source}, which is outside adminFrom (${p.adminFrom.join(', ')}): SSH would be closed to you, so nothing was changed`, {
          hint: `add ${source} (or its network) to ufw.adminFrom, or run from inside one of those networks`,
        });
      }
    }

    const v4 = parseTuples(facts.get(userRules).content);
    const v6 = parseTuples(facts.get(user6Rules).content);
    const defaults = parseShellVars(facts.get(defaultsFile).content);
    const ipv6 = (defaults['IPV6'] ?? 'yes') === 'yes';
    const ssh = sshPorts(facts, host.sshPort, p);
    const wanted = wantedPorts(p, host.served, ssh);
    const sourcesOf = (access: Access): string[] | null => (access === 'public' ? null : access === 'internal' ? p.internalFrom : p.adminFrom);

    const inTuple = (t: UfwTuple): boolean => t.direction === 'in' && isAny(t.dst);
    const present = (rule: PortRule, src: string, limit = false): boolean =>
      (isV6(src) ? v6 : v4).some((t) => opens(t, rule) && inTuple(t) && t.src === src && (!limit || isLimit(t)));
    const changes: Array<{ id: string; why: string | null; cmd: Cmd; undo?: Cmd }> = [];
    const allow = (rule: PortRule, src: string | null, why: string, verb: 'allow' | 'limit' = 'allow'): void => {
      const limit = verb === 'limit';
      const there = src !== null ? present(rule, src, limit) : present(rule, anySrc(false), limit) && (!ipv6 || present(rule, anySrc(true), limit));
      const words = ['proto', rule.protocol, 'from', src ?? 'any', 'to', 'any', 'port', String(rule.port)];
      changes.push({ id: `ufw ${verb} ${show(rule)} from ${src ?? 'any'}`, why: there ? null : why, cmd: { argv: ['ufw', verb, ...words] }, undo: { argv: ['ufw', 'delete', verb, ...words] } });
    };
    /** Deletes every rule that opens `rule` to a source outside `keep`, and every application rule that opens it. */
    const narrow = (rule: PortRule, keep: readonly string[], why: (from: string) => string): void => {
      for (const t of [...v4, ...v6]) {
        if (!((opens(t, rule) || opensAsApp(t, rule)) && t.direction.startsWith('in') && (!keep.includes(t.src) || t.app))) continue;
        const cmd = deleteCmd(t);
        changes.push({ id: cmd.argv.join(' '), why: why(isAny(t.src) ? 'everyone' : t.src), cmd, undo: addCmd(t) });
      }
    };

    for (const port of ssh) {
      const rule: PortRule = { port, protocol: 'tcp' };
      if (p.adminFrom.length) {
        for (const src of p.adminFrom) allow(rule, src, `SSH (${port}/tcp) must be allowed from ${src} (adminFrom) before the firewall goes up or narrows, or the operator is locked out`);
        narrow(rule, p.adminFrom, (from) => `SSH (${port}/tcp) is open to ${from}, not only to adminFrom (${p.adminFrom.join(', ')})`);
      } else if (!p.sshRateLimit) {
        allow(rule, null, `SSH (${port}/tcp) must be allowed before the firewall goes up, or the operator is locked out`);
      } else {
        allow(rule, null, `SSH (${port}/tcp) must be allowed before the firewall goes up, or the operator is locked out; it stays open to everyone (adminFrom is empty), so it is rate-limited: a 6th new connection from one address within 30 s is dropped`, 'limit');
        // ufw limit turns a plain allow of the same rule into the limit; one left beside a limit rule would let everything past it.
        for (const [family, tuples] of [[false, v4], [true, v6]] as const) {
          if (!present(rule, anySrc(family), true)) continue;
          for (const t of tuples.filter((x) => opens(x, rule) && inTuple(x) && isAny(x.src) && !isLimit(x))) {
            const cmd = deleteCmd(t);
            changes.push({ id: cmd.argv.join(' '), why: `SSH (${port}/tcp) is also allowed from everyone without the rate limit`, cmd, undo: addCmd(t) });
          }
        }
      }
    }
    for (const w of wanted) {
      const reason = w.reasons.join('; ');
      const sources = sourcesOf(w.access);
      if (sources === null) allow(w.rule, null, `${show(w.rule)} is to be open to everyone: ${reason}`);
      else for (const src of sources) allow(w.rule, src, `${show(w.rule)} is to be open from ${src} only (${w.access}): ${reason}`);
    }
    // An internal or admin port must not be reachable from anywhere else: rules that open it wider go.
    for (const w of wanted.filter((x) => x.access !== 'public')) {
      const sources = sourcesOf(w.access) ?? [];
      const name = w.access === 'internal' ? 'internalFrom' : 'adminFrom';
      narrow(w.rule, sources, (from) => `${w.access} port ${show(w.rule)} is open to ${from}, not only to ${sources.join(', ') || `nobody (${name} is empty)`}`);
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
    if (last) last.why += closedNote(wanted, p);
    // One delete per tuple, even when it opens two rules (a proto any rule for 5432/tcp and 5432/udp).
    return [...new Map(changes.map((c) => [c.id, command(c.id, c.why, c.cmd, c.undo ? { undo: c.undo } : {})])).values()];
  },

  converged(p, facts, host) {
    const ssh = sshPorts(facts, host.sshPort, p);
    const wanted = wantedPorts(p, host.served, ssh);
    const sshOpen = ssh.map((port) => (p.adminFrom.length ? `${port}/tcp (SSH) from ${p.adminFrom.join(', ')}` : `${port}/tcp (SSH${p.sshRateLimit ? ', rate-limited' : ''})`));
    const open = wanted.flatMap((w) => {
      const sources = w.access === 'public' ? null : w.access === 'internal' ? p.internalFrom : p.adminFrom;
      const by = w.reasons.filter((r) => !r.startsWith('the ')).map((r) => r.split(' ')[0]);
      const label = `${show(w.rule)}${by.length ? ` (${[...new Set(by)].join(', ')})` : ''}`;
      return sources === null ? [label] : sources.map((s) => `${label} from ${s}`);
    });
    return `ufw is active, denies incoming and allows outgoing by default, and allows ${[...sshOpen, ...open].join(', ')}${closedNote(wanted, p)}`;
  },

  async verify(ctx) {
    const status = await ctx.run({ argv: ['ufw', 'status', 'verbose'] });
    if (!status.ok || !/^Status: active$/m.test(status.stdout)) throw new CommandError(status, 'ufw status (the firewall is not active)');
    await proveReachable(ctx);
  },

  /**
   * The firewall is turned off when this run turned it on or changed its defaults: that is what can
   * cut the operator off. Rules are undone one by one by the engine (each has its exact undo).
   */
  rollback(applied) {
    const risky = applied.some((a) => a.kind === 'run' && (a.cmd.argv.join(' ') === enableCmd.argv.join(' ') || a.cmd.argv[1] === 'default'));
    return risky ? [{ kind: 'run', cmd: { argv: ['ufw', 'disable'] }, why: 'a fresh SSH connection failed with the firewall up: it is turned off so the operator keeps access' }] : [];
  },
});
