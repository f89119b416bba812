import { quoteArg } from '../core/quote.js';

/**
 * Shell scripts the postgresql step runs on the host, as root, with their data as $1..$n. The
 * role's password lives only in the root-only file: these scripts read it there and hand the
 * server a SCRAM-SHA-256 verifier, and the application its env file. Nothing here prints it.
 */

/** The password file must hold one line of 16 to 200 letters and digits: safe in a URL, a \set quote and an env file. */
const checkPasswordFile = `[ "$(grep -c '' "$file")" = 1 ] && grep -qx '[A-Za-z0-9]\\{16,200\\}' "$file" || { echo "zanuri: $file must hold one line of 16 to 200 letters and digits" >&2; exit 3; }`;

/**
 * RFC 5802/7677 SCRAM-SHA-256 verifier, computed the way libpq's PQencryptPasswordConn does
 * (PBKDF2-HMAC-SHA-256, 4096 iterations, 16 random salt bytes): perl reads the file itself, so the
 * password is in no argv. perl with Digest::SHA and MIME::Base64 comes with postgresql-common
 * (Depends: perl), so this needs no package the server does not already bring.
 * SASLprep is the identity for the letters and digits the file holds. A second argument (a base64
 * salt) exists for the test against RFC 7677's example.
 */
export const scramPerl = `use strict; use warnings;
use Digest::SHA qw(hmac_sha256 sha256); use MIME::Base64 qw(encode_base64 decode_base64);
open(my $f, '<', $ARGV[0]) or die "zanuri: cannot read $ARGV[0]\\n"; my $pw = <$f>; close $f; chomp $pw;
my $salt = defined $ARGV[1] ? decode_base64($ARGV[1]) : undef;
if (!defined $salt) { open(my $r, '<:raw', '/dev/urandom') or die "zanuri: no /dev/urandom\\n"; read($r, $salt, 16) == 16 or die "zanuri: short read\\n"; close $r; }
my $n = 4096; my $u = hmac_sha256($salt . pack('N', 1), $pw); my $h = $u;
for (2 .. $n) { $u = hmac_sha256($u, $pw); $h ^= $u; }
my $b = sub { encode_base64($_[0], '') };
print 'SCRAM-SHA-256$' . $n . ':' . $b->($salt) . '$' . $b->(sha256(hmac_sha256('Client Key', $h))) . ':' . $b->(hmac_sha256('Server Key', $h));`;

/**
 * Sets the role's password from the file as a SCRAM verifier: the plaintext never reaches the
 * server (nor its log, pg_stat_statements or pg_stat_activity). Statement logging and utility
 * tracking are off for the session anyway, so the verifier does not land in a log either.
 * Arguments: port role file.
 */
export const setPasswordScript = `set -eu
port=$1 role=$2 file=$3
${checkPasswordFile}
cd /
v=$(perl -e ${quoteArg(scramPerl)} -- "$file")
case $v in SCRAM-SHA-256\\$4096:*) ;; *) echo "zanuri: computing the SCRAM verifier with perl failed" >&2; exit 3 ;; esac
{
  printf '%s\\n' "\\\\set v '$v'"
  printf '%s\\n' "SET log_statement = 'none';" "SET log_min_error_statement = 'panic';" "SET log_min_duration_statement = -1;" "SET pg_stat_statements.track_utility = off;" "ALTER ROLE :\\"role\\" PASSWORD :'v';"
} | runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -v VERBOSITY=terse -v SHOW_CONTEXT=never -p "$port" -v role="$role"`;

/** Prints the env file for role db file port: DATABASE_URL and the variables seed 001's backend .env names. */
const renderEnv = `render() {
  pw=$(cat -- "$file")
  printf '%s\\n' "# Written by zanuri (postgresql) from $file; rewritten when that file changes."
  printf 'DATABASE_URL=postgresql://%s:%s@127.0.0.1:%s/%s\\n' "$role" "$pw" "$port" "$db"
  printf 'DATABASE_NAME=%s\\nDATABASE_USER=%s\\nDATABASE_PASSWORD=%s\\nDATABASE_HOST=127.0.0.1\\nDATABASE_PORT=%s\\n' "$db" "$role" "$pw" "$port"
}`;

/** The env file's state without its content: "envfile MODE OWNER same|differs", or "envfile absent". Arguments: role db file env port. */
export const envStateScript = `set -eu
role=$1 db=$2 file=$3 env=$4 port=$5
${renderEnv}
[ -f "$env" ] || { echo envfile absent; exit 0; }
if render | cmp -s - "$env"; then same=same; else same=differs; fi
printf 'envfile %s %s\\n' "$(stat -c '%a %U' -- "$env")" "$same"`;

/** Writes the env file, 0600 and owned by the application user (and its primary group). Arguments: role db file env port user. */
export const writeEnvScript = `set -eu
role=$1 db=$2 file=$3 env=$4 port=$5 user=$6
id -u -- "$user" >/dev/null 2>&1 || { echo "zanuri: user $user does not exist: create it first or set postgresql.appUser" >&2; exit 3; }
${checkPasswordFile}
${renderEnv}
group=$(id -gn -- "$user")
umask 077
tmp=$(mktemp -- "$env.XXXXXX")
trap 'rm -f -- "$tmp"' EXIT
render > "$tmp"
chown -- "$user:$group" "$tmp"
chmod 600 -- "$tmp"
mv -f -- "$tmp" "$env"
trap - EXIT`;

/**
 * Makes an OS locale such as en_US.UTF-8 available to the RUNNING server: a process that once failed
 * to find a locale in glibc's locale-archive never looks there again, but it does read locale
 * directories on each lookup, so the locale is compiled into /usr/lib/locale/<name>.utf8 (no restart
 * needed) and also enabled in /etc/locale.gen, so that Debian's locale-gen keeps it. Argument: the locale.
 */
export const localeScript = `set -eu
line="$1 UTF-8" base=\${1%.UTF-8}
if ! grep -qxF -- "$line" /etc/locale.gen; then
  if grep -qxF -- "# $line" /etc/locale.gen; then
    t=$(mktemp /etc/locale.gen.XXXXXX)
    awk -v l="$line" '$0 == "# " l { print l; next } { print }' /etc/locale.gen > "$t"
    chmod 644 "$t"
    mv -f -- "$t" /etc/locale.gen
  else
    printf '%s\\n' "$line" >> /etc/locale.gen
  fi
fi
# localedef exits 1 for warnings even when it wrote the locale (-c): judge by the result.
timeout 300 localedef -c --no-archive -i "$base" -f UTF-8 "/usr/lib/locale/$base.utf8" || [ -s "/usr/lib/locale/$base.utf8/LC_CTYPE" ]
locale -a | grep -qxF -- "$base.utf8" || { echo "zanuri: locale $1 is still not listed by locale -a" >&2; exit 1; }`;
