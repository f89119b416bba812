import { ConfigError } from '../core/errors.js';
import { Secret } from '../core/secret.js';
import { Type } from './schema.js';

/**
 * What the redis and redis-sentinel steps share: the cluster secret parameter and the shell the
 * host runs to turn it (or fresh randomness) into passwords. Every password lives only in a 0600
 * root file on the host; these scripts read it there and never print it.
 *
 * Passwords of a replicated set must agree on every host (a client that fails over to the replica
 * logs in with the same password; Sentinel authenticates to whichever node is primary). zanuri
 * converges one host at a time, so instead of carrying passwords from host to host, the operator
 * gives every host of the set the same cluster secret (--set redis.clusterSecret=@FILE: the file's
 * line, read by zanuri, held as a Secret, written to the host over stdin) and each host derives
 * each user's password from it: sha256(secret "\n" user), hex. A user's password reveals neither
 * the secret nor another user's. Without a cluster secret (a standalone server) every password is
 * 32 random letters and digits generated on the host and never leaves it.
 */

/** The operator's secret as --set STEP.clusterSecret=@FILE gives it: the file's one line. */
export const clusterSecretSchema = (description: string) => Type.Union([Type.Null(), Type.Array(Type.String())], {
  default: null, what: 'a file with one line (--set STEP.clusterSecret=@FILE)', description,
});

/** The secret as a Secret; its value never appears in an error. */
export function clusterSecret(step: string, raw: string[] | null): Secret | null {
  if (raw === null) return null;
  if (raw.length !== 1 || !/^[A-Za-z0-9+/=_-]{32,512}$/.test(raw[0] ?? '')) {
    throw new ConfigError(`${step}: clusterSecret must be one line of 32 to 512 characters from A-Z a-z 0-9 + / = _ - (the content is not shown)`, {
      hint: 'make one with: openssl rand -hex 32 > redis-cluster.secret; chmod 600 redis-cluster.secret; then --set ' + step + '.clusterSecret=@redis-cluster.secret on every host of the set',
    });
  }
  return new Secret(raw[0] as string);
}

/**
 * Shell functions: `derive SECRETFILE NAME` prints the derived password (no newline);
 * `wanted FILE SECRETFILE NAME` prints the password FILE must hold: the derived one, else its current
 * valid content, else nothing (a random one is due). Passwords are letters and digits only.
 */
const functions = `derive() { { tr -d '\\n' < "$1"; printf '\\n%s' "$2"; } | sha256sum | cut -c1-64 | tr -d '\\n'; }
valid() { [ -s "$1" ] && [ "$(grep -c '' "$1")" = 1 ] && grep -qx '[A-Za-z0-9]\\{16,200\\}' "$1"; }
wanted() { if [ -n "$2" ]; then derive "$2" "$3"; elif valid "$1"; then tr -d '\\n' < "$1"; fi; }
hashof() { tr -d '\\n' < "$1" | sha256sum | cut -c1-64; }`;

/**
 * Checks (mode check) or writes (mode apply) every user's password file under DIR, the ACL file and
 * the replication include, from the cluster secret when SECRETFILE is not "-".
 * Arguments: mode dir aclfile authfile|- secretfile|- then NAME RULES pairs. Prints, in check mode,
 * "pw NAME ok|due", "acl same|differs" and "auth same|differs|none"; never a password.
 * The ACL file holds SHA-256 hashes only (user NAME on #HASH RULES); the default user is off.
 */
export const redisSecretsScript = `set -eu
mode=$1 dir=$2 acl=$3 auth=$4 secret=$5
shift 5
[ "$secret" = - ] && secret=
[ -z "$secret" ] || [ -s "$secret" ] || { echo "zanuri: the cluster secret $secret is missing" >&2; exit 3; }
${functions}
umask 077
[ "$mode" = apply ] && mkdir -p -m 0700 -- "$dir"
render_acl() {
  echo 'user default off resetpass resetkeys resetchannels -@all'
  while [ $# -ge 2 ]; do printf 'user %s on #%s %s\\n' "$1" "$(hashof "$dir/$1.password")" "$2"; shift 2; done
}
render_auth() {
  printf '# Written by zanuri (redis): how this node authenticates to its primary.\\nmasteruser replica\\nmasterauth %s\\n' "$(tr -d '\\n' < "$dir/replica.password")"
}
all_ok=1
passwords() {
  while [ $# -ge 2 ]; do
    f=$dir/$1.password
    w=$(wanted "$f" "$secret" "$1")
    if [ -n "$w" ] && valid "$f" && [ "$(tr -d '\\n' < "$f")" = "$w" ] && [ "$(stat -c '%a %U' -- "$f")" = '600 root' ]; then
      [ "$mode" = check ] && echo "pw $1 ok"
    else
      all_ok=0
      if [ "$mode" = check ]; then echo "pw $1 due"; else
        t=$(mktemp -- "$f.XXXXXX")
        if [ -n "$w" ]; then printf '%s' "$w" > "$t"; else LC_ALL=C tr -dc 'A-Za-z0-9' < /dev/urandom | head -c 32 > "$t"; fi
        chown root:root -- "$t"; chmod 600 -- "$t"; mv -f -- "$t" "$f"
      fi
    fi
    shift 2
  done
}
passwords "$@"
if [ "$mode" = check ] && [ "$all_ok" = 0 ]; then echo 'acl differs'; if [ "$auth" = - ]; then echo 'auth none'; else echo 'auth differs'; fi; exit 0; fi
t=$(mktemp)
trap 'rm -f -- "$t"' EXIT
render_acl "$@" > "$t"
if cmp -s -- "$t" "$acl" && [ "$(stat -c '%a %U %G' -- "$acl")" = '640 root redis' ]; then [ "$mode" = check ] && echo 'acl same'
elif [ "$mode" = check ]; then echo 'acl differs'
else n=$(mktemp -- "$acl.XXXXXX"); cat "$t" > "$n"; chown root:redis -- "$n"; chmod 640 -- "$n"; mv -f -- "$n" "$acl"; fi
if [ "$auth" = - ]; then [ "$mode" = check ] && echo 'auth none'; exit 0; fi
render_auth > "$t"
if cmp -s -- "$t" "$auth" && [ "$(stat -c '%a %U %G' -- "$auth")" = '640 root redis' ]; then [ "$mode" = check ] && echo 'auth same'
elif [ "$mode" = check ]; then echo 'auth differs'
else n=$(mktemp -- "$auth.XXXXXX"); cat "$t" > "$n"; chown root:redis -- "$n"; chmod 640 -- "$n"; mv -f -- "$n" "$auth"; fi`;

/**
 * Normalises a sentinel.conf to the settings zanuri owns, one per line, sorted: what Sentinel drops
 * when it rewrites the file (a default value) reads as that default, quotes go, and the monitored
 * primary's address is left out (Sentinel moves it on a failover). Secrets are compared by the caller.
 */
const normaliseSentinel = `awk -v name="$name" '
function unq(s) { gsub(/^"|"$/, "", s); return s }
BEGIN { v["port"] = 26379; v["protected-mode"] = "yes"; v["down-after"] = 30000; v["failover-timeout"] = 180000; v["parallel-syncs"] = 1; v["bind"] = ""; v["monitor"] = ""; v["auth-user"] = ""; v["requirepass"] = ""; v["sentinel-pass"] = ""; v["auth-pass"] = "" }
$1 == "port" || $1 == "protected-mode" { v[$1] = unq($2) }
$1 == "requirepass" { v["requirepass"] = unq($2) }
$1 == "bind" { b = ""; for (i = 2; i <= NF; i++) b = b " " unq($i); v["bind"] = b }
$1 == "sentinel" && $2 == "sentinel-pass" { v["sentinel-pass"] = unq($3) }
$1 == "sentinel" && $3 == name && $2 == "monitor" { v["monitor"] = $6 }
$1 == "sentinel" && $3 == name && $2 == "auth-user" { v["auth-user"] = unq($4) }
$1 == "sentinel" && $3 == name && $2 == "auth-pass" { v["auth-pass"] = unq($4) }
$1 == "sentinel" && $3 == name && $2 == "down-after-milliseconds" { v["down-after"] = $4 }
$1 == "sentinel" && $3 == name && $2 == "failover-timeout" { v["failover-timeout"] = $4 }
$1 == "sentinel" && $3 == name && $2 == "parallel-syncs" { v["parallel-syncs"] = $4 }
END { for (k in v) print k " " v[k] }' "$1" | sort`;

/**
 * Checks or writes /etc/redis/sentinel.conf from the seed (stdin-free: the seed is an argument, its
 * password placeholder @ZANURI_PASSWORD@ filled on the host from the password file). A rewrite keeps
 * the primary Sentinel follows now (after a failover that is no longer the playbook's primary).
 * Arguments: mode conf seed name passwordfile. Check prints "sentinel same|differs KEYS|absent".
 */
export const sentinelConfScript = `set -eu
mode=$1 conf=$2 seed=$3 name=$4 pwfile=$5
[ -s "$pwfile" ] || { [ "$mode" = check ] && { echo 'sentinel differs password'; exit 0; }; echo "zanuri: $pwfile is missing" >&2; exit 3; }
umask 077
t=$(mktemp -d)
trap 'rm -rf -- "$t"' EXIT
printf '%s' "$seed" | awk -v f="$pwfile" 'BEGIN { getline pw < f } { gsub(/@ZANURI_PASSWORD@/, pw); print }' > "$t/seed"
norm() { name=$name; ${normaliseSentinel}; }
if [ -f "$conf" ]; then
  norm "$conf" > "$t/have"; norm "$t/seed" > "$t/want"
  diff=$(comm -13 "$t/have" "$t/want" | awk '{ print $1 }' | sort -u | tr '\\n' ' ')
  if [ -z "$diff" ]; then [ "$mode" = check ] && echo 'sentinel same'; exit 0; fi
  [ "$mode" = check ] && { echo "sentinel differs $diff"; exit 0; }
  cur=$(awk -v name="$name" '$1 == "sentinel" && $2 == "monitor" && $3 == name { print $4, $5 }' "$conf")
  if [ -n "$cur" ]; then set -- $cur; awk -v name="$name" -v h="$1" -v p="$2" '$1 == "sentinel" && $2 == "monitor" && $3 == name { $4 = h; $5 = p } { print }' "$t/seed" > "$t/seed2"; mv -f -- "$t/seed2" "$t/seed"; fi
else
  [ "$mode" = check ] && { echo 'sentinel absent'; exit 0; }
fi
n=$(mktemp -- "$conf.XXXXXX")
cat "$t/seed" > "$n"
chown redis:redis -- "$n"; chmod 640 -- "$n"
mv -f -- "$n" "$conf"`;

/** Derives NAME's password from the secret file into a 0600 root file. Arguments: secretfile name file. */
export const derivePasswordScript = `set -eu
secret=$1 name=$2 f=$3
${functions}
[ -s "$secret" ] || { echo "zanuri: the cluster secret $secret is missing" >&2; exit 3; }
w=$(derive "$secret" "$name")
if [ "$(tr -d '\\n' < "$f" 2>/dev/null)" = "$w" ] && [ "$(stat -c '%a %U' -- "$f")" = '600 root' ]; then [ "\${4:-}" = check ] && echo 'pw ok'; exit 0; fi
[ "\${4:-}" = check ] && { echo 'pw due'; exit 0; }
umask 077
t=$(mktemp -- "$f.XXXXXX")
printf '%s' "$w" > "$t"; chown root:root -- "$t"; chmod 600 -- "$t"; mv -f -- "$t" "$f"`;

/** redis-cli as USER with the password from FILE (REDISCLI_AUTH: the environment, never argv). Arguments: file user port then the command. */
export const redisCliScript = `set -eu
f=$1 u=$2 port=$3
shift 3
REDISCLI_AUTH=$(tr -d '\\n' < "$f")
export REDISCLI_AUTH
exec timeout 20 redis-cli --no-auth-warning --user "$u" -h 127.0.0.1 -p "$port" "$@"`;
