import type { SshdEffective, SshdFile } from '../facts/sshd.js';

/**
 * How sshd reads its configuration, modelled well enough to say which line beats zanuri's drop-in:
 * sshd keeps the first value it reads for a keyword; Include expands globs in byte order at the
 * point of the Include line; a Match block lasts until the next Match (or the end of its file) and
 * overrides what was read outside any Match for connections it matches. Pure; tested on real files.
 */

export const mainConfig = '/etc/ssh/sshd_config';

export interface Directive {
  file: string;
  /** 1-based. */
  line: number;
  /** The line as written. */
  text: string;
  /** Lower case, aliases resolved (challengeresponseauthentication -> kbdinteractiveauthentication). */
  keyword: string;
  value: string;
  /** The criteria of the Match block it is in ("User backup Address 10.0.0.0/8"), or null outside any. */
  match: string | null;
}

export interface ReadOrder {
  directives: Directive[];
  /** Where the drop-in is read (index into directives: everything before it is read first), or null if no Include reads it. */
  dropIn: { index: number; match: string | null; via: string } | null;
}

const aliases: Record<string, string> = { challengeresponseauthentication: 'kbdinteractiveauthentication', skeyauthentication: 'kbdinteractiveauthentication' };

/** Keyword and arguments of one config line (`Key value`, `Key=value`); null for blanks and comments. */
export function tokenize(line: string): { keyword: string; args: string[] } | null {
  const trimmed = line.trim();
  if (!trimmed || trimmed.startsWith('#')) return null;
  const m = /^([A-Za-z0-9]+)(?:\s*=\s*|\s+)(.*)$/.exec(trimmed) ?? /^([A-Za-z0-9]+)()$/.exec(trimmed);
  if (!m) return null;
  const args: string[] = [];
  for (const word of (m[2] ?? '').match(/"[^"]*"|\S+/g) ?? []) {
    if (word.startsWith('#')) break;
    args.push(word.replace(/^"(.*)"$/, '$1'));
  }
  const keyword = (m[1] as string).toLowerCase();
  return { keyword: aliases[keyword] ?? keyword, args };
}

/** glob(7) for one path: `*` and `?` never match `/`; `[...]` classes. */
export function globMatch(pattern: string, path: string): boolean {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) re += '\\[';
      else {
        const body = pattern.slice(i + 1, end).replace(/^!/, '^').replace(/\\/g, '\\\\');
        re += `[${body}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`).test(path);
}

const byteOrder = (a: string, b: string): number => (Buffer.compare(Buffer.from(a), Buffer.from(b)));

/**
 * The directives of every file in the order sshd reads them, and where the drop-in at `dropIn`
 * is read, whether or not it exists yet. Null when there is no sshd_config (sshd not installed).
 */
export function readOrder(files: readonly SshdFile[], dropIn: string): ReadOrder | null {
  const byPath = new Map(files.map((f) => [f.path, f]));
  if (!byPath.has(mainConfig)) return null;
  const directives: Directive[] = [];
  let position: ReadOrder['dropIn'] = null;
  const visit = (path: string, context: string | null, depth: number): void => {
    const file = byPath.get(path);
    if (!file || depth > 16) return;
    let match = context;
    file.content.split('\n').forEach((text, i) => {
      const parsed = tokenize(text);
      if (!parsed) return;
      if (parsed.keyword === 'match') {
        match = parsed.args.join(' ');
        return;
      }
      if (parsed.keyword === 'include') {
        for (const arg of parsed.args) {
          const pattern = arg.startsWith('/') ? arg : `/etc/ssh/${arg}`;
          const candidates = [...new Set([...byPath.keys(), dropIn])].filter((p) => p !== mainConfig && globMatch(pattern, p)).sort(byteOrder);
          for (const included of candidates) {
            if (included === dropIn && position === null) position = { index: directives.length, match, via: `${path}:${i + 1}` };
            visit(included, match, depth + 1);
          }
        }
        return;
      }
      directives.push({ file: path, line: i + 1, text, keyword: parsed.keyword, value: parsed.args.join(' '), match });
    });
  };
  visit(mainConfig, null, 0);
  return { directives, dropIn: position };
}

/** The directives of a drop-in as keyword -> value (outside any Match; first wins). */
export function directivesOf(text: string): Map<string, string> {
  const wanted = new Map<string, string>();
  for (const line of text.split('\n')) {
    const parsed = tokenize(line);
    if (!parsed) continue;
    if (parsed.keyword === 'match') break;
    if (!wanted.has(parsed.keyword)) wanted.set(parsed.keyword, parsed.args.join(' '));
  }
  return wanted;
}

/** Seconds of an sshd time value (30, 1m30s, 2h), or null. */
function seconds(value: string): number | null {
  if (/^\d+$/.test(value)) return Number(value);
  const parts = [...value.toLowerCase().matchAll(/(\d+)([smhdw])/g)];
  if (!parts.length || parts.map((p) => p[0]).join('') !== value.toLowerCase()) return null;
  const unit: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
  return parts.reduce((sum, p) => sum + Number(p[1]) * (unit[p[2] as string] ?? 0), 0);
}

/** A value as `sshd -T` prints it, so a config value and an effective one compare. */
export function normalize(keyword: string, value: string): string {
  const v = value.trim();
  if (keyword === 'permitrootlogin') return v.toLowerCase() === 'without-password' ? 'prohibit-password' : v.toLowerCase();
  if (keyword === 'logingracetime' || keyword === 'clientaliveinterval') return String(seconds(v) ?? v);
  if (keyword === 'compression') return v.toLowerCase() === 'delayed' ? 'yes' : v.toLowerCase();
  return v.toLowerCase();
}

/** Keywords that add up instead of first-wins, or that sshd -T prints differently: not compared. */
const notCompared = new Set(['allowusers', 'denyusers', 'allowgroups', 'denygroups', 'acceptenv', 'hostkey', 'port', 'listenaddress', 'subsystem', 'setenv', 'include', 'match']);

/** What decides whether an account gets in without a key: judged for each user and in every Match block. */
export const authKeywords = ['passwordauthentication', 'kbdinteractiveauthentication', 'permitemptypasswords', 'hostbasedauthentication', 'permitrootlogin'] as const;

const rootRank: Record<string, number> = { no: 0, 'forced-commands-only': 1, 'prohibit-password': 2, yes: 3 };

/** Does `value` let more in than `wanted` for this authentication keyword? */
function weaker(keyword: string, value: string, wanted: string): boolean {
  const v = normalize(keyword, value);
  const w = normalize(keyword, wanted);
  if (keyword === 'permitrootlogin') return (rootRank[v] ?? 3) > (rootRank[w] ?? 3);
  return w === 'no' && v !== 'no';
}

export interface Conflict {
  directive: Directive;
  why: string;
}

/**
 * The lines that keep the drop-in's settings from taking effect: a global line read before the
 * drop-in with another value (it wins), and any Match block line that lets more accounts in
 * without a key than the drop-in does (it overrides the drop-in for the connections it matches).
 */
export function findConflicts(order: ReadOrder, dropIn: string, wanted: ReadonlyMap<string, string>): Conflict[] {
  const conflicts: Conflict[] = [];
  order.directives.forEach((d, index) => {
    if (d.file === dropIn || notCompared.has(d.keyword)) return;
    const want = wanted.get(d.keyword);
    if (want === undefined) return;
    const where = `${d.file}:${d.line} "${d.text.trim()}"`;
    if (d.match === null && order.dropIn && index < order.dropIn.index && normalize(d.keyword, d.value) !== normalize(d.keyword, want)) {
      conflicts.push({ directive: d, why: `${where} is read before ${dropIn} and wins over its "${d.keyword} ${want}"` });
    } else if (d.match !== null && (authKeywords as readonly string[]).includes(d.keyword) && weaker(d.keyword, d.value, want)) {
      conflicts.push({ directive: d, why: `${where} in "Match ${d.match}" lets in more than "${d.keyword} ${want}" for the connections it matches` });
    }
  });
  return conflicts;
}

/** The file with each conflicting line replaced by `replacement(conflict)` (the lines it turns off, commented). */
export function neutralise(file: SshdFile, conflicts: readonly Conflict[], replacement: (c: Conflict) => string): string {
  const byLine = new Map(conflicts.filter((c) => c.directive.file === file.path).map((c) => [c.directive.line, c]));
  return file.content.split('\n').map((text, i) => {
    const conflict = byLine.get(i + 1);
    return conflict ? replacement(conflict) : text;
  }).join('\n');
}

/**
 * Where sshd's effective configuration disagrees with the drop-in: every compared keyword for the
 * connection no Match block applies to, and the authentication keywords for each user.
 */
export function mismatches(effective: SshdEffective, wanted: ReadonlyMap<string, string>): string[] {
  const wrong: string[] = [];
  const compare = (values: ReadonlyMap<string, string>, keywords: readonly string[], who: string): void => {
    for (const keyword of keywords) {
      const want = wanted.get(keyword);
      const have = values.get(keyword);
      if (want === undefined || have === undefined || notCompared.has(keyword)) continue;
      if (normalize(keyword, have) !== normalize(keyword, want)) wrong.push(`${keyword} ${have} (not ${want}) ${who}`);
    }
  };
  if (effective.global) compare(effective.global, [...wanted.keys()], 'outside any Match block');
  for (const [user, values] of Object.entries(effective.users)) {
    if (values) compare(values, authKeywords, `for ${user} (${effective.spec})`);
  }
  return wrong;
}
