/**
 * What zanuri needs from one inventory host: how to reach it (ansible_host, ansible_port,
 * ansible_user, ansible_ssh_private_key_file, ansible_connection, ansible_ssh_common_args,
 * ansible_ssh_extra_args), whether it may become root (ansible_become*), and which profile and
 * parameters it gets (zanuri_profile, zanuri_set).
 *
 * ansible_become: false means zanuri never runs sudo for the host: it logs in as root (root unless
 * ansible_user names another user, which is refused). true, or unset: a login user that is not root
 * becomes root with `sudo -n`. ansible_become_user may only be root.
 */
import { accessSync, constants } from 'node:fs';
import { homedir } from 'node:os';
import { ConfigError } from '../core/errors.js';
import { parseHostSpec } from '../core/host-spec.js';
import { hostVariables, type Inventory, type Vars } from './model.js';
import { noSshArgs, parseSshArgs, type SshArgs } from './ssh-args.js';

export interface InventoryTarget {
  /** The inventory host name: what reports and --list-hosts show. */
  name: string;
  /** `[user@]address[:port]` to connect to, or null for `ansible_connection: local` (this machine). */
  spec: string | null;
  /** ansible_ssh_private_key_file, offered before the identities of the command line and ssh config. */
  identityFile: string | null;
  /** false when the inventory says ansible_become: false (no sudo); true or unset otherwise. */
  become: boolean;
  /** The login user is root (so become does not matter), when the inventory says so. */
  loginIsRoot: boolean;
  /** What ansible_ssh_common_args and ansible_ssh_extra_args add (port and user are in spec already, the first key file in identityFile). */
  ssh: SshArgs;
  profile: string | null;
  /** zanuri_set as `step.key=value` assignments, the form --set takes (values as JSON). */
  sets: string[];
}

/** Ansible's boolean(): yes/no, true/false, on/off, 1/0, y/n, any case. */
export function ansibleBoolean(value: unknown, what: string, where: string): boolean {
  if (typeof value === 'boolean') return value;
  const text = String(value).toLowerCase();
  if (['yes', 'on', '1', 'true', 't', 'y', '1.0'].includes(text)) return true;
  if (['no', 'off', '0', 'false', 'f', 'n', '0.0'].includes(text)) return false;
  throw new ConfigError(`${what} must be a boolean, got ${JSON.stringify(value)}`, { location: where });
}

function text(vars: Vars, keys: readonly string[], host: string, file: string): string | null {
  for (const key of keys) {
    const value = vars[key];
    if (value === undefined || value === null) continue;
    if (typeof value !== 'string' && typeof value !== 'number') throw new ConfigError(`host ${host}: ${key} must be a string, got ${JSON.stringify(value)}`, { location: file });
    const s = String(value);
    if (s.includes('{{') || s.includes('{%')) {
      throw new ConfigError(`host ${host}: ${key} is a Jinja template (${s}), which zanuri does not evaluate`, { location: file, hint: 'write the value itself in the inventory or in host_vars/' });
    }
    return s;
  }
  return null;
}

function setsOf(value: unknown, host: string, file: string): string[] {
  if (value === undefined || value === null) return [];
  const bad = (): never => {
    throw new ConfigError(`host ${host}: zanuri_set must be a list of "step.key=value" or a mapping of step.key (or step: {key: value}) to values`, { location: file });
  };
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.map((v) => (typeof v === 'string' ? v : bad()));
  if (typeof value !== 'object') return bad();
  return Object.entries(value as Vars).flatMap(([key, v]) => {
    if (key.includes('.')) return [`${key}=${JSON.stringify(v)}`];
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return bad();
    return Object.entries(v as Vars).map(([k, inner]) => `${key}.${k}=${JSON.stringify(inner)}`);
  });
}

export function inventoryTarget(inv: Inventory, host: string): InventoryTarget {
  const vars = hostVariables(inv, host);
  const file = inv.file;
  const connection = text(vars, ['ansible_connection'], host, file) ?? 'ssh';
  if (!['ssh', 'smart', 'paramiko', 'local'].includes(connection)) {
    throw new ConfigError(`host ${host}: ansible_connection ${connection} is not one zanuri speaks`, { location: file, hint: 'zanuri connects with ssh, or to this machine with ansible_connection: local' });
  }
  const address = text(vars, ['ansible_host', 'ansible_ssh_host'], host, file) ?? host;
  // Ansible's order on the ssh command line: common args, then extra args; the first value of an option wins.
  const ssh = parseSshArgs(vars['ansible_ssh_extra_args'], 'ansible_ssh_extra_args', host, file,
    parseSshArgs(vars['ansible_ssh_common_args'], 'ansible_ssh_common_args', host, file, { ...noSshArgs, identityFiles: [] }));
  // ansible_port, ansible_user and the key file come before those arguments: they win.
  const port = text(vars, ['ansible_port', 'ansible_ssh_port'], host, file) ?? ssh.port;
  const become = vars['ansible_become'] ?? vars['ansible_sudo'];
  const mayBecome = become === undefined ? true : ansibleBoolean(become, `host ${host}: ansible_become`, file);
  const named = text(vars, ['ansible_user', 'ansible_ssh_user', 'ansible_remote_user'], host, file) ?? ssh.user;
  if (!mayBecome && named !== null && named !== 'root' && connection !== 'local') {
    throw new ConfigError(`host ${host}: ansible_become is false, so zanuri logs in as root and never runs sudo, but the login user is ${named}`, {
      location: file, hint: `set ansible_user=root for ${host} (or leave it unset), or let ${named} become root with sudo (ansible_become: true)`,
    });
  }
  const user = !mayBecome && connection !== 'local' ? 'root' : named;
  if (port !== null && !/^\d{1,5}$/.test(port)) throw new ConfigError(`host ${host}: ansible_port must be a port number, got ${port}`, { location: file });
  const bracketed = address.includes(':') ? `[${address}]` : address;
  const spec = `${user ? `${user}@` : ''}${bracketed}${port ? `:${port}` : ''}`;
  if (connection !== 'local' && !parseHostSpec(spec)) {
    throw new ConfigError(`host ${host}: "${spec}" is not a host zanuri can reach: expected [user@]host[:port]`, { location: file });
  }
  const ownKey = text(vars, ['ansible_ssh_private_key_file', 'ansible_private_key_file'], host, file);
  const keys = [...(ownKey === null ? [] : [ownKey.replace(/^~(?=\/|$)/, homedir())]), ...ssh.identityFiles];
  const becomeUser = text(vars, ['ansible_become_user'], host, file);
  if (becomeUser !== null && becomeUser !== 'root') {
    throw new ConfigError(`host ${host}: ansible_become_user ${becomeUser}: zanuri only becomes root`, { location: file, hint: `remove ansible_become_user for ${host}, or set it to root` });
  }
  const method = text(vars, ['ansible_become_method'], host, file);
  if (method !== null && method !== 'sudo') throw new ConfigError(`host ${host}: ansible_become_method ${method}: zanuri becomes root with sudo -n only`, { location: file });
  const profile = text(vars, ['zanuri_profile'], host, file);
  return {
    name: host,
    spec: connection === 'local' ? null : spec,
    identityFile: keys[0] ?? null,
    become: mayBecome,
    loginIsRoot: user === 'root',
    ssh: { ...ssh, identityFiles: keys.slice(1) },
    profile,
    sets: setsOf(vars['zanuri_set'], host, file),
  };
}

/** The connection options zanuri's transport takes, as far as an inventory host sets them. */
interface HostConnect {
  identityFiles?: string[];
  connectTimeoutMs?: number;
  serverAliveIntervalMs?: number;
  knownHostsFile?: string;
  acceptNewHostKey?: boolean;
}

/**
 * The command line's connection options with one inventory host's on top (the host's variables win,
 * as in Ansible): its key files first, then its ssh arguments. Every key file it names must be
 * readable, checked here, before any connection.
 */
export function inventoryConnect<T extends HostConnect>(base: T, target: InventoryTarget, file: string): T {
  const keys = [...(target.identityFile ? [target.identityFile] : []), ...target.ssh.identityFiles];
  for (const key of keys) {
    try {
      accessSync(key, constants.R_OK);
    } catch {
      throw new ConfigError(`host ${target.name}: cannot read its key file ${key} (ansible_ssh_private_key_file, or -i in its ssh args)`, { location: file });
    }
  }
  const { connectTimeoutMs, serverAliveIntervalMs, knownHostsFile, acceptNewHostKey } = target.ssh;
  return {
    ...base,
    identityFiles: [...keys, ...(base.identityFiles ?? [])],
    ...(connectTimeoutMs === null ? {} : { connectTimeoutMs }),
    ...(serverAliveIntervalMs === null ? {} : { serverAliveIntervalMs }),
    ...(knownHostsFile === null ? {} : { knownHostsFile }),
    ...(acceptNewHostKey ? { acceptNewHostKey: true } : {}),
  };
}
