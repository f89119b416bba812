import { quoteArg, renderArgv } from '../core/quote.js';

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
  exists: boolean;
  /** Octal permission bits as stat prints them, e.g. "644". */
  mode: string | null;
  owner: string | null;
  group: string | null;
  content: string | null;
}

/** File content travels base64-encoded: exact bytes, and no way for a file to forge a section marker. */
export function fileFact(path: string): FactRequest<FileState> {
  const p = quoteArg(path);
  return {
    key: `file:${path}`,
    script: `if [ -f ${p} ]; then stat -c 'present %a %U %G' ${p} && base64 < ${p}; else echo absent; fi`,
    parse(output) {
      const [head = '', ...body] = output.split('\n');
      const match = /^present (\d+) (\S+) (\S+)$/.exec(head);
      if (!match) return { exists: false, mode: null, owner: null, group: null, content: null };
      return { exists: true, mode: match[1] ?? null, owner: match[2] ?? null, group: match[3] ?? null, content: Buffer.from(body.join(''), 'base64').toString('utf8') };
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
        // "ii " = wanted install, currently installed; anything else (rc, un) is not usable.
        if (name && name in versions && status?.startsWith('ii') && version) versions[name] = version;
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
