/**
 * What zanuri needs from one inventory host: how to reach it (ansible_host, ansible_port,
 * ansible_user, ansible_ssh_private_key_file, ansible_connection), whether it may become root
 * (ansible_become*), and which profile and parameters it gets (zanuri_profile, zanuri_set).
 */
import { homedir } from 'node:os';
import { ConfigError } from '../core/errors.js';
import { parseHostSpec } from '../core/host-spec.js';
import { hostVariables, type Inventory, type Vars } from './model.js';

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
  const port = text(vars, ['ansible_port', 'ansible_ssh_port'], host, file);
  const user = text(vars, ['ansible_user', 'ansible_ssh_user', 'ansible_remote_user'], host, file);
  if (port !== null && !/^\d{1,5}$/.test(port)) throw new ConfigError(`host ${host}: ansible_port must be a port number, got ${port}`, { location: file });
  const bracketed = address.includes(':') ? `[${address}]` : address;
  const spec = `${user ? `${user}@` : ''}${bracketed}${port ? `:${port}` : ''}`;
  if (connection !== 'local' && !parseHostSpec(spec)) {
    throw new ConfigError(`host ${host}: "${spec}" is not a host zanuri can reach: expected [user@]host[:port]`, { location: file });
  }
  const key = text(vars, ['ansible_ssh_private_key_file', 'ansible_private_key_file'], host, file);
  const become = vars['ansible_become'] ?? vars['ansible_sudo'];
  const becomeUser = text(vars, ['ansible_become_user'], host, file);
  if (becomeUser !== null && becomeUser !== 'root') throw new ConfigError(`host ${host}: ansible_become_user ${becomeUser}: zanuri only becomes root`, { location: file });
  const method = text(vars, ['ansible_become_method'], host, file);
  if (method !== null && method !== 'sudo') throw new ConfigError(`host ${host}: ansible_become_method ${method}: zanuri becomes root with sudo -n only`, { location: file });
  const profile = text(vars, ['zanuri_profile'], host, file);
  return {
    name: host,
    spec: connection === 'local' ? null : spec,
    identityFile: key === null ? null : key.replace(/^~(?=\/|$)/, homedir()),
    become: become === undefined ? true : ansibleBoolean(become, `host ${host}: ansible_become`, file),
    loginIsRoot: user === 'root',
    profile,
    sets: setsOf(vars['zanuri_set'], host, file),
  };
}
