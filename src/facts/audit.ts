/**
 * What `zanuri audit` reads besides the facts of the steps it judges: sockets, set-user-ID and
 * world-writable files, accounts, pending updates, a pending reboot, time sync, AppArmor, auditd,
 * published container ports, held NVIDIA packages and PostgreSQL's listen scope and pg_hba rows
 * (postgresql-access.ts, the fact of the resource that judges them). Each is a read-only sh fragment plus a pure
 * parser. Anything a user of the host can name (a file, a process, an account, a container) travels
 * base64-encoded, so it can never forge a section marker, and the scans have their own deadline,
 * well inside the round trip's. /etc/shadow is read by awk on the host: only account names come
 * back, never a password field.
 */
import { postgresAccessFact } from './postgresql-access.js';
import type { FactRequest } from './state.js';
import { parseRebootRequired } from './reboot.js';
import type { RebootFacts } from './types.js';

const decode = (text: string): string => Buffer.from(text.replace(/\s+/g, ''), 'base64').toString('utf8');

/** The bounded filesystem scan: seconds, and the most files of each kind reported. */
export const scanSeconds = 30;
export const scanLimit = 200;

export interface Listener {
  protocol: 'tcp' | 'udp';
  /** The local address as ss prints it, without brackets or %interface; "*" and "0.0.0.0" / "::" are any address. */
  address: string;
  port: number;
  /** The process name (first of users:), null when ss could not tell. */
  process: string | null;
}

/** Loopback only: 127.0.0.0/8, ::1 and their IPv4-mapped forms. */
export const isLoopback = (address: string): boolean => /^(?:127\.|::1$|::ffff:127\.)/i.test(address);

/** `ss -H -ltnup`: one socket a line (netid state recv-q send-q local peer [users:((...))]). */
export function parseListeners(output: string): Listener[] {
  const seen = new Set<string>();
  const out: Listener[] = [];
  for (const line of decode(output).split('\n')) {
    const fields = line.trim().split(/\s+/);
    const [netid, , , , local] = fields;
    if ((netid !== 'tcp' && netid !== 'udp') || !local) continue;
    const at = local.lastIndexOf(':');
    const port = Number(local.slice(at + 1));
    if (at < 0 || !Number.isInteger(port) || port < 1 || port > 65535) continue;
    const address = local.slice(0, at).replace(/^\[|\]$/g, '').replace(/%.*$/, '');
    const process = /users:\(\("((?:[^"\\]|\\.)*)"/.exec(line)?.[1] ?? null;
    const key = `${netid} ${address} ${port}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ protocol: netid, address, port, process });
  }
  return out;
}

export const listenersFact = (): FactRequest<Listener[]> => ({
  key: 'audit:listeners',
  script: 'ss -H -ltnup 2>/dev/null | base64',
  parse: parseListeners,
});

export interface UfwState {
  /** null: ufw is not installed. */
  active: boolean | null;
  /** Rules as ufw prints them: the port part ("22/tcp", "80,443/tcp", "Anywhere"), the action and the source. */
  rules: { to: string; action: string; from: string }[];
}

/** `ufw status verbose` (numbers off). */
export function parseUfwStatus(output: string): UfwState {
  const text = decode(output);
  const status = /^Status: (\w+)/m.exec(text)?.[1];
  if (!status) return { active: null, rules: [] };
  const rules: UfwState['rules'] = [];
  for (const line of text.split('\n')) {
    const match = /^(.+?)\s{2,}(ALLOW|DENY|REJECT|LIMIT)(?: (?:IN|FWD))?\s{2,}(.+?)\s*$/.exec(line);
    if (match) rules.push({ to: (match[1] ?? '').trim(), action: match[2] ?? '', from: (match[3] ?? '').trim() });
  }
  return { active: status === 'active', rules };
}

export const ufwStatusFact = (): FactRequest<UfwState> => ({
  key: 'audit:ufw',
  script: 'if command -v ufw >/dev/null 2>&1; then ufw status verbose 2>&1 | base64; fi',
  parse: parseUfwStatus,
});

/** Does a ufw rule's port part ("22/tcp", "80,443/tcp", "6000:6007/tcp", "22", "Anywhere") cover this port? */
export function ufwCovers(to: string, port: number, protocol: 'tcp' | 'udp'): boolean {
  const spec = to.replace(/\s*\(v6\)$/, '').split(/\s+/)[0] ?? '';
  if (/^Anywhere$/i.test(spec)) return true;
  const [ports = '', proto] = spec.split('/');
  if (proto && proto !== protocol) return false;
  return ports.split(',').some((part) => {
    const [lo, hi] = part.split(':').map(Number);
    return lo !== undefined && Number.isInteger(lo) && (hi === undefined ? lo === port : port >= lo && port <= hi);
  });
}

export interface FileScan {
  /** Set-user-ID or set-group-ID files that no installed package owns. */
  unpackagedSetId: { path: string; mode: string; owner: string }[];
  /** World-writable files, and world-writable directories without the sticky bit. */
  worldWritable: { path: string; mode: string; owner: string; kind: 'file' | 'directory' }[];
  /** False when the scan ran out of time: what it found is partial. */
  complete: boolean;
}

/**
 * One traversal of the root filesystem and the separate mounts of /usr, /var, /home, /opt, /srv, /tmp
 * (-xdev: never /proc, network mounts or containers' layers). A set-ID file is looked up with
 * `dpkg -S` at its path and at its merged-/usr twin (/usr/bin/su is /bin/su in dpkg's database on
 * Debian 12). Records are NUL-terminated: any byte may be in a file name.
 */
const fileScanScript = `set -- /
for d in /usr /var /home /opt /srv /tmp; do if mountpoint -q "$d" 2>/dev/null; then set -- "$@" "$d"; fi; done
{ timeout ${scanSeconds} find "$@" -xdev \\( -type f \\( -perm -4000 -o -perm -2000 \\) -exec sh -c '
for f; do
  case $f in /usr/bin/*|/usr/sbin/*|/usr/lib/*|/usr/lib64/*) alt=\${f#/usr} ;; /bin/*|/sbin/*|/lib/*|/lib64/*) alt=/usr$f ;; *) alt=$f ;; esac
  dpkg -S "$f" >/dev/null 2>&1 || dpkg -S "$alt" >/dev/null 2>&1 || printf "S %s %s %s\\0" "$(stat -c %a "$f")" "$(stat -c %U "$f")" "$f"
done' zanuri-setid {} + \\) -o \\( -perm -0002 \\( -type f -o -type d ! -perm -1000 \\) -printf 'W%y %m %u %p\\0' \\) 2>/dev/null
printf 'R %s\\0' "$?"; } | head -c 1048576 | base64`;

export function parseFileScan(output: string): FileScan {
  const records = decode(output).split('\0').filter(Boolean);
  // The last record is find's exit status: 1 for an unreadable directory (normal), 124 at the deadline; none when cut at 1 MiB.
  const rc = /^R (\d+)$/.exec(records.at(-1) ?? '')?.[1];
  const unpackagedSetId: FileScan['unpackagedSetId'] = [];
  const worldWritable: FileScan['worldWritable'] = [];
  for (const record of records) {
    const match = /^(S|Wf|Wd) (\d+) (\S+) (\/.*)$/s.exec(record);
    if (!match) continue;
    const [, kind, mode = '', owner = '', path = ''] = match;
    if (kind === 'S' && unpackagedSetId.length < scanLimit) unpackagedSetId.push({ path, mode, owner });
    else if (kind !== 'S' && worldWritable.length < scanLimit) worldWritable.push({ path, mode, owner, kind: kind === 'Wd' ? 'directory' : 'file' });
  }
  const dedupe = <T extends { path: string }>(list: T[]): T[] => [...new Map(list.map((x) => [x.path, x])).values()].sort((a, b) => a.path.localeCompare(b.path));
  return { unpackagedSetId: dedupe(unpackagedSetId), worldWritable: dedupe(worldWritable), complete: rc !== undefined && rc !== '124' };
}

export const fileScanFact = (): FactRequest<FileScan> => ({ key: 'audit:file-scan', script: fileScanScript, parse: parseFileScan });

export interface AccountState {
  /** Accounts whose password field is empty in /etc/shadow or /etc/passwd: a login with no password. */
  emptyPassword: string[];
  /** Accounts other than root with UID 0. */
  uidZero: string[];
  /** False when /etc/shadow could not be read. */
  shadowRead: boolean;
}

/** Only names leave the host: awk prints field 1 of the lines that match, never field 2. */
const accountsScript = `{
if [ -r /etc/shadow ]; then echo shadow; awk -F: '$2 == "" { print "E " $1 }' /etc/shadow; fi
awk -F: '$2 == "" { print "E " $1 } $3 == "0" && $1 != "root" { print "U " $1 }' /etc/passwd
} | base64`;

export function parseAccounts(output: string): AccountState {
  const lines = decode(output).split('\n');
  const names = (tag: string): string[] => [...new Set(lines.filter((l) => l.startsWith(`${tag} `)).map((l) => l.slice(2)))].sort();
  return { emptyPassword: names('E'), uidZero: names('U'), shadowRead: lines.includes('shadow') };
}

export const accountsFact = (): FactRequest<AccountState> => ({ key: 'audit:accounts', script: accountsScript, parse: parseAccounts });

export interface PendingUpdates {
  /** null: apt could not simulate (no apt, or it failed). */
  all: string[] | null;
  security: string[];
  /** When the newest package list was fetched (Unix seconds), null when there is none. */
  listsTime: number | null;
  /** unattended-upgrades is configured to run (APT::Periodic::Unattended-Upgrade != 0) and its timer is enabled. */
  unattended: boolean;
}

/**
 * A simulated upgrade (`apt-get -s`, no lock taken, nothing fetched): what the package lists already
 * on the host say is pending. `Inst pkg [old] (new origin [arch])`; the security archive's origin
 * names "-security" (Debian-Security:12/stable-security, Ubuntu:22.04/jammy-security).
 */
const updatesScript = `if command -v apt-get >/dev/null 2>&1; then
timeout 60 apt-get -s -o Debug::NoLocking=1 -o APT::Get::Show-User-Simulation-Note=false upgrade 2>/dev/null | grep '^Inst ' ; echo "@apt $?"
echo "@lists $(stat -c %Y /var/lib/apt/lists/*Release 2>/dev/null | sort -n | tail -n 1)"
echo "@periodic $(apt-config shell v APT::Periodic::Unattended-Upgrade 2>/dev/null)"
echo "@timer $(systemctl is-enabled apt-daily-upgrade.timer 2>/dev/null)"
echo "@uu $(dpkg-query -W -f='\${db:Status-Abbrev}' unattended-upgrades 2>/dev/null)"
fi`;

export function parsePendingUpdates(output: string): PendingUpdates {
  const all: string[] = [];
  const security: string[] = [];
  for (const line of output.split('\n')) {
    const match = /^Inst (\S+) (?:\[[^\]]*\] )?\(([^)]*)\)/.exec(line);
    if (!match) continue;
    all.push(match[1] ?? '');
    if (/-security\b|Debian-Security/i.test(match[2] ?? '')) security.push(match[1] ?? '');
  }
  const ran = /^@apt (\d+)$/m.exec(output);
  const lists = Number(/^@lists (\d+)$/m.exec(output)?.[1]);
  const periodic = /^@periodic v='?(\d+)'?$/m.exec(output)?.[1];
  const unattended = /^@uu [ih]i/m.test(output) && periodic !== undefined && periodic !== '0' && /^@timer enabled$/m.test(output);
  // grep exits 1 when nothing is pending; anything else (apt failed, timed out) means unknown.
  const ok = ran && (ran[1] === '0' || ran[1] === '1');
  return { all: ok ? all.sort() : null, security: security.sort(), listsTime: Number.isFinite(lists) && lists > 0 ? lists : null, unattended };
}

export const pendingUpdatesFact = (): FactRequest<PendingUpdates> => ({ key: 'audit:updates', script: updatesScript, parse: parsePendingUpdates });

export const rebootRequiredFact = (): FactRequest<RebootFacts> => ({
  key: 'audit:reboot-required',
  script: 'if [ -e /var/run/reboot-required ]; then echo required; cat /var/run/reboot-required.pkgs 2>/dev/null; else echo none; fi',
  parse: parseRebootRequired,
});

export interface SecurityServices {
  /** timedatectl: NTP on, clock synchronised; null when timedatectl cannot tell. */
  ntp: boolean | null;
  synchronized: boolean | null;
  /** The kernel's AppArmor switch (Y/N); null when the kernel has no AppArmor. */
  apparmorKernel: boolean | null;
  /** systemctl is-active of apparmor and auditd. */
  apparmor: string;
  auditd: string;
  /** systemd-detect-virt --container: a container, where the host's kernel decides AppArmor, audit and the clock. */
  container: boolean;
}

const servicesScript = `timedatectl show -p NTP -p NTPSynchronized 2>/dev/null
echo "aa=$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null)"
echo "apparmor=$(systemctl is-active apparmor 2>/dev/null)"
echo "auditd=$(systemctl is-active auditd 2>/dev/null)"
if systemd-detect-virt --container >/dev/null 2>&1; then echo container=yes; fi`;

export function parseSecurityServices(output: string): SecurityServices {
  const value = (key: string): string | undefined => new RegExp(`^${key}=(.*)$`, 'm').exec(output)?.[1]?.trim();
  const yesNo = (v: string | undefined): boolean | null => (v === 'yes' ? true : v === 'no' ? false : null);
  const aa = value('aa');
  return {
    ntp: yesNo(value('NTP')), synchronized: yesNo(value('NTPSynchronized')),
    apparmorKernel: aa === 'Y' ? true : aa === 'N' ? false : null,
    apparmor: value('apparmor') || 'unknown', auditd: value('auditd') || 'unknown',
    container: value('container') === 'yes',
  };
}

export const securityServicesFact = (): FactRequest<SecurityServices> => ({ key: 'audit:services', script: servicesScript, parse: parseSecurityServices });

export interface PublishedPort {
  container: string;
  address: string;
  port: number;
  protocol: 'tcp' | 'udp';
}

/** `docker ps --format '{{.Names}}\t{{.Ports}}'`: "0.0.0.0:8080->80/tcp, :::8080->80/tcp". */
export function parsePublished(output: string): PublishedPort[] {
  const out = new Map<string, PublishedPort>();
  for (const line of decode(output).split('\n')) {
    const [container = '', ports = ''] = line.split('\t');
    for (const m of ports.matchAll(/(?:^|,\s*)(\[?[0-9a-fA-F.:]*?\]?):(\d+)(?:-(\d+))?->\d+(?:-\d+)?\/(tcp|udp)/g)) {
      const address = (m[1] ?? '').replace(/^\[|\]$/g, '') || '0.0.0.0';
      const port = Number(m[2]);
      const protocol = m[4] as 'tcp' | 'udp';
      out.set(`${container} ${address} ${port} ${protocol}`, { container, address, port, protocol });
    }
  }
  return [...out.values()];
}

export const publishedPortsFact = (): FactRequest<PublishedPort[]> => ({
  key: 'audit:docker-published',
  script: `if command -v docker >/dev/null 2>&1; then timeout 20 docker ps --format '{{.Names}}\t{{.Ports}}' 2>/dev/null | base64; fi`,
  parse: parsePublished,
});

export interface NvidiaPackages {
  /** Installed NVIDIA driver packages, and which of them are held. */
  installed: string[];
  held: string[];
}

export function parseNvidiaPackages(output: string): NvidiaPackages {
  const installed: string[] = [];
  const held: string[] = [];
  for (const line of output.split('\n')) {
    const [name, status] = line.split('\t');
    if (!name || !/^[a-z0-9][a-z0-9.+-]*$/.test(name) || !/^[ih]i/.test(status ?? '')) continue;
    installed.push(name);
    if (status?.startsWith('h')) held.push(name);
  }
  return { installed: installed.sort(), held: held.sort() };
}

/** The driver itself and its kernel modules: the packages whose unplanned upgrade takes the GPUs down. */
export const nvidiaPackagesFact = (): FactRequest<NvidiaPackages> => ({
  key: 'audit:nvidia-packages',
  script: "dpkg-query -W -f='${Package}\\t${db:Status-Abbrev}\\n' 'nvidia-driver*' 'nvidia-kernel-*' 'nvidia-dkms-*' 'linux-modules-nvidia-*' 'libnvidia-compute-*' 'cuda-drivers*' 2>/dev/null; true",
  parse: parseNvidiaPackages,
});

/** Every audit-only fact, read in the same round trip as the steps' facts. */
export const auditFacts = (): FactRequest<unknown>[] => [
  listenersFact(), ufwStatusFact(), fileScanFact(), accountsFact(), pendingUpdatesFact(), rebootRequiredFact(),
  securityServicesFact(), publishedPortsFact(), nvidiaPackagesFact(), postgresAccessFact(),
];
