import { CommandError, ConfigError } from '../core/errors.js';
import { plan, type Action } from '../core/plan.js';
import type { Cmd } from '../core/types.js';
import { commandFact, fileFact, parseSshdPorts, sshdConfigFact, type CommandState, type FactRequest } from '../facts/state.js';
import { cidr as cidrPattern, integer, list, object, optionalString, type Raw } from './params.js';
import type { HostContext, HostInfo, Step } from './types.js';

export type Protocol = 'tcp' | 'udp';

export interface PortRule {
  port: number;
  protocol: Protocol;
}

export interface UfwParams {
  /** Opened to everyone (e.g. 80/443). */
  allow: PortRule[];
  /** Opened only from `internalFrom` (e.g. 5432, 8000); closed when internalFrom is empty. */
  internal: PortRule[];
  /** Sources of the internal ports, as ufw stores them (network address, no /32 or /128). */
  internalFrom: string[];
  /** One more SSH port to allow (e.g. sshd is about to move there); the ports sshd uses now are always allowed. */
  sshPort: number | null;
}

const id = 'ufw';
export const userRulesPath = '/etc/ufw/user.rules';
export const user6RulesPath = '/etc/ufw/user6.rules';
export const defaultsPath = '/etc/default/ufw';
export const confPath = '/etc/ufw/ufw.conf';
export const statusFact = (): FactRequest<CommandState> => commandFact(['ufw', 'status', 'verbose']);

export const enableCmd: Cmd = { argv: ['ufw', '--force', 'enable'] };
export const disableCmd: Cmd = { argv: ['ufw', 'disable'] };

// ---------- parameters ----------

const ipv4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

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
export function normalizeCidr(value: string, what: string): string {
  const [address = '', bits] = value.split('/');
  const fail = (why: string): never => { throw new ConfigError(`${id}: ${what} ${why}, got ${JSON.stringify(value).slice(0, 80)}`); };
  const v4 = ipv4.exec(address);
  if (v4) {
    const octets = v4.slice(1).map(Number);
    const prefix = bits === undefined ? 32 : Number(bits);
    if (octets.some((o) => o > 255)) fail('must be an IPv4 or IPv6 address or CIDR');
    const n = octets.reduce((acc, o) => acc * 256 + o, 0);
    const network = n - (n % 2 ** (32 - prefix));
    if (network !== n) {
      const dotted = [24, 16, 8, 0].map((s) => Math.floor(network / 2 ** s) % 256).join('.');
      fail(`has host bits set (did you mean ${dotted}/${prefix}?)`);
    }
    return prefix === 32 ? address : `${address}/${prefix}`;
  }
  let canonical: string;
  try {
    canonical = new URL(`http://[${address}]/`).hostname.slice(1, -1);
  } catch {
    return fail('must be an IPv4 or IPv6 address or CIDR');
  }
  const groups = ipv6Groups(canonical);
  if (!groups) return fail('must be an IPv4 or IPv6 address or CIDR');
  const prefix = bits === undefined ? 128 : Number(bits);
  groups.forEach((g, i) => {
    const keep = Math.max(0, Math.min(16, prefix - 16 * i));
    if ((g & (0xffff >> keep)) !== 0) fail('has host bits set');
  });
  return prefix === 128 ? canonical : `${canonical}/${prefix}`;
}

function portRule(key: string) {
  return (value: unknown, i: number): PortRule => {
    const where = `${key}[${i}]`;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new ConfigError(`${id}: ${where} must be a mapping like {port: 443, protocol: tcp}, got ${JSON.stringify(value)?.slice(0, 80)}`);
    }
    const raw = object(value, `${id}: ${where}`, ['port', 'protocol']);
    return {
      port: integer(raw, `${id}: ${where}`, 'port', 1, 65535),
      protocol: (optionalString(raw, `${id}: ${where}`, 'protocol', /^(?:tcp|udp)$/, '"tcp" or "udp"') ?? 'tcp') as Protocol,
    };
  };
}

const uniqueRules = (rules: PortRule[]): PortRule[] =>
  [...new Map(rules.map((r) => [`${r.port}/${r.protocol}`, r])).values()];

export const show = (r: PortRule): string => `${r.port}/${r.protocol}`;

// ---------- state ----------

/** One rule as ufw records it in user.rules: `### tuple ### allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 in`. */
export interface UfwTuple {
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
export function parseTuples(content: string | null): UfwTuple[] {
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
export function parseShellVars(content: string | null): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const m of (content ?? '').matchAll(/^([A-Z_0-9]+)=("?)([^"\n]*)\2\s*$/gm)) vars[m[1] as string] = m[3] as string;
  return vars;
}

/** The SSH ports the firewall must keep open: sshd's own, the one this connection uses, and the parameter. */
export function sshPorts(sshdT: CommandState, host: HostInfo, p: UfwParams): number[] {
  const ports = new Set(parseSshdPorts(sshdT));
  if (host.sshPort !== null) ports.add(host.sshPort);
  if (p.sshPort !== null) ports.add(p.sshPort);
  if (ports.size === 0) ports.add(22);
  return [...ports].sort((a, b) => a - b);
}

const isV6 = (address: string): boolean => address.includes(':');
const anySrc = (v6: boolean): string => (v6 ? '::/0' : '0.0.0.0/0');
const allowsTraffic = (t: UfwTuple): boolean => /^(?:allow|limit)(?:_|$)/.test(t.action);

/** Does this tuple already let `rule` in from `src` (any interface, any source port)? A limit rule counts. */
function satisfies(t: UfwTuple, rule: PortRule, src: string, v6: boolean): boolean {
  return allowsTraffic(t) && !t.app && t.direction === 'in' && t.sport === 'any' && t.dst === anySrc(v6) &&
    t.dport === String(rule.port) && (t.proto === rule.protocol || t.proto === 'any') && t.src === src;
}

/** The ufw command that deletes exactly this tuple. */
export function deleteCmd(t: UfwTuple): Cmd {
  const [verb = 'allow', log] = t.action.split('_');
  const iface = t.direction.includes('_') ? ['in', 'on', t.direction.slice(t.direction.indexOf('_') + 1)] : [];
  return { argv: ['ufw', 'delete', verb, ...(log ? [log] : []), ...iface, 'proto', t.proto, 'from', t.src, 'to', t.dst, 'port', t.dport] };
}

// ---------- step ----------

/**
 * The host firewall with ufw: SSH first, then the public and internal ports, default deny incoming
 * and allow outgoing, then `ufw enable`. State is read from ufw's own files (user.rules tuples are
 * exact and readable while ufw is inactive) and `ufw status verbose`; only what is missing is planned.
 * verify() proves a fresh SSH connection gets through; if not, the firewall is turned off again.
 */
export const ufw: Step<UfwParams> = {
  id,
  title: 'Firewall (ufw)',
  after: ['deploy-user', 'ssh-harden'],

  parseParams(raw) {
    const p: Raw = object(raw, id, ['allow', 'internal', 'internalFrom', 'sshPort']);
    const allow = uniqueRules(list(p, id, 'allow', portRule('allow')));
    const internal = uniqueRules(list(p, id, 'internal', portRule('internal')));
    const internalFrom = [...new Set(list(p, id, 'internalFrom', (value, i) => {
      if (typeof value !== 'string' || !cidrPattern.test(value)) {
        throw new ConfigError(`${id}: internalFrom[${i}] must be an IPv4 or IPv6 address or CIDR, got ${JSON.stringify(value)?.slice(0, 80)}`);
      }
      return normalizeCidr(value, `internalFrom[${i}]`);
    }))];
    const both = internal.filter((r) => allow.some((a) => a.port === r.port && a.protocol === r.protocol));
    if (both.length) throw new ConfigError(`${id}: ${both.map(show).join(', ')} cannot be both public (allow) and internal`);
    return { allow, internal, internalFrom, sshPort: p['sshPort'] === undefined ? null : integer(p, id, 'sshPort', 1, 65535) };
  },

  packages: () => ['ufw'],

  facts: () => [statusFact(), fileFact(userRulesPath), fileFact(user6RulesPath), fileFact(defaultsPath), fileFact(confPath), sshdConfigFact()],

  plan(facts, p, host) {
    const status = facts.get(statusFact());
    const v4 = parseTuples(facts.get(fileFact(userRulesPath)).content);
    const v6 = parseTuples(facts.get(fileFact(user6RulesPath)).content);
    const defaults = parseShellVars(facts.get(fileFact(defaultsPath)).content);
    const conf = parseShellVars(facts.get(fileFact(confPath)).content);
    const ipv6 = (defaults['IPV6'] ?? 'yes') === 'yes';
    const ssh = sshPorts(facts.get(sshdConfigFact()), host, p);
    const actions: Action[] = [];

    const present = (rule: PortRule, src: string | null): boolean => {
      if (src !== null) return (isV6(src) ? v6 : v4).some((t) => satisfies(t, rule, src, isV6(src)));
      return v4.some((t) => satisfies(t, rule, anySrc(false), false)) && (!ipv6 || v6.some((t) => satisfies(t, rule, anySrc(true), true)));
    };
    const allowAny = (rule: PortRule, why: string): void => {
      if (!present(rule, null)) actions.push({ kind: 'run', cmd: { argv: ['ufw', 'allow', 'proto', rule.protocol, 'from', 'any', 'to', 'any', 'port', String(rule.port)] }, why });
    };

    for (const port of ssh) allowAny({ port, protocol: 'tcp' }, `SSH (${port}/tcp) must be allowed before the firewall goes up, or the operator is locked out`);
    for (const rule of p.allow) allowAny(rule, `${show(rule)} is to be open to everyone`);
    for (const rule of p.internal) {
      for (const src of p.internalFrom) {
        if (!present(rule, src)) {
          actions.push({ kind: 'run', cmd: { argv: ['ufw', 'allow', 'proto', rule.protocol, 'from', src, 'to', 'any', 'port', String(rule.port)] }, why: `${show(rule)} is to be open from ${src} only` });
        }
      }
    }
    // An internal port must not be reachable from anywhere else: rules that open it wider go (never an SSH port's).
    const wanted = new Set(p.internalFrom);
    for (const rule of p.internal.filter((r) => !(r.protocol === 'tcp' && ssh.includes(r.port)))) {
      for (const t of [...v4, ...v6]) {
        if (!allowsTraffic(t) || t.app || !t.direction.startsWith('in') || t.sport !== 'any' || t.dport !== String(rule.port)) continue;
        if (t.proto !== rule.protocol && t.proto !== 'any') continue;
        if (wanted.has(t.src)) continue;
        const from = t.src === anySrc(isV6(t.src)) ? 'everyone' : t.src;
        actions.push({ kind: 'run', cmd: deleteCmd(t), why: `internal port ${show(rule)} is open to ${from}, not only to ${p.internalFrom.join(', ') || 'nobody (internalFrom is empty)'}` });
      }
    }

    if (defaults['DEFAULT_INPUT_POLICY'] !== 'DROP') {
      actions.push({ kind: 'run', cmd: { argv: ['ufw', 'default', 'deny', 'incoming'] }, why: `incoming traffic is ${defaults['DEFAULT_INPUT_POLICY']?.toLowerCase() ?? 'not yet denied'} by default, not denied` });
    }
    if (defaults['DEFAULT_OUTPUT_POLICY'] !== 'ACCEPT') {
      actions.push({ kind: 'run', cmd: { argv: ['ufw', 'default', 'allow', 'outgoing'] }, why: `outgoing traffic is ${defaults['DEFAULT_OUTPUT_POLICY']?.toLowerCase() ?? 'not yet allowed'} by default, not allowed` });
    }
    const active = /^Status: active$/m.test(status.stdout);
    if (!active || conf['ENABLED'] !== 'yes') {
      actions.push({ kind: 'run', cmd: enableCmd, why: !active ? 'the firewall is not active' : 'the firewall is active but not enabled at boot' });
    }

    const closed = p.internal.length && !p.internalFrom.length ? `; internal ports ${p.internal.map(show).join(', ')} stay closed: internalFrom is empty` : '';
    const last = actions[actions.length - 1];
    if (last && closed) actions[actions.length - 1] = { ...last, why: `${last.why}${closed}` };
    const open = [...ssh.map((port) => `${port}/tcp (SSH)`), ...p.allow.map(show), ...p.internal.flatMap((r) => p.internalFrom.map((s) => `${show(r)} from ${s}`))];
    return plan(actions, `ufw is active, denies incoming and allows outgoing by default, and allows ${open.join(', ')}${closed}`);
  },

  async verify(ctx, _p) {
    const status = await ctx.run({ argv: ['ufw', 'status', 'verbose'] });
    if (!status.ok || !/^Status: active$/m.test(status.stdout)) throw new CommandError(status, 'ufw status (the firewall is not active)');
    if (ctx.local) return;
    await provesFreshLogin(ctx);
  },

  /**
   * The firewall is turned off when this run turned it on or changed its defaults: that is what can
   * cut the operator off. Rules added to a firewall that was already up cannot, so it stays up then.
   */
  rollback(applied) {
    const risky = applied.some((a) => a.kind === 'run' && (a.cmd.argv.join(' ') === enableCmd.argv.join(' ') || a.cmd.argv[1] === 'default'));
    return risky ? [{ kind: 'run', cmd: disableCmd, why: 'a fresh SSH connection failed with the firewall up: it is turned off so the operator keeps access' }] : [];
  },
};

async function provesFreshLogin(ctx: HostContext): Promise<void> {
  const transport = await ctx.connectFresh();
  try {
    const result = await transport.run({ argv: ['true'] });
    if (!result.ok) throw new CommandError(result, 'a fresh SSH login through the firewall');
  } finally {
    await transport.close();
  }
}
