import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { ConfigError } from '../core/errors.js';
import { parseYamlText } from './yaml.js';
import { shownKey } from './location.js';

/**
 * zanuri.yaml: what `zanuri init` asked, read by check, provision and cloud-init from the current
 * directory as defaults for their flags (a flag given on the command line wins).
 */
export interface ZanuriConfig {
  file: string;
  hosts?: string[];
  inventory?: string;
  profile?: string;
  /** STEP.KEY -> value, as --set would give it. */
  set?: Record<string, unknown>;
  sshKey?: string;
}

export const configFileName = 'zanuri.yaml';
const keys = ['hosts', 'inventory', 'profile', 'set', 'sshKey'];
const setKey = /^[a-z0-9-]+\.[A-Za-z][A-Za-z0-9]*$/;

/** The config of the current directory (or `file`), or null when there is none. */
export async function loadConfig(file = configFileName): Promise<ZanuriConfig | null> {
  const path = resolve(file);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return null;
  }
  const data = parseYamlText(text, path);
  if (data === null || data === undefined) return { file: path };
  if (typeof data !== 'object' || Array.isArray(data)) throw new ConfigError(`${path}: expected a mapping of ${keys.join(', ')}`, { location: path });
  const bad = (what: string): never => { throw new ConfigError(`${path}: ${what}`, { location: path }); };
  const raw = data as Record<string, unknown>;
  const unknown = Object.keys(raw).filter((k) => !keys.includes(k));
  if (unknown.length) bad(`unknown key ${unknown.map(shownKey).join(', ')} (known: ${keys.join(', ')})`);
  const config: ZanuriConfig = { file: path };
  if (raw['hosts'] !== undefined && raw['hosts'] !== null) {
    if (!Array.isArray(raw['hosts']) || !raw['hosts'].every((h) => typeof h === 'string' && h)) bad('hosts must be a list of [user@]host[:port]');
    config.hosts = raw['hosts'] as string[];
  }
  for (const key of ['inventory', 'profile', 'sshKey'] as const) {
    const value = raw[key];
    if (value === undefined || value === null) continue;
    if (typeof value !== 'string' || !value) bad(`${key} must be text`);
    config[key] = value as string;
  }
  if (config.hosts?.length && config.inventory) bad('hosts and inventory exclude each other');
  const set = raw['set'];
  if (set !== undefined && set !== null) {
    if (typeof set !== 'object' || Array.isArray(set)) bad('set must map STEP.KEY to a value');
    for (const k of Object.keys(set as object)) if (!setKey.test(k)) bad(`set: ${JSON.stringify(k)} is not STEP.KEY (e.g. certbot.domain)`);
    config.set = set as Record<string, unknown>;
  }
  return config;
}

const value = (v: unknown): string => JSON.stringify(v);

/** zanuri.yaml text with a comment on every entry (JSON scalars are valid YAML). */
export function renderConfig(c: Omit<ZanuriConfig, 'file'>, notes: { checked?: string } = {}): string {
  const out = [
    '# zanuri.yaml, written by `zanuri init`. zanuri check, provision and cloud-init read it from this',
    '# directory as the defaults of their flags; a flag on the command line wins.',
    '',
  ];
  if (c.inventory) out.push('# The hosts: an Ansible inventory (zanuri_profile / zanuri_set per host or group also work).', `inventory: ${value(c.inventory)}`, '');
  else if (c.hosts?.length) out.push('# The hosts, as --host takes them: [user@]host[:port] or a ~/.ssh/config alias.', 'hosts:', ...c.hosts.map((h) => `  - ${value(h)}`), '');
  if (c.profile) out.push(`# The profile to judge (check) and converge (provision, cloud-init) them to.${notes.checked ? ` ${notes.checked}` : ''}`, `profile: ${value(c.profile)}`, '');
  if (c.sshKey) out.push('# The operator\'s public key: the deploy user\'s authorized key (never a private key).', `sshKey: ${value(c.sshKey)}`, '');
  const sets = Object.entries(c.set ?? {});
  if (sets.length) {
    out.push('# Step parameters, as --set STEP.KEY=VALUE (certbot: the certificate\'s domain and the ACME contact).', 'set:', ...sets.map(([k, v]) => `  ${k}: ${value(v)}`), '');
  }
  return `${out.join('\n').trimEnd()}\n`;
}
