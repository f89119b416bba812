/**
 * Ansible's INI inventory format, as ansible-core's ini plugin reads it: `[group]`, `[group:vars]`,
 * `[group:children]`, hosts before any section in `ungrouped`, `host[:port] key=value ...` lines with
 * shell-like quoting, `#` and `;` comments, ranges.
 */
import { isIP } from 'node:net';
import { ConfigError } from '../core/errors.js';
import { InventoryBuilder, type Inventory, type Vars } from './model.js';
import { expandHostRange } from './range.js';

/** shlex.split(line, comments=True): words, quotes, backslashes; `#` at a word's start ends the line (comments: false keeps it, as shlex.split's default). */
export function shellWords(line: string, where: string, comments = true): string[] {
  const words: string[] = [];
  let word: string | null = null;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < line.length; i += 1) {
    const c = line[i] as string;
    if (quote) {
      if (c === quote) quote = null;
      else if (c === '\\' && quote === '"' && (line[i + 1] === '"' || line[i + 1] === '\\')) word += line[++i] as string;
      else word += c;
    } else if (/\s/.test(c)) {
      if (word !== null) words.push(word);
      word = null;
    } else if (c === '#' && word === null && comments) {
      break;
    } else if (c === '"' || c === "'") {
      quote = c;
      word ??= '';
    } else if (c === '\\' && i + 1 < line.length) {
      word = (word ?? '') + (line[++i] as string);
    } else {
      word = (word ?? '') + c;
    }
  }
  if (quote) throw new ConfigError('unclosed quotation', { location: where });
  if (word !== null) words.push(word);
  return words;
}

/**
 * An INI value as Ansible's _parse_value reads it: Python literals (numbers, True/False/None, quoted
 * strings, lists, dicts in JSON form) become values; anything else stays the text it is.
 */
export function parseIniValue(text: string): unknown {
  if (/^[-+]?\d+$/.test(text)) return Number(text);
  if (/^[-+]?(\d+\.\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) return Number(text);
  if (text === 'True') return true;
  if (text === 'False') return false;
  if (text === 'None') return null;
  const quoted = /^(["'])(.*)\1$/s.exec(text);
  if (quoted && !(quoted[2] ?? '').includes(quoted[1] as string)) return quoted[2];
  if (/^[[{]/.test(text)) {
    try {
      return JSON.parse(text.replace(/'/g, '"').replace(/\bTrue\b/g, 'true').replace(/\bFalse\b/g, 'false').replace(/\bNone\b/g, 'null'));
    } catch {
      return text;
    }
  }
  return text;
}

/** `host`, `host:port`, `[v6addr]:port`, `web[01:10]:2222`: the name(s) and the port. */
export function splitHostPort(pattern: string, where: string): { names: string[]; port?: number } {
  const v6 = /^\[([0-9A-Fa-f:.]+)\](?::(\d+))?$/.exec(pattern);
  if (v6?.[1] && v6[1].includes(':')) return { names: [v6[1]], ...(v6[2] ? { port: Number(v6[2]) } : {}) };
  const outside = pattern.replace(/\[[^\]]*\]/g, '');
  const colons = outside.split(':').length - 1;
  let name = pattern;
  let port: number | undefined;
  if (colons === 1) {
    const m = /^(.*):(\d+)$/.exec(pattern);
    if (!m?.[1]) throw new ConfigError('not a host: expected host, host:port or a range', { location: where });
    name = m[1];
    port = Number(m[2]);
    if (port < 1 || port > 65535) throw new ConfigError(`port ${port} is out of range`, { location: where });
  } else if (colons > 1) {
    if (isIP(pattern) !== 6) throw new ConfigError('not a host: more than one ":" outside brackets, and not an IPv6 address', { location: where });
    return { names: [pattern] }; // a bare IPv6 address
  }
  let names: string[];
  try {
    names = expandHostRange(name);
  } catch (error) {
    throw new ConfigError((error as Error).message, { location: where });
  }
  return { names, ...(port === undefined ? {} : { port }) };
}

function keyValues(words: readonly string[], where: string): Vars {
  const vars: Vars = {};
  for (const word of words) {
    const eq = word.indexOf('=');
    if (eq < 1) throw new ConfigError('expected key=value', { location: where, hint: 'host variables on a host line are written key=value' });
    if (word.slice(0, eq) in vars) throw new ConfigError(`variable ${word.slice(0, eq).replace(/[^\w.-]/g, '?').slice(0, 64)} is given twice on this line`, { location: where, hint: 'keep one of them' });
    vars[word.slice(0, eq)] = parseIniValue(word.slice(eq + 1));
  }
  return vars;
}

export function parseIni(text: string, file: string): Inventory {
  const inv = new InventoryBuilder(file);
  let group = 'ungrouped';
  let section: 'hosts' | 'vars' | 'children' = 'hosts';
  /** Groups named only in [x:vars], which Ansible refuses unless x is defined somewhere. */
  const varsOnly = new Map<string, string>();
  const defined = new Set(['all', 'ungrouped']);
  for (const [index, raw] of text.split(/\r?\n/).entries()) {
    const where = `${file}:${index + 1}`;
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    if (line.startsWith('[')) {
      const header = /^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:[#;].*)?$/.exec(line);
      if (!header?.[1]) throw new ConfigError('malformed section header', { location: where, hint: 'sections are [group], [group:vars] or [group:children]' });
      group = header[1];
      const kind = header[2] ?? 'hosts';
      if (kind !== 'hosts' && kind !== 'vars' && kind !== 'children') {
        throw new ConfigError(`section [${group}:${kind}] has an unknown kind "${kind}"`, { location: where, hint: 'use :vars or :children' });
      }
      section = kind;
      if (section === 'vars') {
        if (!defined.has(group) && !varsOnly.has(group)) varsOnly.set(group, where);
      } else {
        defined.add(group);
        inv.group(group);
      }
      continue;
    }
    if (section === 'vars') {
      const eq = line.indexOf('=');
      if (eq < 1) throw new ConfigError(`expected key=value in [${group}:vars]`, { location: where });
      inv.group(group).vars[line.slice(0, eq).trim()] = parseIniValue(line.slice(eq + 1).trim());
    } else if (section === 'children') {
      const words = shellWords(line, where);
      if (words.length !== 1) throw new ConfigError(`expected one group name in [${group}:children]`, { location: where });
      defined.add(words[0] as string);
      inv.child(group, words[0] as string);
    } else {
      const [pattern, ...rest] = shellWords(line, where);
      if (!pattern) continue;
      const { names, port } = splitHostPort(pattern, where);
      const vars = keyValues(rest, where);
      for (const name of names) inv.host(name, group, { ...(port === undefined ? {} : { ansible_port: port }), ...vars });
    }
  }
  for (const [name, where] of varsOnly) {
    if (!defined.has(name)) throw new ConfigError(`section [${name}:vars] is for a group that is never defined`, { location: where });
  }
  return inv.finish();
}
