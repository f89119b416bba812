/**
 * Reads an inventory file as Ansible would: YAML (.yml, .yaml, .json, or no extension when it parses
 * as a mapping) or INI, plus group_vars/ and host_vars/ beside it.
 *
 * YAML text is parsed by a function the caller passes in (profiles/ owns the yaml package and its
 * file:line:col errors; inventory may import only core and facts), so one YAML reader serves both.
 */
import { readFile, readdir, stat } from 'node:fs/promises';
import { dirname, extname, join } from 'node:path';
import { ConfigError } from '../core/errors.js';
import { parseIni } from './ini.js';
import type { Inventory, Vars } from './model.js';
import { fromYamlData } from './yaml.js';

/** YAML text to plain data; throws a ConfigError with file:line:col when it is not YAML. */
export type ParseYaml = (text: string, file: string) => unknown;

const yamlExtensions = new Set(['.yml', '.yaml', '.json']);

function refuseVault(text: string, file: string): void {
  if (text.startsWith('$ANSIBLE_VAULT;') || /!vault\s*\|/.test(text)) {
    throw new ConfigError('this file is encrypted with ansible-vault, which zanuri cannot decrypt', {
      location: file, hint: 'keep connection variables (ansible_host, ansible_user, ...) unencrypted, or pass secrets to zanuri with --set @file',
    });
  }
}

async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read the inventory: ${(error as Error).message}`, { location: file, cause: error });
  }
}

export function parseInventoryText(text: string, file: string, parseYaml: ParseYaml): Inventory {
  refuseVault(text, file);
  const ext = extname(file).toLowerCase();
  if (yamlExtensions.has(ext)) return fromYamlData(parseYaml(text, file), file);
  if (ext === '') {
    let data: unknown = null;
    try {
      data = parseYaml(text, file);
    } catch {
      data = null;
    }
    if (typeof data === 'object' && data !== null && !Array.isArray(data)) return fromYamlData(data, file);
  }
  return parseIni(text, file);
}

/** The files of group_vars/<name> or host_vars/<name>: the name itself, with .yml/.yaml/.json, or a directory of them. */
async function varsFiles(dir: string, name: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (path: string): Promise<void> => {
    const entries = (await readdir(path, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const e of entries) {
      if (e.name.startsWith('.') || e.name.endsWith('~')) continue;
      const full = join(path, e.name);
      if (e.isDirectory()) await walk(full);
      else if (extname(e.name) === '' || yamlExtensions.has(extname(e.name).toLowerCase())) found.push(full);
    }
  };
  for (const candidate of ['', '.yml', '.yaml', '.json'].map((ext) => join(dir, `${name}${ext}`))) {
    const info = await stat(candidate).catch(() => null);
    if (info?.isDirectory()) await walk(candidate);
    else if (info?.isFile()) found.push(candidate);
  }
  return found;
}

async function readVars(files: readonly string[], parseYaml: ParseYaml): Promise<Vars | undefined> {
  if (!files.length) return undefined;
  const vars: Vars = {};
  for (const file of files) {
    const text = await readText(file);
    refuseVault(text, file);
    const data = parseYaml(text, file);
    if (data === null || data === undefined) continue;
    if (typeof data !== 'object' || Array.isArray(data)) throw new ConfigError('a variables file must be a mapping', { location: file });
    Object.assign(vars, data);
  }
  return vars;
}

/** Loads an inventory file and the group_vars/ and host_vars/ beside it. */
export async function loadInventory(file: string, parseYaml: ParseYaml): Promise<Inventory> {
  const inv = parseInventoryText(await readText(file), file, parseYaml);
  const base = dirname(file);
  for (const [kind, names, into] of [
    ['group_vars', [...inv.groups.keys()], inv.groupVarFiles],
    ['host_vars', inv.hosts, inv.hostVarFiles],
  ] as const) {
    const dir = join(base, kind);
    if (!(await stat(dir).catch(() => null))?.isDirectory()) continue;
    for (const name of names) {
      const vars = await readVars(await varsFiles(dir, name), parseYaml);
      if (vars) into.set(name, vars);
    }
  }
  return inv;
}
