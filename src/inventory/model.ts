/**
 * An Ansible inventory in memory, built the way ansible-core builds it (InventoryData): groups with
 * parents and children, hosts in the order they were first named, `all` and `ungrouped` implied.
 */
import { ConfigError } from '../core/errors.js';

export type Vars = Record<string, unknown>;

export interface Group {
  name: string;
  /** Hosts named directly in this group, in order. */
  hosts: string[];
  children: string[];
  parents: string[];
  vars: Vars;
}

export interface Inventory {
  /** The inventory file. */
  file: string;
  groups: Map<string, Group>;
  /** Every host name, in the order first named. */
  hosts: string[];
  /** Each host's own variables from the inventory file. */
  hostVars: Map<string, Vars>;
  /** group_vars/ and host_vars/ beside the file, by name. */
  groupVarFiles: Map<string, Vars>;
  hostVarFiles: Map<string, Vars>;
  /** What Ansible would warn about (unknown keys, ignored settings). */
  warnings: string[];
}

export class InventoryBuilder {
  readonly inventory: Inventory;

  constructor(file: string) {
    this.inventory = { file, groups: new Map(), hosts: [], hostVars: new Map(), groupVarFiles: new Map(), hostVarFiles: new Map(), warnings: [] };
    this.group('all');
    this.group('ungrouped');
  }

  group(name: string): Group {
    let group = this.inventory.groups.get(name);
    if (!group) {
      if (!/^[^\s:[\],]+$/.test(name)) throw new ConfigError('a group name contains whitespace, ":", "[", "]" or ","', { location: this.inventory.file });
      group = { name, hosts: [], children: [], parents: [], vars: {} };
      this.inventory.groups.set(name, group);
    }
    return group;
  }

  host(name: string, groupName: string, vars: Vars = {}): void {
    if (!this.inventory.hostVars.has(name)) {
      this.inventory.hosts.push(name);
      this.inventory.hostVars.set(name, {});
    }
    Object.assign(this.inventory.hostVars.get(name) as Vars, vars);
    const group = this.group(groupName);
    if (!group.hosts.includes(name)) group.hosts.push(name);
  }

  child(parentName: string, childName: string): void {
    if (parentName === childName) throw new ConfigError(`group "${parentName}" cannot be its own child`, { location: this.inventory.file });
    const parent = this.group(parentName);
    const child = this.group(childName);
    if (ancestors(this.inventory, parentName).has(childName)) {
      throw new ConfigError(`groups "${parentName}" and "${childName}" are each other's ancestors`, { location: this.inventory.file });
    }
    if (!parent.children.includes(childName)) parent.children.push(childName);
    if (!child.parents.includes(parentName)) child.parents.push(parentName);
  }

  /** ansible-core's reconcile_inventory: top groups under `all`, hosts of no group in `ungrouped`. */
  finish(): Inventory {
    const inv = this.inventory;
    const ungrouped = inv.groups.get('ungrouped') as Group;
    for (const group of inv.groups.values()) {
      if (group.name !== 'all' && !group.parents.length) this.child('all', group.name);
    }
    const grouped = new Set<string>();
    for (const group of inv.groups.values()) {
      if (group.name !== 'all' && group.name !== 'ungrouped') for (const h of group.hosts) grouped.add(h);
    }
    ungrouped.hosts = inv.hosts.filter((h) => !grouped.has(h));
    return inv;
  }
}

export function ancestors(inv: Inventory, name: string): Set<string> {
  const seen = new Set<string>();
  const walk = (n: string): void => {
    for (const p of inv.groups.get(n)?.parents ?? []) {
      if (!seen.has(p)) {
        seen.add(p);
        walk(p);
      }
    }
  };
  walk(name);
  return seen;
}

/** The hosts of a group and of every group below it, own hosts first, each once. */
export function groupHosts(inv: Inventory, name: string): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const visited = new Set<string>();
  let level = [name];
  while (level.length) {
    const next: string[] = [];
    for (const g of level) {
      if (visited.has(g)) continue;
      visited.add(g);
      const group = inv.groups.get(g);
      if (!group) continue;
      for (const h of group.hosts) if (!seen.has(h)) { seen.add(h); out.push(h); }
      next.push(...group.children);
    }
    level = next;
  }
  return out;
}

/** The groups a host belongs to, directly or through children, without `all`. */
export function groupsOf(inv: Inventory, host: string): string[] {
  const direct = [...inv.groups.values()].filter((g) => g.hosts.includes(host)).map((g) => g.name);
  const found = new Set(direct);
  for (const g of direct) for (const a of ancestors(inv, g)) found.add(a);
  found.delete('all');
  return [...found];
}

/** A group's depth below `all`: the longest path of parents (ansible-core's Group.depth). */
function depth(inv: Inventory, name: string, memo = new Map<string, number>()): number {
  if (name === 'all') return 0;
  const known = memo.get(name);
  if (known !== undefined) return known;
  const parents = inv.groups.get(name)?.parents ?? [];
  const d = parents.length ? Math.max(...parents.map((p) => depth(inv, p, memo))) + 1 : 1;
  memo.set(name, d);
  return d;
}

/** Groups in the order their variables apply: shallow first, then ansible_group_priority, then name. */
export function sortGroups(inv: Inventory, names: readonly string[]): string[] {
  const memo = new Map<string, number>();
  const priority = (n: string): number => Number(inv.groups.get(n)?.vars['ansible_group_priority'] ?? 1) || 1;
  return [...names].sort((a, b) => depth(inv, a, memo) - depth(inv, b, memo) || priority(a) - priority(b) || (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * A host's variables with Ansible's precedence (VariableManager, default VARIABLE_PRECEDENCE):
 * the inventory's `all` vars, the other groups' inventory vars, group_vars/all, group_vars/<group>,
 * the host's inventory vars, host_vars/<host>. Later wins; mappings are replaced, not merged (hash_behaviour=replace).
 */
export function hostVariables(inv: Inventory, host: string): Vars {
  const groups = sortGroups(inv, groupsOf(inv, host));
  return Object.assign(
    {},
    inv.groups.get('all')?.vars,
    ...groups.map((g) => inv.groups.get(g)?.vars),
    inv.groupVarFiles.get('all'),
    ...groups.map((g) => inv.groupVarFiles.get(g)),
    inv.hostVars.get(host),
    inv.hostVarFiles.get(host),
  ) as Vars;
}
