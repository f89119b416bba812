import { homedir, userInfo } from 'node:os';
import { execFile } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { basename, dirname, isAbsolute, join } from 'node:path';
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
  /** ServerAliveInterval: how often to ask an idle host whether it is still there (null: not set, zanuri's default applies). */
  serverAliveIntervalMs: number | null;
  /** ServerAliveCountMax: unanswered keepalives after which the host counts as gone. */
  serverAliveCountMax: number;
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
  const alive = Number(one('serveraliveinterval'));
  const aliveMax = Number(one('serveralivecountmax'));
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
    serverAliveIntervalMs: Number.isInteger(alive) && alive > 0 ? alive * 1000 : null,
    serverAliveCountMax: Number.isInteger(aliveMax) && aliveMax > 0 ? aliveMax : 3,
    proxyCommand: one('proxycommand') && one('proxycommand') !== 'none' ? one('proxycommand') ?? null : null,
  };
}

const defaultEndpoint = (spec: HostSpec): string =>
  [`hostname ${spec.alias}`, `port ${spec.port ?? 22}`, 'identityfile ~/.ssh/id_ed25519', 'identityfile ~/.ssh/id_ecdsa', 'identityfile ~/.ssh/id_rsa',
    'userknownhostsfile ~/.ssh/known_hosts', 'globalknownhostsfile /etc/ssh/ssh_known_hosts'].join('\n');

/**
 * `ssh -G` runs the command of every `Match exec` it evaluates, on this machine, before zanuri sees
 * anything: a config file given with -F (or ~/.ssh/config) that has one is refused before ssh is
 * asked, as ProxyCommand is refused after. Include lines are followed (globs in the last component).
 * Only the file and line number are reported, never the line: the file may be anything (-F /etc/shadow).
 */
export function refuseMatchExec(file: string, depth = 0): void {
  if (depth > 16) return;
  let text: string;
  try {
    text = readFileSync(file).subarray(0, 4 * 1024 * 1024).toString('utf8');
  } catch {
    return; // ssh itself reports a file it cannot read
  }
  for (const [index, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (/^match\b/i.test(line) && /(?:^|\s)!?exec(?:\s|=|$)/i.test(line.slice(5))) {
      throw new ConfigError('the ssh config has a "Match exec" line: ssh would run its command on this machine while reading the config, and zanuri runs none (as with ProxyCommand)', {
        location: `${file}:${index + 1}`, hint: 'use an ssh config without Match exec for zanuri (-F FILE), e.g. a copy with that block removed',
      });
    }
    const include = /^include\s*[ =]\s*(.+)$/i.exec(line)?.[1];
    if (!include) continue;
    for (const pattern of include.split(/\s+/).filter(Boolean).map((p) => p.replace(/^~(?=\/)/, homedir()))) {
      const full = isAbsolute(pattern) ? pattern : join(homedir(), '.ssh', pattern);
      const name = basename(full);
      if (!/[*?]/.test(name)) { refuseMatchExec(full, depth + 1); continue; }
      const glob = new RegExp(`^${name.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
      let entries: string[] = [];
      try { entries = readdirSync(dirname(full)); } catch { entries = []; }
      for (const entry of entries.filter((e) => glob.test(e))) refuseMatchExec(join(dirname(full), entry), depth + 1);
    }
  }
}

/**
 * ssh's complaint about a config file, without the file's content: "FILE: line N: Bad configuration
 * option: <the line's first word>" would copy a line of any file given with -F (-F /etc/shadow).
 */
export function sshConfigComplaint(stderr: string): string {
  const lines = stderr.trim().split('\n').map((l) => l.trim()).filter((l) => l && !/terminating, \d+ bad configuration options?$/.test(l)).slice(0, 3).map((l) => {
    const at = /^(.*?):? line (\d+): ([^:"]*)/.exec(l);
    if (at) return `${at[1]}:${at[2]}: ${(at[3] ?? '').trim()} (the line is not shown)`;
    return /^(?:Can't open|Unsupported option|command-line)/i.test(l) ? l.replace(/[^\x20-\x7e]/g, '?').slice(0, 200) : 'ssh rejected the configuration (its message is not shown: it may quote the file)';
  });
  return [...new Set(lines)].join('; ');
}

/**
 * Resolves a host through OpenSSH's own `ssh -G`, so Host patterns, Match, Include and defaults
 * behave exactly as they do for the operator's ssh. Without an ssh client, plain defaults apply.
 */
export async function resolveEndpoint(spec: HostSpec, options: SshConfigOptions = {}): Promise<SshEndpoint> {
  const argv = ['-G', ...(options.configFile ? ['-F', options.configFile] : []), ...(spec.user ? ['-l', spec.user] : []),
    ...(spec.port ? ['-p', String(spec.port)] : []), '--', spec.alias];
  refuseMatchExec(options.configFile ?? join(homedir(), '.ssh', 'config'));
  // node's execFile, not execa: remote checks then never load execa, which is a measurable share of start-up.
  const result = await new Promise<{ code: number | string | null; stdout: string; stderr: string }>((resolve) => {
    execFile('ssh', argv, { encoding: 'utf8' }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as NodeJS.ErrnoException).code ?? (error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
  if (result.code === 0) return parseSshG(result.stdout, spec);
  if (result.code === 'ENOENT') return parseSshG(defaultEndpoint(spec), spec);
  throw new ConfigError(`ssh could not resolve "${spec.alias}": ${sshConfigComplaint(result.stderr) || `exit ${result.code}`}`, {
    ...(options.configFile ? { location: options.configFile } : {}),
    hint: 'check the ssh config file (ssh -G shows how OpenSSH reads it)',
  });
}
