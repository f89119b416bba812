/**
 * Ansible's host patterns (ansible-core's InventoryManager), for `--limit`: group or host names,
 * shell globs, `~regex`, `a:b` or `a,b` union, `a:&b` intersection, `a:!b` exclusion (applied after
 * every union, whatever the order written), `group[0]` / `group[0:2]` subscripts (inclusive), `all`,
 * and `@file` for a file of patterns, one a line.
 */
import { readFileSync } from 'node:fs';
import { UsageError } from '../core/errors.js';
import { groupHosts, type Inventory } from './model.js';

/** Splits on commas when there are any, else on colons outside brackets (so ranges and subscripts survive). */
export function splitPatterns(pattern: string): string[] {
  const parts = pattern.includes(',') ? pattern.split(',') : pattern.match(/(?:[^\s:[\]]|\[[^\]]*\])+/g) ?? [];
  return parts.map((p) => p.trim()).filter(Boolean);
}

/** Python's fnmatch.translate, anchored at both ends, case-sensitive as Ansible compiles it. */
export function globToRegExp(glob: string): RegExp {
  let out = '';
  for (let i = 0; i < glob.length; i += 1) {
    const c = glob[i] as string;
    if (c === '*') out += '.*';
    else if (c === '?') out += '.';
    else if (c === '[') {
      let j = i + 1;
      if (glob[j] === '!') j += 1;
      if (glob[j] === ']') j += 1;
      while (j < glob.length && glob[j] !== ']') j += 1;
      if (j >= glob.length) out += '\\[';
      else {
        let set = glob.slice(i + 1, j).replace(/\\/g, '\\\\');
        if (set.startsWith('!')) set = `^${set.slice(1)}`;
        else if (set.startsWith('^')) set = `\\${set}`;
        out += `[${set}]`;
        i = j;
      }
    } else out += c.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
  }
  return new RegExp(`^(?:${out})$`, 's');
}

function matcher(pattern: string): (name: string) => boolean {
  if (pattern.startsWith('~')) {
    let re: RegExp;
    try {
      re = new RegExp(`^(?:${pattern.slice(1)})`);
    } catch (error) {
      throw new UsageError(`--limit: "${pattern}" is not a regular expression: ${(error as Error).message}`);
    }
    return (name) => re.test(name);
  }
  const re = globToRegExp(pattern);
  return (name) => re.test(name);
}

const withSubscript = /^(.+)\[(?:(-?\d+)|(\d+)([:-])(\d*))\]$/s;

function matchOne(inv: Inventory, raw: string): string[] {
  let pattern = raw;
  let subscript: [number, number | null] | null = null;
  const m = pattern.startsWith('~') ? null : withSubscript.exec(pattern);
  if (m) {
    pattern = m[1] as string;
    subscript = m[2] !== undefined ? [Number(m[2]), null] : [Number(m[3]), m[5] ? Number(m[5]) : -1];
  }
  const test = matcher(pattern);
  const results: string[] = [];
  const groups = [...inv.groups.keys()].filter(test);
  for (const g of groups) results.push(...groupHosts(inv, g));
  if (!groups.length || pattern.startsWith('~') || /[.?*[]/.test(pattern)) results.push(...inv.hosts.filter(test));
  let hosts = [...new Set(results)];
  if (subscript) {
    const [start, end] = subscript;
    if (end === null) {
      const one = hosts.at(start);
      if (one === undefined) throw new UsageError(`--limit: no host matched the subscripted pattern "${raw}"`);
      hosts = [one];
    } else hosts = hosts.slice(start, (end === -1 ? hosts.length - 1 : end) + 1);
  }
  return hosts;
}

/** Regular patterns first, then `&` intersections, then `!` exclusions; no regular pattern means all. */
function orderPatterns(patterns: readonly string[]): string[] {
  const regular = patterns.filter((p) => p[0] !== '&' && p[0] !== '!');
  return [...(regular.length ? regular : ['all']), ...patterns.filter((p) => p[0] === '&'), ...patterns.filter((p) => p[0] === '!')];
}

/** Expands `@file` entries into the patterns the file lists. */
function withFiles(patterns: readonly string[]): string[] {
  return patterns.flatMap((p) => {
    if (!p.startsWith('@')) return [p];
    try {
      return readFileSync(p.slice(1), 'utf8').split('\n').map((l) => l.trim()).filter(Boolean);
    } catch (error) {
      throw new UsageError(`--limit: cannot read the limit file ${p.slice(1)}: ${(error as Error).message}`);
    }
  });
}

/** The inventory's hosts a pattern selects, in the order the inventory first names them. */
export function selectHosts(inv: Inventory, pattern: string): string[] {
  let hosts: string[] = [];
  for (const p of orderPatterns(withFiles(splitPatterns(pattern)))) {
    if (inv.hosts.includes(p)) {
      if (!hosts.includes(p)) hosts.push(p);
      continue;
    }
    const that = new Set(matchOne(inv, p[0] === '&' || p[0] === '!' ? p.slice(1) : p));
    if (p[0] === '!') hosts = hosts.filter((h) => !that.has(h));
    else if (p[0] === '&') hosts = hosts.filter((h) => that.has(h));
    else for (const h of that) if (!hosts.includes(h)) hosts.push(h);
  }
  const chosen = new Set(hosts);
  return inv.hosts.filter((h) => chosen.has(h));
}
