/**
 * Ansible's YAML inventory format (also JSON), from data already parsed: nested groups under any top
 * key, each with `hosts`, `vars` and `children`, as ansible-core's yaml plugin reads them.
 * The YAML text itself is parsed in profiles/, the owner of the yaml package (see load.ts).
 */
import { ConfigError } from '../core/errors.js';
import { InventoryBuilder, type Inventory, type Vars } from './model.js';
import { splitHostPort } from './ini.js';

const isMap = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function fromYamlData(data: unknown, file: string): Inventory {
  if (data === null || data === undefined) throw new ConfigError('the inventory is empty', { location: file });
  if (!isMap(data)) throw new ConfigError('a YAML inventory must be a mapping of group names', { location: file });
  if ('plugin' in data) throw new ConfigError('this is an inventory plugin configuration, not an inventory', { location: file, hint: 'zanuri reads static INI and YAML inventories; export a dynamic one with `ansible-inventory -i FILE --list -y`' });
  const inv = new InventoryBuilder(file);
  const group = (name: string, body: unknown, path: string): string | null => {
    if (body !== null && body !== undefined && !isMap(body)) {
      inv.inventory.warnings.push(`${file}: skipping "${path}": not a group definition`);
      return null;
    }
    inv.group(name);
    if (!body) return name;
    for (const [key, raw] of Object.entries(body)) {
      const value = typeof raw === 'string' && ['vars', 'children', 'hosts'].includes(key) ? { [raw]: null } : raw;
      if (value === null || value === undefined) continue;
      if (!isMap(value)) {
        if (['vars', 'children', 'hosts'].includes(key)) throw new ConfigError(`"${path}.${key}" must be a mapping`, { location: file });
        inv.inventory.warnings.push(`${file}: skipping key "${key}" in group "${name}": not a mapping`);
        continue;
      }
      if (key === 'vars') Object.assign(inv.group(name).vars, value);
      else if (key === 'children') {
        for (const [child, childBody] of Object.entries(value)) {
          const made = group(child, childBody, `${path}.children.${child}`);
          if (made) inv.child(name, made);
        }
      } else if (key === 'hosts') {
        for (const [pattern, vars] of Object.entries(value)) {
          if (vars !== null && vars !== undefined && !isMap(vars)) throw new ConfigError(`the variables of host "${pattern}" in group "${name}" must be a mapping`, { location: file });
          const { names, port } = splitHostPort(pattern, file);
          for (const host of names) inv.host(host, name, { ...(port === undefined ? {} : { ansible_port: port }), ...((vars ?? {}) as Vars) });
        }
      } else {
        inv.inventory.warnings.push(`${file}: skipping unexpected key "${key}" in group "${name}": only vars, children and hosts are valid`);
      }
    }
    return name;
  };
  for (const [name, body] of Object.entries(data)) group(name, body, name);
  return inv.finish();
}
