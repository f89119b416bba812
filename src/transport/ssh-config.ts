import { homedir, userInfo } from 'node:os';
import { execa } from 'execa';
import { ConfigError } from '../core/errors.js';

/** Where and how to reach one host, as OpenSSH itself would resolve it from ~/.ssh/config. */
export interface SshEndpoint {
  /** What the user wrote: an alias from ssh config, a name or an address. */
  alias: string;
  host: string;
  port: number;
  user: string;
  identityFiles: string[];
  identitiesOnly: boolean;
  identityAgent: string | null;
  /** Hops to go through first, in order, as written ("user@host:port" or an alias). */
  proxyJump: string[];
  strictHostKeyChecking: 'yes' | 'no' | 'accept-new' | 'ask';
  knownHostsFiles: string[];
  globalKnownHostsFiles: string[];
  connectTimeoutMs: number | null;
  /** zanuri does not run ProxyCommand; it is reported so the connection is refused, not silently direct. */
  proxyCommand: string | null;
}

export interface HostSpec {
  alias: string;
  user?: string;
  port?: number;
}

export interface SshConfigOptions {
  /** An ssh_config file to use instead of ~/.ssh/config (ssh -F). */
  configFile?: string;
}

/** Parses "[user@]host[:port]" and "[user@][v6addr]:port". Usage errors are the caller's to report. */
export function parseHostSpec(spec: string): HostSpec | null {
  // Names, addresses and ssh config aliases only: nothing a shell or ssh option parser would act on.
  const match = /^(?:([A-Za-z0-9_][A-Za-z0-9._-]*)@)?(\[[0-9A-Fa-f:.%]+\]|[A-Za-z0-9_][A-Za-z0-9._-]*)(?::(\d{1,5}))?$/.exec(spec);
  if (!match?.[2]) return null;
  const port = match[3] === undefined ? undefined : Number(match[3]);
  if (port !== undefined && (port < 1 || port > 65535)) return null;
  return {
    alias: match[2].replace(/^\[(.*)\]$/, '$1'),
    ...(match[1] === undefined ? {} : { user: match[1] }),
    ...(port === undefined ? {} : { port }),
  };
}

function expandPath(path: string, endpoint: { host: string; user: string }): string {
  const home = homedir();
  return path
    .replace(/^~(?=\/|$)/, home)
    .replace(/%(.)/g, (all, token: string) => {
      switch (token) {
        case 'd': return home;
        case 'u': return userInfo().username;
        case 'h': return endpoint.host;
        case 'r': return endpoint.user;
        case '%': return '%';
        default: return all;
      }
    });
}

/** Parses `ssh -G` output: one "key value" line each, keys lower case, repeated keys accumulate. */
export function parseSshG(text: string, spec: HostSpec): SshEndpoint {
  const values = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const match = /^(\S+)\s+(.*)$/.exec(line.trim());
    if (!match?.[1]) continue;
    const key = match[1].toLowerCase();
    values.set(key, [...(values.get(key) ?? []), match[2] ?? '']);
  }
  const one = (key: string): string | undefined => values.get(key)?.[0];
  const host = one('hostname') ?? spec.alias;
  const user = spec.user ?? one('user') ?? userInfo().username;
  const where = { host, user };
  const strict = one('stricthostkeychecking');
  const timeout = Number(one('connecttimeout'));
  const jump = one('proxyjump');
  const agent = one('identityagent');
  const splitFiles = (key: string): string[] => (values.get(key) ?? []).flatMap((v) => v.split(/\s+/)).filter(Boolean).map((p) => expandPath(p, where));
  return {
    alias: spec.alias,
    host,
    port: spec.port ?? (Number(one('port')) || 22),
    user,
    identityFiles: (values.get('identityfile') ?? []).map((p) => expandPath(p, where)),
    identitiesOnly: one('identitiesonly') === 'yes',
    identityAgent: agent === undefined || agent === 'SSH_AUTH_SOCK' ? process.env['SSH_AUTH_SOCK'] ?? null : agent === 'none' ? null : expandPath(agent, where),
    proxyJump: jump && jump !== 'none' ? jump.split(',').map((h) => h.trim()).filter(Boolean) : [],
    strictHostKeyChecking: strict === 'true' || strict === 'yes' ? 'yes' : strict === 'false' || strict === 'no' ? 'no' : strict === 'accept-new' ? 'accept-new' : 'ask',
    knownHostsFiles: splitFiles('userknownhostsfile'),
    globalKnownHostsFiles: splitFiles('globalknownhostsfile'),
    connectTimeoutMs: Number.isFinite(timeout) && timeout > 0 ? timeout * 1000 : null,
    proxyCommand: one('proxycommand') && one('proxycommand') !== 'none' ? one('proxycommand') ?? null : null,
  };
}

const defaultEndpoint = (spec: HostSpec): string =>
  [`hostname ${spec.alias}`, `port ${spec.port ?? 22}`, 'identityfile ~/.ssh/id_ed25519', 'identityfile ~/.ssh/id_ecdsa', 'identityfile ~/.ssh/id_rsa',
    'userknownhostsfile ~/.ssh/known_hosts', 'globalknownhostsfile /etc/ssh/ssh_known_hosts'].join('\n');

/**
 * Resolves a host through OpenSSH's own `ssh -G`, so Host patterns, Match, Include and defaults
 * behave exactly as they do for the operator's ssh. Without an ssh client, plain defaults apply.
 */
export async function resolveEndpoint(spec: HostSpec, options: SshConfigOptions = {}): Promise<SshEndpoint> {
  const argv = ['-G', ...(options.configFile ? ['-F', options.configFile] : []), ...(spec.user ? ['-l', spec.user] : []),
    ...(spec.port ? ['-p', String(spec.port)] : []), '--', spec.alias];
  const result = await execa('ssh', argv, { reject: false, stdin: 'ignore' });
  if (result.exitCode === 0) return parseSshG(String(result.stdout), spec);
  if ((result as { code?: string }).code === 'ENOENT') return parseSshG(defaultEndpoint(spec), spec);
  throw new ConfigError(`ssh could not resolve "${spec.alias}": ${String(result.stderr).trim() || result.message}`, {
    ...(options.configFile ? { location: options.configFile } : {}),
    hint: 'check the ssh config file (ssh -G shows how OpenSSH reads it)',
  });
}
