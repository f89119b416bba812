import { renderArgv } from '../core/quote.js';
import type { FactRequest } from './state.js';

/**
 * sshd as it really is: the configuration files in the order sshd reads them, the effective
 * configuration (`sshd -T`, and with `-C` for one user connecting from one address, Match blocks
 * applied), and the SSH connection zanuri itself arrived on, as the host sees it.
 */

/** The zanuri session as the host sees it: SSH_CONNECTION of the nearest ancestor process that has one. */
export interface SshSession {
  /** The client address the host sees (after NAT or a ProxyJump bastion: theirs). */
  client: string;
  clientPort: number;
  server: string;
  serverPort: number;
}

/**
 * Sets $zc to the SSH_CONNECTION of this shell's nearest ancestor that has one. Facts run as root,
 * often under `sudo -n`, which drops SSH_CONNECTION from the environment; the login shell above
 * it still has it in /proc/PID/environ. Empty for a run with no SSH session above it (a console).
 */
const sessionSnippet = `zc=; zp=$$
while [ -z "$zc" ] && [ "\${zp:-0}" -gt 1 ] 2>/dev/null; do
  zc=$(tr '\\000' '\\n' < /proc/$zp/environ 2>/dev/null | sed -n 's/^SSH_CONNECTION=//p' | head -n 1)
  zp=$(sed -n 's/^PPid:[[:space:]]*//p' /proc/$zp/status 2>/dev/null)
done`;

/** `client cport server sport` as sshd puts it in SSH_CONNECTION; IPv4-mapped IPv6 written as IPv4. */
export function parseSshConnection(line: string): SshSession | null {
  const m = line.trim().match(/^(\S+) (\d+) (\S+) (\d+)$/);
  if (!m) return null;
  const plain = (a: string): string => a.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i, '$1');
  const client = plain(m[1] ?? '');
  const server = plain(m[3] ?? '');
  if (!/^[0-9a-fA-F.:]+$/.test(client) || !/^[0-9a-fA-F.:]+$/.test(server)) return null;
  return { client, clientPort: Number(m[2]), server, serverPort: Number(m[4]) };
}

/** read: false when the fact was not gathered (a plan against a blank host); session: null when no SSH session is above the run. */
export interface SessionState {
  read: boolean;
  session: SshSession | null;
}

export function sshSessionFact(): FactRequest<SessionState> {
  return {
    key: 'ssh-session',
    script: `(\n${sessionSnippet}\nprintf 'session %s\\n' "$zc"\n)`,
    parse: (output) => {
      const m = output.match(/^session ?(.*)$/m);
      return m ? { read: true, session: parseSshConnection(m[1] ?? '') } : { read: false, session: null };
    },
  };
}

export interface SshdFile {
  path: string;
  content: string;
  mode: number;
  owner: string;
  group: string;
}

/**
 * /etc/ssh/sshd_config and every file its Include lines name (and theirs, up to 64 files), each
 * with its mode and owner. Include patterns are read from root-owned files and expanded by the
 * shell's globbing only (never evaluated): `set -f` while splitting, `set +f` to glob.
 */
const filesScript = `(
q=/etc/ssh/sshd_config; seen=' '; n=0
while [ -n "$q" ] && [ $n -lt 64 ]; do
  set -f; set -- $q; set +f
  f=$1; shift; q="$*"
  case "$seen" in *" $f "*) continue ;; esac
  seen="$seen$f "; n=$((n + 1))
  [ -f "$f" ] || continue
  printf '@@file %s\\n' "$(stat -L -c '%a %U %G' "$f") $f"
  base64 < "$f"
  set -f
  for pat in $(sed -n 's/^[[:space:]]*[Ii][Nn][Cc][Ll][Uu][Dd][Ee][[:space:]=][[:space:]=]*//p' "$f" | sed 's/[[:space:]]#.*//'); do
    case $pat in /*) ;; *) pat=/etc/ssh/$pat ;; esac
    set +f
    for g in $pat; do [ -f "$g" ] && q="$q $g"; done
    set -f
  done
  set +f
done
)`;

export function parseSshdFiles(output: string): SshdFile[] {
  const files: SshdFile[] = [];
  let current: { head: RegExpMatchArray; body: string[] } | null = null;
  const flush = (): void => {
    if (!current) return;
    const [, mode = '644', owner = 'root', group = 'root', path = ''] = current.head;
    files.push({ path, mode: parseInt(mode, 8), owner, group, content: Buffer.from(current.body.join(''), 'base64').toString('utf8') });
  };
  for (const line of output.split('\n')) {
    const head = line.match(/^@@file ([0-7]+) (\S+) (\S+) (\/\S+)$/);
    if (head) {
      flush();
      current = { head, body: [] };
    } else if (current) current.body.push(line.trim());
  }
  flush();
  return files;
}

export function sshdFilesFact(): FactRequest<SshdFile[]> {
  return { key: 'sshd-files', script: filesScript, parse: parseSshdFiles };
}

/** `sshd -T` output as keyword -> value; the first line of a keyword wins (port, hostkey repeat). */
export function parseSshdT(stdout: string): Map<string, string> {
  const values = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const m = line.trim().match(/^([a-z0-9]+) (.*)$/);
    if (m && !values.has(m[1] as string)) values.set(m[1] as string, m[2] as string);
  }
  return values;
}

export interface SshdEffective {
  /** What sshd reads when no Match block applies; null when sshd -T failed (not installed, bad config). */
  global: Map<string, string> | null;
  /** Per user, as that user connecting from this session's address (Match blocks applied). */
  users: Record<string, Map<string, string> | null>;
  /** The connection the per-user views were computed for ("addr=... " as given to sshd -T -C). */
  spec: string;
  /** sshd -T's complaint when it failed. */
  error: string | null;
}

/**
 * The effective configuration: `sshd -T`, then `sshd -T -C user=U,host=A,addr=A,laddr=L,lport=P`
 * for each user, where A, L and P come from this session's SSH_CONNECTION (127.0.0.1 on a console).
 * The users are fixed argv words (user names held to a strict pattern), quoted into the script.
 */
export function sshdEffectiveFact(users: readonly string[]): FactRequest<SshdEffective> {
  const names = [...new Set(users)];
  return {
    key: `sshd-effective:${names.join(',')}`,
    script: `(
${sessionSnippet}
set -f; set -- $zc; set +f
a=\${1:-127.0.0.1}; spec="host=$a,addr=$a\${3:+,laddr=$3}\${4:+,lport=$4}"
printf '@@spec %s\\n' "$spec"
printf '@@global\\n'; sshd -T 2>&1; printf '@@rc %s\\n' "$?"
for u in ${renderArgv(names.length ? names : ['root'])}; do
  printf '@@user %s\\n' "$u"; sshd -T -C "user=$u,$spec" 2>&1; printf '@@rc %s\\n' "$?"
done
)`,
    parse(output) {
      const result: SshdEffective = { global: null, users: Object.fromEntries(names.map((n) => [n, null])), spec: '', error: null };
      let name: string | null = null;
      let lines: string[] = [];
      for (const line of output.split('\n')) {
        const spec = line.match(/^@@spec (.*)$/);
        if (spec) { result.spec = spec[1] ?? ''; continue; }
        if (line === '@@global') { name = ''; lines = []; continue; }
        const user = line.match(/^@@user (\S+)$/);
        if (user) { name = user[1] ?? null; lines = []; continue; }
        const rc = line.match(/^@@rc (\d+)$/);
        if (rc && name !== null) {
          const ok = rc[1] === '0';
          const values = ok ? parseSshdT(lines.join('\n')) : null;
          if (!ok && result.error === null) result.error = lines.filter((l) => l.trim()).slice(-2).join(' | ') || `sshd -T exited ${rc[1]}`;
          if (name === '') result.global = values;
          else if (name in result.users) result.users[name] = values;
          name = null;
          continue;
        }
        if (name !== null) lines.push(line);
      }
      return result;
    },
  };
}

/** What the host's OpenSSH can do (`ssh -Q`: the client and sshd are one build); null per list when it cannot be read. */
export interface SshAlgorithms {
  kex: string[] | null;
  cipher: string[] | null;
  mac: string[] | null;
}

export function parseSshAlgorithms(output: string): SshAlgorithms {
  const lists: Record<string, string[] | null> = { kex: null, cipher: null, mac: null };
  let current: string | null = null;
  for (const line of output.split('\n')) {
    const head = line.trim().match(/^@@(kex|cipher|mac)$/);
    if (head) { current = head[1] as string; lists[current] = []; continue; }
    if (line.trim() === '@@none' && current) { lists[current] = null; current = null; continue; }
    if (current && /^[A-Za-z0-9@._+-]+$/.test(line.trim())) lists[current]?.push(line.trim());
  }
  const known = (list: string[] | null | undefined): string[] | null => (list && list.length ? list : null);
  return { kex: known(lists['kex']), cipher: known(lists['cipher']), mac: known(lists['mac']) };
}

export function sshAlgorithmsFact(): FactRequest<SshAlgorithms> {
  return {
    key: 'ssh-algorithms',
    script: `for q in kex cipher mac; do printf '@@%s\\n' "$q"; ssh -Q "$q" 2>/dev/null || printf '@@none\\n'; done`,
    parse: parseSshAlgorithms,
  };
}
