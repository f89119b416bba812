import { homedir, userInfo } from 'node:os';
import { execFile } from 'node:child_process';
import { ConfigError } from '../core/errors.js';
import type { HostSpec } from '../core/host-spec.js';

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

export interface SshConfigOptions {
  /** An ssh_config file to use instead of ~/.ssh/config (ssh -F). */
  configFile?: string;
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
    const match = line.trim().match(/^(\S+)\s+(.*)$/);
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
  // node's execFile, not execa: remote checks then never load execa, which is a measurable share of start-up.
  const result = await new Promise<{ code: number | string | null; stdout: string; stderr: string }>((resolve) => {
    execFile('ssh', argv, { encoding: 'utf8' }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as NodeJS.ErrnoException).code ?? (error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
  if (result.code === 0) return parseSshG(result.stdout, spec);
  if (result.code === 'ENOENT') return parseSshG(defaultEndpoint(spec), spec);
  throw new ConfigError(`ssh could not resolve "${spec.alias}": ${result.stderr.trim() || `exit ${result.code}`}`, {
    ...(options.configFile ? { location: options.configFile } : {}),
    hint: 'check the ssh config file (ssh -G shows how OpenSSH reads it)',
  });
}
