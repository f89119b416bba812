import type { Cmd } from '../core/types.js';

/**
 * apt commands as data (what the dry run shows). The engine runs each one through aptGuarded(),
 * which bounds every wait: the locks, the network, the whole command.
 */
export const lockTimeoutSeconds = 300;

export const aptUpdateCmd: Cmd = {
  argv: ['env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', 'update', '-q', '-o', `DPkg::Lock::Timeout=${lockTimeoutSeconds}`],
};

export function aptInstallCmd(packages: readonly string[]): Cmd {
  return {
    argv: ['env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', 'install', '-y', '-q', '--no-install-recommends',
      '-o', `DPkg::Lock::Timeout=${lockTimeoutSeconds}`, '-o', 'Dpkg::Options::=--force-confdef', '-o', 'Dpkg::Options::=--force-confold', '--', ...packages],
  };
}

export function aptRemoveCmd(packages: readonly string[]): Cmd {
  return { argv: ['env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', 'remove', '-y', '-q', '-o', `DPkg::Lock::Timeout=${lockTimeoutSeconds}`, '--', ...packages] };
}

/**
 * How long apt may wait. `lockWaitSeconds`: for the dpkg and apt locks (apt-daily, unattended-upgrades
 * and cloud-init hold them on a fresh machine). `netTimeoutSeconds`: for one network read or connect
 * (Acquire::*::Timeout), so a mirror or proxy that accepts and never answers fails the fetch.
 * The whole command is bounded too: lockWait + updateBudget (update; all its attempts together) or
 * lockWait + installBudget (install, remove), after which it is killed on the host.
 */
export interface AptBounds {
  lockWaitSeconds: number;
  netTimeoutSeconds: number;
}

export const defaultAptBounds: AptBounds = { lockWaitSeconds: lockTimeoutSeconds, netTimeoutSeconds: 30 };

/** apt's own retries of a failed fetch (with its backoff), on top of which `apt-get update` is tried again while its budget lasts. */
export const aptFetchRetries = 2;
export const updateBudgetSeconds = (b: AptBounds): number => 10 * b.netTimeoutSeconds;
export const installBudgetSeconds = (b: AptBounds): number => 60 * b.netTimeoutSeconds;

/** The environment variables that change the bounds (for tests and slow links), each a whole number of seconds. */
export const aptBoundsEnv = { lockWaitSeconds: 'ZANURI_APT_LOCK_TIMEOUT', netTimeoutSeconds: 'ZANURI_APT_NET_TIMEOUT' } as const;

/** The bounds from the environment; a value that is not a whole number of seconds in 1..86400 is an error naming it. */
export function aptBoundsFrom(env: Readonly<Record<string, string | undefined>>): AptBounds {
  const read = (key: keyof AptBounds): number => {
    const name = aptBoundsEnv[key];
    const raw = env[name];
    if (raw === undefined || raw === '') return defaultAptBounds[key];
    if (!/^[0-9]{1,5}$/.test(raw) || Number(raw) < 1 || Number(raw) > 86_400) {
      throw new RangeError(`${name} must be a whole number of seconds from 1 to 86400, not ${JSON.stringify(raw.slice(0, 40))}`);
    }
    return Number(raw);
  };
  return { lockWaitSeconds: read('lockWaitSeconds'), netTimeoutSeconds: read('netTimeoutSeconds') };
}

/** The locks apt and dpkg take, in the order they take them. */
export const aptLocks = ['/var/lib/dpkg/lock-frontend', '/var/lib/dpkg/lock', '/var/lib/apt/lists/lock', '/var/cache/apt/archives/lock'] as const;

/** Is this an apt-get command (possibly behind env VAR=...)? */
export function aptGetIndex(cmd: Cmd): number {
  let i = cmd.argv[0] === 'env' ? 1 : 0;
  if (i === 1) while (i < cmd.argv.length && /^[A-Za-z_][A-Za-z0-9_]*=/.test(cmd.argv[i] ?? '')) i += 1;
  return cmd.argv[i] === 'apt-get' ? i : -1;
}

/** apt-get's subcommand (update, install, remove, ...): the first word after it that is neither an option nor an option's value. */
export function aptSubcommand(cmd: Cmd): string | null {
  const at = aptGetIndex(cmd);
  if (at < 0) return null;
  const rest = cmd.argv.slice(at + 1);
  for (let i = 0; i < rest.length; i += 1) {
    const a = rest[i] ?? '';
    if (a === '-o' || a === '-c' || a === '-t') i += 1;
    else if (a === '--') return null;
    else if (!a.startsWith('-')) return a;
  }
  return null;
}

/** The exit code of the guard when a lock stayed held past its bound (EX_TEMPFAIL). */
export const lockGaveUpExit = 75;

/**
 * Waits for the apt and dpkg locks, naming the holder, then runs apt. Arguments: bound (seconds),
 * repair (1: first finish what dpkg left undone: an interrupted run, or triggers a failed one left
 * pending, as `dpkg --audit` reports), the number of lock files, the lock files, then apt's argv.
 *
 * A lock is held when fcntl(F_GETLK) says so (perl-base is Essential on Debian and Ubuntu; apt and dpkg
 * lock with fcntl, which flock(1) cannot see); the holder is whoever has the file open (/proc/PID/fd).
 * apt-get update does not honour DPkg::Lock::Timeout for the lists lock: it fails at once, so a
 * failure that names a lock goes back to waiting while the bound lasts.
 * HUP and PIPE are ignored and apt writes to files, so a dropped connection cannot stop dpkg halfway.
 */
export const aptGuardScript = `set -u
trap '' HUP PIPE
bound=$1 repair=$2 n=$3; shift 3
locks=
while [ "$n" -gt 0 ]; do locks="$locks $1"; shift; n=$((n - 1)); done
out=$(mktemp) err=$(mktemp)
trap 'rm -f -- "$out" "$err"' EXIT
held() {
  [ -e "$1" ] || return 1
  if command -v perl >/dev/null 2>&1; then
    perl -MFcntl -e 'open(my $f, "<", $ARGV[0]) or exit 1; my $l = pack("s s", F_WRLCK, SEEK_SET) . ("\\0" x 60); fcntl($f, F_GETLK, $l) or exit 1; exit(unpack("s", $l) == F_UNLCK ? 1 : 0)' "$1"
  else
    [ -n "$(holders "$1")" ]
  fi
}
holders() {
  find /proc/[0-9]*/fd -maxdepth 1 -lname "$1" 2>/dev/null | while IFS=/ read -r _ _ pid _; do
    [ "$pid" = "$$" ] || printf '%s (pid %s)\\n' "$(cat "/proc/$pid/comm" 2>/dev/null || echo unknown)" "$pid"
  done | sort -u | sed -e ':a' -e 'N' -e '$!ba' -e 's/\\n/, /g'
}
name_of() {
  case $1 in
    */lists/lock) echo 'apt lists lock' ;;
    */archives/lock) echo 'apt archives lock' ;;
    */lock-frontend) echo 'dpkg frontend lock' ;;
    *) echo 'dpkg lock' ;;
  esac
}
start=$(date +%s) said= last=
while :; do
  busy=
  for l in $locks; do if held "$l"; then busy=$l; break; fi; done
  waited=$(( $(date +%s) - start ))
  if [ -z "$busy" ]; then
    if [ -n "$said" ]; then echo "zanuri: waited \${waited}s for the $last" >&2; said=; fi
    if [ "$repair" = 1 ] && { [ -n "$(ls -A /var/lib/dpkg/updates 2>/dev/null)" ] || [ -n "$(dpkg --audit 2>/dev/null)" ]; }; then
      echo "zanuri: dpkg left work unfinished earlier (interrupted, or triggers pending); finishing it first (dpkg --configure -a)" >&2
      DEBIAN_FRONTEND=noninteractive dpkg --force-confdef --force-confold --configure -a >"$out" 2>"$err" || { cat "$out"; cat "$err" >&2; exit 100; }
    fi
    "$@" >"$out" 2>"$err"
    rc=$?
    if [ "$rc" -ne 0 ] && [ "$waited" -lt "$bound" ] && grep -q 'Could not get lock\\|Unable to acquire the dpkg frontend lock\\|Unable to lock' "$err"; then
      sleep 1
      continue
    fi
    cat "$out"
    cat "$err" >&2
    exit "$rc"
  fi
  who=$(holders "$busy")
  what="$(name_of "$busy") ($busy)"
  if [ "$waited" -ge "$bound" ]; then
    echo "zanuri: gave up after \${bound}s: the $what is still held by \${who:-a process this host does not show}" >&2
    exit ${lockGaveUpExit}
  fi
  last="$(name_of "$busy") held by \${who:-a process this host does not show}"
  msg="zanuri: waiting for the $last, up to \${bound}s"
  if [ "$msg" != "$said" ]; then echo "$msg" >&2; said=$msg; fi
  sleep 1
done`;

/**
 * apt argv with the bounds applied: the lock timeout, the network timeouts and retries, placed right
 * after apt-get (later -o options win over the ones the command carried), and the lock wait around it.
 */
export function aptGuarded(cmd: Cmd, bounds: AptBounds, locks: readonly string[] = aptLocks): Cmd {
  const at = aptGetIndex(cmd);
  if (at < 0) throw new Error(`not an apt-get command: ${cmd.argv.join(' ')}`);
  const net = String(bounds.netTimeoutSeconds);
  const options = [
    '-o', `DPkg::Lock::Timeout=${bounds.lockWaitSeconds}`,
    '-o', `Acquire::http::Timeout=${net}`, '-o', `Acquire::https::Timeout=${net}`, '-o', `Acquire::ftp::Timeout=${net}`,
    '-o', `Acquire::Retries=${aptFetchRetries}`,
  ];
  const argv = [...cmd.argv.slice(0, at + 1), ...options, ...cmd.argv.slice(at + 1)];
  const sub = aptSubcommand(cmd);
  const repair = sub === 'install' || sub === 'remove' || sub === 'purge' ? '1' : '0';
  return { ...cmd, argv: ['sh', '-c', aptGuardScript, 'zanuri-apt', String(bounds.lockWaitSeconds), repair, String(locks.length), ...locks, ...argv] };
}
