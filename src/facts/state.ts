import { quoteArg, renderArgv } from '../core/quote.js';
import { parseOsRelease } from './os.js';

/**
 * Facts about a host's state that steps read before they plan: files, packages, users, services.
 * Each is a read-only POSIX sh fragment (arguments quoted by quoteArg) and a pure parser. The engine
 * gathers the facts of all remaining steps in one round trip; `key` lets equal requests share a read.
 */
export interface FactRequest<T> {
  readonly key: string;
  readonly script: string;
  parse(output: string): T;
}

/** The gathered values, looked up by the same request objects (or equal ones) the step declared. */
export interface FactValues {
  get<T>(request: FactRequest<T>): T;
}

export interface FileState {
  /** A regular file (a link is followed). */
  exists: boolean;
  /** Permission bits, e.g. 0o644; null when absent. */
  mode: number | null;
  owner: string | null;
  group: string | null;
  /** The exact bytes, null when absent. */
  bytes: Buffer | null;
  /** The bytes decoded as UTF-8, for parsers; compare and restore with `bytes`. */
  content: string | null;
}

const absentFile: FileState = { exists: false, mode: null, owner: null, group: null, bytes: null, content: null };

/** Reads the file at the path that the shell expression `pathExpr` gives on the host (quoted or computed). */
function fileStateScript(pathExpr: string): string {
  return `p=${pathExpr}; if [ -f "$p" ]; then stat -L -c 'present %a %U %G' "$p" && base64 < "$p"; else echo absent; fi`;
}

function parseFileState(output: string): FileState {
  const [head = '', ...body] = output.split('\n');
  const match = /^present ([0-7]+) (\S+) (\S+)$/.exec(head);
  if (!match) return absentFile;
  const bytes = Buffer.from(body.join(''), 'base64');
  return { exists: true, mode: parseInt(match[1] ?? '0', 8), owner: match[2] ?? null, group: match[3] ?? null, bytes, content: bytes.toString('utf8') };
}

/** File content travels base64-encoded: exact bytes, and no way for a file to forge a section marker. */
export function fileFact(path: string): FactRequest<FileState> {
  return { key: `file:${path}`, script: fileStateScript(quoteArg(path)), parse: parseFileState };
}

/**
 * A file whose path only the host can work out, e.g. the configuration of whichever PostgreSQL
 * cluster is installed: `pathScript` is fixed shell text that prints the path (nothing when unknown).
 */
export function computedFileFact(key: string, pathScript: string): FactRequest<FileState> {
  return { key: `file@${key}`, script: fileStateScript(`$(${pathScript})`), parse: parseFileState };
}

export interface DirectoryState {
  exists: boolean;
  mode: number | null;
  owner: string | null;
  group: string | null;
}

export function directoryFact(path: string): FactRequest<DirectoryState> {
  const p = quoteArg(path);
  return {
    key: `directory:${path}`,
    script: `if [ -d ${p} ]; then stat -L -c 'dir %a %U %G' ${p}; else echo absent; fi`,
    parse(output) {
      const match = /^dir ([0-7]+) (\S+) (\S+)$/.exec(output.trim());
      return match ? { exists: true, mode: parseInt(match[1] ?? '0', 8), owner: match[2] ?? null, group: match[3] ?? null } : { exists: false, mode: null, owner: null, group: null };
    },
  };
}

/** Installed versions of Debian packages; null for a package that is not installed. */
export function packagesFact(names: readonly string[]): FactRequest<Record<string, string | null>> {
  const sorted = [...new Set(names)].sort();
  return {
    key: `packages:${sorted.join(',')}`,
    script: `dpkg-query -W -f='\${Package}\\t\${db:Status-Abbrev}\\t\${Version}\\n' ${renderArgv(sorted)} 2>/dev/null; true`,
    parse(output) {
      const versions: Record<string, string | null> = Object.fromEntries(sorted.map((n) => [n, null]));
      for (const line of output.split('\n')) {
        const [name, status, version] = line.split('\t');
        // "ii " = wanted install, currently installed ("hi " when held); anything else (rc, un) is not usable.
        if (name && name in versions && /^[ih]i/.test(status ?? '') && version) versions[name] = version;
      }
      return versions;
    },
  };
}

export interface UserState {
  exists: boolean;
  uid: number | null;
  home: string | null;
  shell: string | null;
  groups: string[];
  /** Content of ~/.ssh/authorized_keys, null when absent. */
  authorizedKeys: string | null;
}

export function userFact(name: string): FactRequest<UserState> {
  const n = quoteArg(name);
  return {
    key: `user:${name}`,
    script: [
      `if e=$(getent passwd ${n}); then`,
      '  printf "%s\\n" "$e"; id -nG ' + n,
      '  h=$(printf "%s" "$e" | cut -d: -f6)',
      '  if [ -f "$h/.ssh/authorized_keys" ]; then echo keys; base64 < "$h/.ssh/authorized_keys"; fi',
      'fi',
    ].join('\n'),
    parse(output) {
      const [passwd = '', groups = '', marker, ...keys] = output.split('\n');
      const fields = passwd.split(':');
      if (fields.length < 7) return { exists: false, uid: null, home: null, shell: null, groups: [], authorizedKeys: null };
      return {
        exists: true,
        uid: Number(fields[2]),
        home: fields[5] ?? null,
        shell: fields[6] ?? null,
        groups: groups.split(/\s+/).filter(Boolean),
        authorizedKeys: marker === 'keys' ? Buffer.from(keys.join(''), 'base64').toString('utf8') : null,
      };
    },
  };
}

export interface ServiceState {
  /** systemctl is-enabled: enabled, disabled, static, masked, not-found, ... */
  enabled: string;
  /** systemctl is-active: active, inactive, failed, activating, ... */
  active: string;
}

export function serviceFact(unit: string): FactRequest<ServiceState> {
  const u = quoteArg(unit);
  return {
    key: `service:${unit}`,
    script: `printf '%s\\n' "$(systemctl is-enabled ${u} 2>/dev/null || true)" "$(systemctl is-active ${u} 2>/dev/null || true)"`,
    parse(output) {
      const [enabled = '', active = ''] = output.split('\n');
      return { enabled: enabled.trim() || 'not-found', active: active.trim() || 'unknown' };
    },
  };
}

export interface CommandState {
  exitCode: number;
  stdout: string;
}

/** A read-only command's output and exit code, e.g. `ufw status verbose` or `sshd -T`. */
export function commandFact(argv: readonly [string, ...string[]]): FactRequest<CommandState> {
  return {
    key: `command:${JSON.stringify(argv)}`,
    script: `${renderArgv(argv)} 2>&1; printf '\\n@@rc=%s' "$?"`,
    parse(output) {
      const at = output.lastIndexOf('\n@@rc=');
      if (at < 0) return { exitCode: -1, stdout: output };
      return { exitCode: Number(output.slice(at + 6)), stdout: output.slice(0, at) };
    },
  };
}

/** sshd's effective configuration (`sshd -T`); ufw and fail2ban both read it, in one shared request. */
export const sshdConfigFact = (): FactRequest<CommandState> => commandFact(['sshd', '-T']);

/** The ports of every `port N` line of `sshd -T`, each once. */
export function parseSshdPorts(state: CommandState): number[] {
  if (state.exitCode !== 0) return [];
  return [...new Set([...state.stdout.matchAll(/^port (\d+)$/gm)].map((m) => Number(m[1])))].filter((n) => n >= 1 && n <= 65535);
}

/** Where the symbolic link at `path` points, or null when there is no link there. */
export function linkFact(path: string): FactRequest<string | null> {
  const p = quoteArg(path);
  return {
    key: `link:${path}`,
    script: `if [ -L ${p} ]; then echo link; readlink -- ${p}; else echo none; fi`,
    parse(output) {
      const [kind, target] = output.split('\n');
      return kind === 'link' && target !== undefined ? target : null;
    },
  };
}

/** Packages marked on hold (apt-mark showhold): apt never upgrades or removes them. */
export function heldPackagesFact(): FactRequest<string[]> {
  return {
    key: 'held-packages',
    script: 'apt-mark showhold 2>/dev/null; true',
    parse: (output) => output.split('\n').map((l) => l.trim()).filter(Boolean).sort(),
  };
}

export interface GroupState {
  exists: boolean;
  gid: number | null;
  members: string[];
}

export function groupFact(name: string): FactRequest<GroupState> {
  return {
    key: `group:${name}`,
    script: `getent group ${quoteArg(name)}; true`,
    parse(output) {
      const fields = output.trim().split(':');
      if (fields.length < 4) return { exists: false, gid: null, members: [] };
      return { exists: true, gid: Number(fields[2]), members: (fields[3] ?? '').split(',').filter(Boolean) };
    },
  };
}

/** The running value of a kernel parameter (`sysctl -n`), whitespace collapsed; null when it does not exist. */
export function sysctlFact(key: string): FactRequest<string | null> {
  return {
    key: `sysctl:${key}`,
    script: `if v=$(sysctl -n ${quoteArg(key)} 2>/dev/null); then echo "value $v"; else echo none; fi`,
    parse: (output) => (output.startsWith('value ') ? output.slice(6).trim().split(/\s+/).join(' ') : null),
  };
}

/** os-release(5) fields (ID, ID_LIKE, VERSION_CODENAME, ...), parsed by the same parser as the hardware probe. */
export function osReleaseFact(): FactRequest<Record<string, string>> {
  return { key: 'os-release', script: 'cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release', parse: parseOsRelease };
}

/** The distribution family a step picks origins and routes by: ubuntu (and derivatives), debian, or unknown. */
export function familyOf(release: Record<string, string>): 'debian' | 'ubuntu' | 'unknown' {
  const ids = [release['ID'] ?? '', ...(release['ID_LIKE'] ?? '').split(/\s+/)].map((s) => s.toLowerCase());
  return ids.includes('ubuntu') ? 'ubuntu' : ids.includes('debian') ? 'debian' : 'unknown';
}
