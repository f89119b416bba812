import { CommandError, ConfigError } from '../core/errors.js';
import { octal } from '../core/plan.js';
import { quoteArg } from '../core/quote.js';
import type { Cmd } from '../core/types.js';
import { computedFileFact, serviceFact, type FactRequest, type FactValues, type FileState } from '../facts/state.js';
import { withBlock } from '../resources/block.js';
import { command } from '../resources/command.js';
import { directory } from '../resources/directory.js';
import { file } from '../resources/file.js';
import { service } from '../resources/service.js';
import { withReason, type Resource } from '../resources/types.js';
import { envStateScript, localeScript, setPasswordScript, writeEnvScript } from './postgresql-host.js';
import { absolutePath, cidr, params, showValue, Type, userName } from './schema.js';
import { defineStep } from './types.js';

/**
 * PostgreSQL as Debian ships it, tuned by the profile's postgresql.conf settings (a conf.d drop-in,
 * which Debian's postgresql.conf includes last), reachable only locally unless allowFrom says
 * otherwise, with one application role and database.
 *
 * The role's password is generated ON THE HOST into a root-only file; the server gets only its
 * SCRAM-SHA-256 verifier, computed on the host, and the application gets an env file (0600, owned by
 * the application user). The password never crosses the SSH connection, never sits in argv, a fact,
 * a log or the report. zanuri only ever learns the files' metadata and whether logging in works.
 *
 * pg_hba.conf is shared with others (replication, monitoring): the step owns one marked block, first
 * in the file because the first matching line decides, and narrow enough (the postgres superuser over
 * the socket, the role on its database) to take nothing from the lines below it.
 */
const id = 'postgresql';
const dropInName = '50-zanuri.conf';
const clusterDir = (version: string): string => `/etc/postgresql/${version}/main`;
export const dropInPath = (version: string): string => `${clusterDir(version)}/conf.d/${dropInName}`;
export const hbaPath = (version: string): string => `${clusterDir(version)}/pg_hba.conf`;
export const secretsDir = '/etc/zanuri/postgresql';
export const passwordPath = (role: string): string => `${secretsDir}/${role}.password`;
export const envPath = (role: string): string => `${secretsDir}/${role}.env`;
export const hbaMarkers = { begin: '# BEGIN zanuri postgresql', end: '# END zanuri postgresql' };
const serviceUnit = (version: string): string => `postgresql@${version}-main.service`;

const identifier = '^[a-z_][a-z0-9_]{0,62}$';
/** A postgresql.conf parameter name: PostgreSQL's own are at most 63 characters (NAMEDATALEN). */
const settingName = /^[a-z_]{1,63}$/;
/** Settings whose value is a shell command or a library the server runs or loads: code execution as postgres, not tuning. */
const commandSettings = new Set(['archive_command', 'restore_command', 'archive_cleanup_command', 'recovery_end_command', 'ssl_passphrase_command', 'archive_library', 'dynamic_library_path', 'local_preload_libraries', 'session_preload_libraries']);
/** A bare number or size/time, as postgresql.conf takes it unquoted. */
const bareValue = /^-?\d+(?:\.\d+)?(?:[kMGT]?B|us|ms|s|min|h|d)?$/;
/** Printable ASCII without ' and \: inside single quotes nothing else is special to postgresql.conf, and no line break can get in. */
const quotable = "[\\x20-\\x26\\x28-\\x5b\\x5d-\\x7e]{0,256}";
const snakeoil = { cert: '/etc/ssl/certs/ssl-cert-snakeoil.pem', key: '/etc/ssl/private/ssl-cert-snakeoil.key' };
/** Locales every glibc has built in; any other comes from Debian's locales package. */
const builtinLocales = new Set(['C', 'POSIX', 'C.UTF-8']);
const listenEntry = '(?:localhost|\\*|(?:\\d{1,3}\\.){3}\\d{1,3}|[0-9a-fA-F:]+)';
/** Set by this step from its own parameters, or where Debian keeps its files: not for settings. */
const reservedSettings = new Set(['data_directory', 'config_file', 'hba_file', 'ident_file', 'external_pid_file', 'include', 'include_dir', 'include_if_exists']);
/** Set by the step's own parameters. */
const parameterSettings: Record<string, string> = { listen_addresses: 'listenAddresses', ssl: 'sslCertFile and sslKeyFile (ssl is always on)', ssl_cert_file: 'sslCertFile', ssl_key_file: 'sslKeyFile' };
const reservedRoles = new Set(['postgres', 'public', 'none', 'current_user', 'session_user', 'current_role', 'all', 'replication', 'samerole', 'samegroup']);
const reservedDatabases = new Set(['postgres', 'template0', 'template1', 'all', 'replication', 'sameuser', 'samerole']);

const pgIdentifier = (description: string) => Type.String({ pattern: identifier, what: 'a PostgreSQL identifier (lower-case letters, digits, _; at most 63)', default: 'app', description });

const schema = params({
  settings: Type.Record(Type.String(), Type.Union([Type.Number(), Type.Boolean(), Type.String({ pattern: `^(?:'${quotable}'|${quotable})$` })], {
    what: 'a number, a size like 256MB, or text without \' \\ or line breaks (optionally in single quotes)',
  }), { default: {}, description: 'postgresql.conf parameters and values (numbers, sizes like 256MB, times like 200ms, words, quoted strings and lists such as timezone: \'UTC\' or shared_preload_libraries: pg_stat_statements), written to a conf.d drop-in that postgres -C checks first; a profile\'s postgresql.settings land here.' }),
  listenAddresses: Type.String({
    pattern: `^${listenEntry}(?:,${listenEntry})*$`, maxLength: 200, default: 'localhost',
    what: 'a comma-separated list of localhost, * and IP addresses', description: 'listen_addresses, comma-separated; must include localhost (or 127.0.0.1, 0.0.0.0, *).',
  }),
  database: pgIdentifier('The application database, owned by the role.'),
  role: pgIdentifier('The application role; its password is generated on the host into /etc/zanuri/postgresql/ROLE.password (0600 root).'),
  allowFrom: Type.Array(cidr(), { default: [], description: 'Networks that may reach the application database as its role, over TLS only (hostssl, scram-sha-256; the same networks without TLS are rejected), beyond the local host.' }),
  locale: Type.String({
    pattern: '^(?:C|POSIX|C\\.UTF-8|[a-z]{2,3}_[A-Z]{2}\\.UTF-8)$', default: 'C.UTF-8', what: 'C, POSIX, C.UTF-8 or a UTF-8 locale like en_US.UTF-8',
    description: 'LC_COLLATE and LC_CTYPE of the application database (created with ENCODING \'UTF8\' from template0). C.UTF-8 needs nothing more and its order never changes with glibc upgrades; another (seed 001: en_US.UTF-8) is generated with Debian\'s locales package. An existing database is never recreated.',
  }),
  sslCertFile: absolutePath({ default: snakeoil.cert, description: 'ssl_cert_file: the server certificate (PEM). Debian\'s snakeoil certificate by default; clients that must verify the server (sslmode=verify-full) need one from a CA they trust.' }),
  sslKeyFile: absolutePath({ default: snakeoil.key, description: 'ssl_key_file: its private key, readable by postgres (0600 postgres, or 0640 root with postgres in its group, like Debian\'s ssl-cert).' }),
  appUser: userName({ default: 'www-data', description: 'The system user the application runs as: it owns /etc/zanuri/postgresql/ROLE.env (0600, DATABASE_URL and DATABASE_* variables). It must exist when the step runs.' }),
  restart: Type.Union([Type.Literal('allow'), Type.Literal('refuse')], {
    default: 'refuse', what: 'allow or refuse',
    description: 'What a change that needs a server restart (shared_buffers, max_connections, shared_preload_libraries, listen_addresses, ...) does to a running cluster that already holds databases: refuse (the default, safe for production) writes it, reloads, and warns that it waits for the operator\'s restart; allow restarts at once. A new, empty cluster is restarted either way.',
  }),
});

/** Numbers and sizes go bare into postgresql.conf, everything else single-quoted (the schema keeps ' \\ and line breaks out). */
const confValue = (value: string | number | boolean): string => {
  const raw = typeof value === 'boolean' ? (value ? 'on' : 'off') : String(value);
  const text = raw.length >= 2 && raw.startsWith("'") && raw.endsWith("'") ? raw.slice(1, -1) : raw;
  return bareValue.test(text) ? text : `'${text}'`;
};

/** locale -a spells en_US.UTF-8 as en_US.utf8. */
const localeName = (locale: string): string => locale.replace(/\.UTF-8$/, '.utf8');

const loopbackOnly = (listen: string): boolean => listen.split(',').every((e) => ['localhost', '127.0.0.1', '::1'].includes(e));

/** pg_hba.conf wants a mask: a bare address becomes a /32 or /128. */
function withMask(address: string): string {
  if (address.includes('/')) return address;
  return `${address}/${address.includes(':') ? 128 : 32}`;
}

/** Reads `name = value` lines of a drop-in, quotes removed; for deciding restart or reload. */
function parseConf(text: string | null): Map<string, string> {
  const values = new Map<string, string>();
  for (const line of (text ?? '').split('\n')) {
    const match = /^\s*([a-z_][a-z0-9_.]*)\s*=?\s*(?:'([^']*)'|([^\s#]+))/.exec(line);
    if (match?.[1]) values.set(match[1], match[2] ?? match[3] ?? '');
  }
  return values;
}

export interface PostgresState {
  /** The newest cluster named "main" (pg_lsclusters), null when there is none. */
  cluster: { version: string; port: number; online: boolean } | null;
  /** The newest server binaries in /usr/lib/postgresql, null when none is installed. */
  installedVersion: string | null;
  /** The major version `apt-get install postgresql` would bring (apt-cache depends), null when unknown. */
  candidateVersion: string | null;
  /** Whether the server answered the queries below; false leaves them unknown. */
  queried: boolean;
  role: { canLogin: boolean } | null;
  databaseOwner: string | null;
  /** The application database's encoding, LC_COLLATE and LC_CTYPE, null when it does not exist. */
  databaseLocale: { encoding: string; collate: string; ctype: string } | null;
  /** Databases besides postgres, template0 and template1: a cluster holding any is in use, and not restarted unasked. */
  userDatabases: number;
  /** Parameters whose change needs a restart, as this server says. */
  postmaster: string[];
  /** Parameters changed on disk that wait for a restart. */
  pendingRestart: string[];
  /** The password file's metadata, never its content. */
  passwordFile: { mode: number; owner: string; group: string; size: number } | null;
  /** Whether the role logs in over 127.0.0.1 with the password in the file (tested on the host). */
  login: 'ok' | 'failed' | 'unknown';
  /** Whether `locale -a` lists the database's locale. */
  localeAvailable: boolean;
  /** The env file's mode, owner and whether its content is what the password file gives; null when absent or unknown. */
  envFile: { mode: number; owner: string; same: boolean } | null;
}

/** Newest "main" cluster: "VERSION PORT STATUS". */
const findCluster = `pg_lsclusters -h 2>/dev/null | awk '$2 == "main" { print $1, $3, $4 }' | sort -n | tail -n 1`;

/** A file of the newest main cluster, read in the same round trip as everything else. */
const clusterFile = (relative: string): FactRequest<FileState> =>
  computedFileFact(`postgresql:${relative}`, `${findCluster} | awk '{ print "/etc/postgresql/" $1 "/main/${relative}" }'`);
export const dropInFact = clusterFile(`conf.d/${dropInName}`);
export const hbaFact = clusterFile('pg_hba.conf');

/**
 * Proves the role logs in over TCP with the file's password, through a temp PGPASSFILE (never argv).
 * Arguments: role database file [port]; without a port it asks pg_lsclusters. The fact and verify() both run it.
 */
const loginScript = `set -eu
role=$1 db=$2 file=$3 port=\${4:-$(${findCluster} | awk '{ print $2 }')}
[ -n "$port" ] || { echo "zanuri: no PostgreSQL cluster named main (pg_lsclusters)" >&2; exit 1; }
t=$(mktemp)
trap 'rm -f -- "$t"' EXIT
sed 's/^/*:*:*:*:/' "$file" > "$t"
out=$(PGPASSFILE=$t PGCONNECT_TIMEOUT=10 psql -XAtqw -h 127.0.0.1 -p "$port" -U "$role" -d "$db" -c 'select 1')
[ "$out" = 1 ] || { echo "zanuri: select 1 as $role returned $out" >&2; exit 1; }`;

/** What the files cannot tell: the cluster, the server's answers and the password file's metadata. Runs as root; psql as postgres. */
export function postgresFact(p: { role: string; database: string; locale: string }): FactRequest<PostgresState> {
  const sql = [
    `select 'role', rolcanlogin::text from pg_roles where rolname = :'role'`,
    `select 'db', pg_get_userbyid(datdba)::text from pg_database where datname = :'db'`,
    `select 'dblocale', pg_encoding_to_char(encoding) || ' ' || datcollate || ' ' || datctype from pg_database where datname = :'db'`,
    `select 'userdbs', count(*)::text from pg_database where datname not in ('postgres', 'template0', 'template1')`,
    `select 'postmaster', name from pg_settings where context = 'postmaster'`,
    `select 'pending', name from pg_settings where pending_restart;`,
  ].join(' union all ');
  const [role, db, pw, env] = [p.role, p.database, passwordPath(p.role), envPath(p.role)].map(quoteArg);
  const script = [
    `( c=$(${findCluster}); printf "cluster %s\\n" "$c"`,
    `printf "installed %s\\n" "$(ls /usr/lib/postgresql 2>/dev/null | grep -E '^[0-9]+(\\.[0-9]+)?$' | sort -n | tail -n 1)"`,
    `printf "candidate %s\\n" "$(apt-cache depends postgresql 2>/dev/null | sed -n 's/^ *Depends: postgresql-\\([0-9][0-9.]*\\)$/\\1/p' | head -n 1)"`,
    'set -- $c; cd /',
    `[ "\${3:-}" = online ] && printf '%s\\n' ${quoteArg(sql)} | runuser -u postgres -- psql -XAtq -F ' ' -p "$2" -v role=${role} -v db=${db} && echo queried`,
    `[ -f ${pw} ] && printf "pwfile %s\\n" "$(stat -c '%a %U %G %s' ${pw})"`,
    `if [ "\${3:-}" = online ] && [ -s ${pw} ]; then sh -c ${quoteArg(loginScript)} zanuri-login ${role} ${db} ${pw} "$2" >/dev/null 2>&1 && echo login ok || echo login failed; fi`,
    `locale -a 2>/dev/null | grep -qxF ${quoteArg(localeName(p.locale))} && echo locale ok`,
    `if [ -s ${pw} ]; then sh -c ${quoteArg(envStateScript)} zanuri-env ${role} ${db} ${pw} ${env} "\${2:-5432}" 2>/dev/null; fi )`,
  ].join('\n');
  return {
    key: `postgresql:${p.role}:${p.database}:${p.locale}`,
    script,
    parse(output) {
      const state: PostgresState = {
        cluster: null, installedVersion: null, candidateVersion: null, queried: false, role: null, databaseOwner: null, databaseLocale: null, userDatabases: 0,
        postmaster: [], pendingRestart: [], passwordFile: null, login: 'unknown', localeAvailable: builtinLocales.has(p.locale), envFile: null,
      };
      for (const line of output.split('\n')) {
        const [word = '', ...rest] = line.split(' ');
        const arg = rest.join(' ').trim();
        const cluster = /^(\d+(?:\.\d+)?) (\d+) (\S+)$/.exec(arg);
        const pwfile = /^([0-7]+) (\S+) (\S+) (\d+)$/.exec(arg);
        const envfile = /^([0-7]+) (\S+) (same|differs)$/.exec(arg);
        const dbLocale = /^(\S+) (\S+) (\S+)$/.exec(arg);
        if (word === 'cluster' && cluster) state.cluster = { version: cluster[1] as string, port: Number(cluster[2]), online: cluster[3] === 'online' };
        else if (word === 'installed' && arg) state.installedVersion = arg;
        else if (word === 'candidate' && arg) state.candidateVersion = arg;
        else if (word === 'role') state.role = { canLogin: arg === 'true' };
        else if (word === 'db') state.databaseOwner = arg;
        else if (word === 'dblocale' && dbLocale) state.databaseLocale = { encoding: dbLocale[1] as string, collate: dbLocale[2] as string, ctype: dbLocale[3] as string };
        else if (word === 'userdbs' && /^\d+$/.test(arg)) state.userDatabases = Number(arg);
        else if (word === 'locale' && arg === 'ok') state.localeAvailable = true;
        else if (word === 'envfile' && envfile) state.envFile = { mode: parseInt(envfile[1] as string, 8), owner: envfile[2] as string, same: envfile[3] === 'same' };
        else if (word === 'postmaster') state.postmaster.push(arg);
        else if (word === 'pending') state.pendingRestart.push(arg);
        else if (word === 'queried') state.queried = true;
        else if (word === 'pwfile' && pwfile) state.passwordFile = { mode: parseInt(pwfile[1] as string, 8), owner: pwfile[2] as string, group: pwfile[3] as string, size: Number(pwfile[4]) };
        else if (word === 'login') state.login = arg === 'ok' ? 'ok' : 'failed';
      }
      return state;
    },
  };
}

/** psql as the postgres superuser, SQL on stdin, values as psql variables (:'role', :"db"), never spliced. */
function psqlCmd(p: { role: string; database: string; locale: string }, port: number, sql: string): Cmd {
  return {
    argv: ['sh', '-c', 'cd / && exec runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -v VERBOSITY=terse -p "$1" -v role="$2" -v db="$3" -v locale="$4"', 'zanuri-psql', String(port), p.role, p.database, p.locale],
    stdin: sql,
  };
}

/** Writes 32 random letters and digits into a new root-only file, unless the file already holds something. */
const generateScript = `set -eu
file=$1
[ -s "$file" ] && exit 0
umask 077
mkdir -p -m 0711 -- "$(dirname -- "$file")"
tmp=$(mktemp -- "$file.XXXXXX")
trap 'rm -f -- "$tmp"' EXIT
LC_ALL=C tr -dc 'A-Za-z0-9' < /dev/urandom | head -c 32 > "$tmp"
chown root:root "$tmp"
chmod 600 "$tmp"
mv -f -- "$tmp" "$file"
trap - EXIT`;

/** Lists the managed settings that are not in effect from the drop-in (overridden, or waiting for a restart). */
const settingsScript = `set -eu
c=$(${findCluster})
set -- $c
cd /
runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 -p "$2"`;

const createRoleSql = `SELECT format('CREATE ROLE %I LOGIN', :'role') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role') \\gexec
SELECT format('ALTER ROLE %I LOGIN', :'role') WHERE EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role' AND NOT rolcanlogin) \\gexec
`;
/** UTF8 and the locale need template0: template1 may carry another encoding or locale (Debian's initdb takes the system's). */
const createDatabaseSql = `SELECT format('CREATE DATABASE %I OWNER %I ENCODING %L LC_COLLATE %L LC_CTYPE %L TEMPLATE template0', :'db', :'role', 'UTF8', :'locale', :'locale') WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \\gexec
SELECT format('ALTER DATABASE %I OWNER TO %I', :'db', :'role') WHERE EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db' AND pg_get_userbyid(datdba) <> :'role') \\gexec
`;

type Params = {
  settings: Array<[string, string]>; listenAddresses: string; database: string; role: string; allowFrom: string[]; locale: string;
  sslCertFile: string; sslKeyFile: string; appUser: string; restart: 'allow' | 'refuse';
};

/** Said once, on the step's first action, when the plan is made before the package (and so the cluster) exists. */
function notInstalledYet(s: PostgresState): string {
  if (s.cluster || s.installedVersion) return '';
  if (s.candidateVersion) return ` (postgresql is not installed yet: planned for ${s.candidateVersion}, the version apt would install; the paths are certain only after the install)`;
  return ' (postgresql is not installed yet and apt names no version: the cluster directory is known only after the install)';
}

/** The managed parameters whose values change, and those of them that need a restart. */
function settingsChange(current: string | null, wanted: string, needsRestart: ReadonlySet<string>): { changed: string[]; restart: string[] } {
  const before = parseConf(current);
  const after = parseConf(wanted);
  const changed = [...new Set([...before.keys(), ...after.keys()])].filter((k) => before.get(k) !== after.get(k));
  return { changed, restart: changed.filter((k) => needsRestart.has(k)) };
}

function howApplied({ changed, restart }: { changed: string[]; restart: string[] }, queried: boolean): string {
  if (!changed.length) return '';
  if (restart.length) return `; ${restart.join(', ')} need a restart`;
  return queried ? '; a reload applies them' : '; a restart applies them';
}

function roleReason(s: PostgresState, role: string): string | null {
  if (!s.queried) return `the server cannot be asked yet, role ${role} is created if missing`;
  if (!s.role) return `role ${role} does not exist`;
  return s.role.canLogin ? null : `role ${role} cannot log in`;
}

function databaseReason(s: PostgresState, p: Params): string | null {
  if (!s.queried) return `the server cannot be asked yet, database ${p.database} is created if missing`;
  if (s.databaseOwner === null) return `database ${p.database} does not exist`;
  return s.databaseOwner === p.role ? null : `database ${p.database} is owned by ${s.databaseOwner}, not ${p.role}`;
}

function passwordModeReason(s: PostgresState, path: string): string | null {
  const f = s.passwordFile;
  if (!f?.size || (f.mode === 0o600 && f.owner === 'root' && f.group === 'root')) return null;
  return `${path} is ${octal(f.mode)} ${f.owner}:${f.group}, not 0600 root:root`;
}

function passwordReason(s: PostgresState, role: string, path: string): string | null {
  if (!s.passwordFile?.size) return `${role} gets the new password`;
  if (s.login === 'failed') return `${role} cannot log in over 127.0.0.1 with the password in ${path}`;
  if (s.login === 'unknown') return `whether ${role} logs in with ${path} cannot be checked yet`;
  return null;
}

/** The first resource's first action carries `note`. */
const noting = (resource: Resource, note: string): Resource => ({ ...resource, plan: (facts: FactValues) => withReason(resource.plan(facts), note) });

/**
 * A running cluster that holds databases is someone's production data: it is restarted only with
 * restart=allow. A cluster not yet installed, stopped, or still empty (the install's fresh one) is
 * restarted freely. When the server cannot be asked, it is treated as in use.
 */
function mayRestart(s: PostgresState, p: Params): boolean {
  return p.restart === 'allow' || !s.cluster?.online || (s.queried && s.userDatabases === 0);
}

function restartWarning(s: PostgresState, p: Params, unit: string, names: string[]): string {
  const what = names.length ? names.join(', ') : 'the settings that need a restart';
  const holds = s.queried ? `holds ${s.userDatabases} database${s.userDatabases === 1 ? '' : 's'}` : 'cannot be asked whether it holds databases';
  return `WARNING: ${what} need${names.length === 1 ? 's' : ''} a restart, and the running cluster ${holds}; restart is ${p.restart} (the safe default), so the file is written and reloaded and ${what} take${names.length === 1 ? 's' : ''} effect only at the next restart: run systemctl restart ${unit} in a maintenance window, or set postgresql.restart=allow`;
}

/** Why pg_hba.conf changes: the block is missing, or differs (the lines outside it are never the reason). */
function hbaReason(current: string | null, path: string, p: Params): string {
  const lines = (current ?? '').split('\n').filter((l) => l.trim() && !l.trim().startsWith('#')).length;
  const what = `zanuri block (postgres over the socket, ${p.role} on ${p.database} over loopback${p.allowFrom.length ? ` and over TLS only from ${p.allowFrom.join(', ')}` : ''})`;
  if (current !== null && !current.split('\n').some((l) => l.trim() === hbaMarkers.begin)) {
    return `${path} has no ${what} yet: it goes first, since the first matching line decides, and the ${lines} rules already there stay below it`;
  }
  return `the ${what} in ${path} differs or is not first; the lines outside it are kept`;
}

function envReason(s: PostgresState, p: Params, env: string, pw: string): string | null {
  const f = s.envFile;
  if (!s.passwordFile?.size || !f) return `the application gets ${env} (DATABASE_URL and DATABASE_*; 0600, owned by ${p.appUser})`;
  if (!f.same) return `${env} does not hold the credentials in ${pw}`;
  if (f.mode !== 0o600 || f.owner !== p.appUser) return `${env} is ${octal(f.mode)} ${f.owner}, not 0600 ${p.appUser}`;
  return null;
}

function localeWarning(s: PostgresState, p: Params): string {
  const l = s.databaseLocale;
  if (!l || (l.encoding === 'UTF8' && l.collate === p.locale && l.ctype === p.locale)) return '';
  return `; WARNING: database ${p.database} exists with encoding ${l.encoding}, LC_COLLATE ${l.collate} and LC_CTYPE ${l.ctype}, not UTF8 and ${p.locale}: zanuri never recreates a database (dump it, drop it and let zanuri create it, then restore)`;
}

export const postgresql = defineStep({
  id,
  title: 'PostgreSQL',
  params: schema,

  check(raw): Params {
    if (Object.keys(raw.settings).length > 200) throw new ConfigError(`${id}: settings: ${Object.keys(raw.settings).length} parameters; at most 200`);
    const settings = Object.entries(raw.settings).map(([name, value]): [string, string] => {
      if (!settingName.test(name)) throw new ConfigError(`${id}: settings: ${showValue(name)} is not a postgresql.conf parameter name (lower-case letters and _, at most 63)`);
      const byParameter = parameterSettings[name];
      if (byParameter) throw new ConfigError(`${id}: settings.${name} is set by the ${byParameter} parameter`);
      if (reservedSettings.has(name)) throw new ConfigError(`${id}: settings.${name} is not set through settings`, { hint: 'the step keeps Debian\'s file locations and includes' });
      if (commandSettings.has(name)) throw new ConfigError(`${id}: settings.${name} runs a command or loads code as the postgres user: not set through settings`, { hint: 'configure archiving and recovery deliberately, outside zanuri\'s tuning settings' });
      return [name, confValue(value)];
    });
    if (reservedRoles.has(raw.role) || raw.role.startsWith('pg_')) throw new ConfigError(`${id}: role "${raw.role}" is reserved or the superuser; name the application's own role`);
    if (reservedDatabases.has(raw.database)) throw new ConfigError(`${id}: database "${raw.database}" is reserved`);
    if (!raw.listenAddresses.split(',').some((e) => ['localhost', '*', '127.0.0.1', '0.0.0.0'].includes(e))) {
      throw new ConfigError(`${id}: listenAddresses must include localhost (or 127.0.0.1, 0.0.0.0, *)`, { hint: 'zanuri checks the application role over 127.0.0.1; add "localhost," in front' });
    }
    if (raw.allowFrom.length && loopbackOnly(raw.listenAddresses)) {
      throw new ConfigError(`${id}: allowFrom needs the server to listen beyond loopback`, { hint: 'set listenAddresses, e.g. "localhost,10.0.0.5"' });
    }
    return { ...raw, settings };
  },

  packages: (p) => (builtinLocales.has(p.locale) ? ['postgresql'] : ['postgresql', 'locales']),

  facts: (p) => [postgresFact(p), serviceFact('postgresql.service')],

  resources(facts, p, { templates }) {
    const s = facts.get(postgresFact(p));
    const version = s.cluster?.version ?? s.installedVersion ?? s.candidateVersion ?? '<version>';
    const port = s.cluster?.port ?? 5432;
    const unit = serviceUnit(version);
    const pw = passwordPath(p.role);
    const env = envPath(p.role);

    const conf = templates.render('postgresql/50-zanuri.conf', {
      listenAddresses: p.listenAddresses, sslCertFile: p.sslCertFile, sslKeyFile: p.sslKeyFile, settings: p.settings.map(([name, value]) => ({ name, value })),
    });
    const change = settingsChange(facts.get(dropInFact).content, String(conf.text), new Set(s.postmaster));
    const managed = new Set(parseConf(String(conf.text)).keys());
    const pending = s.pendingRestart.filter((k) => managed.has(k));
    // Only a running server can say which parameters need a restart; until it can, restart.
    const wantsRestart = change.restart.length > 0 || pending.length > 0 || !s.queried;
    const restartOk = mayRestart(s, p);
    const warning = wantsRestart && !restartOk ? `; ${restartWarning(s, p, unit, [...new Set([...change.restart, ...pending])])}` : '';
    const dropIn = file(dropInPath(version), conf, {
      mode: 0o644, owner: 'postgres', state: dropInFact,
      // postgres -C parses postgresql.conf with its includes and refuses unknown names and bad values; it needs no running server.
      validateInPlace: { argv: ['sh', '-c', 'cd / && exec runuser -u postgres -- "$1" --config-file="$2" -C data_directory', 'zanuri-pgconf', `/usr/lib/postgresql/${version}/bin/postgres`, `${clusterDir(version)}/postgresql.conf`] },
      notify: [{ unit, op: wantsRestart && restartOk ? 'restart' : 'reload' }],
      whyMissing: `the profile's postgresql.conf settings are not applied (${change.changed.length} parameters)${howApplied(change, s.queried)}${warning}`,
      whyDiffers: change.changed.length ? `${change.changed.join(', ')} differ from the profile${howApplied(change, s.queried)}${warning}` : `${dropInPath(version)} was edited (comments only)`,
    });
    // A restart still owed (an interrupted run, or one refused earlier) comes with the drop-in's handler when that changes too.
    const waiting = dropIn.plan(facts).length || !restartOk ? [] : pending;

    const hba = facts.get(hbaFact);
    const block = templates.render('postgresql/pg_hba.conf', { database: p.database.padEnd(16), role: p.role.padEnd(16), allowFrom: p.allowFrom.map((net) => withMask(net).padEnd(24)) });
    const hbaText = withBlock(hba.exists ? hba.content : null, String(block.text), hbaMarkers, hbaPath(version));

    return [
      ...(s.cluster === null && s.installedVersion
        ? [command('postgresql-cluster', 'postgresql is installed but has no cluster named main', { argv: ['pg_createcluster', '--start', version, 'main'] }, { checkpoint: true, describe: 'the main cluster exists' })]
        : []),
      ...(s.cluster ? [
        command('postgresql-start', s.cluster.online ? null : `the ${version}/main cluster is not running`, { argv: ['systemctl', 'start', '--', unit] }),
        service('postgresql.service', { enabled: true, running: true }),
      ] : []),
      noting(dropIn, notInstalledYet(s)),
      command('postgresql-restart', waiting.length ? `${waiting.join(', ')} changed on disk but wait for a restart` : null, { argv: ['systemctl', 'restart', '--', unit] }),
      file(hbaPath(version), { text: hbaText, ...(block.source ? { source: block.source } : {}) }, {
        mode: 0o640, owner: 'postgres', state: hbaFact,
        validateInPlace: {
          // A hostssl line reads as an error while the running server has ssl off; the drop-in turns it on, and a reload reads postgresql.conf before pg_hba.conf.
          argv: ['sh', '-c', `cd / && q="select line_number, error from pg_hba_file_rules where error is not null and error <> 'hostssl record cannot match because SSL is disabled'" && e=$(runuser -u postgres -- psql -XAtq -p "$1" -c "$q") && [ -z "$e" ] || { printf '%s\\n' "$e" >&2; exit 1; }`, 'zanuri-hba', String(port)],
        },
        notify: [{ unit, op: 'reload' }],
        whyMissing: `${hbaPath(version)} does not exist yet; it gets the zanuri block`,
        whyDiffers: hbaReason(hba.exists ? hba.content : null, hbaPath(version), p),
      }),
      command('postgresql-locale', s.localeAvailable ? null : `the locale ${p.locale} is not generated (locale -a)`, { argv: ['sh', '-c', localeScript, 'zanuri-locale', p.locale] },
        { display: `enable ${p.locale} UTF-8 in /etc/locale.gen and run locale-gen` }),
      command('postgresql-role', roleReason(s, p.role), psqlCmd(p, port, createRoleSql), { display: `psql: CREATE ROLE ${p.role} LOGIN (if missing)` }),
      command('postgresql-database', databaseReason(s, p), psqlCmd(p, port, createDatabaseSql),
        { display: `psql: CREATE DATABASE ${p.database} OWNER ${p.role} ENCODING 'UTF8' LC_COLLATE '${p.locale}' LC_CTYPE '${p.locale}' TEMPLATE template0 (if missing)` }),
      // The application user reaches its env file through these (0711: no listing of the secrets' names).
      directory('/etc/zanuri', { mode: 0o755 }),
      directory(secretsDir, { mode: 0o711 }),
      command('postgresql-password-file', s.passwordFile?.size ? null : `${p.role} has no password file yet; it is generated on the host and never leaves it`,
        { argv: ['sh', '-c', generateScript, 'zanuri-password', pw] }, { display: `generate a random password for ${p.role} on the host into ${pw} (0600 root)` }),
      command('postgresql-password-mode', passwordModeReason(s, pw),
        { argv: ['sh', '-c', 'chown root:root -- "$1" && chmod 600 -- "$1"', 'zanuri-chmod', pw] }, { display: `chown root:root ${pw} && chmod 600 ${pw}` }),
      command('postgresql-password', passwordReason(s, p.role, pw),
        { argv: ['sh', '-c', setPasswordScript, 'zanuri-set-password', String(port), p.role, pw] }, { display: `psql: ALTER ROLE ${p.role} PASSWORD 'SCRAM-SHA-256$...' (the verifier, computed on the host from ${pw})` }),
      command('postgresql-env', envReason(s, p, env, pw),
        { argv: ['sh', '-c', writeEnvScript, 'zanuri-env', p.role, p.database, pw, env, String(port), p.appUser] }, { display: `write ${env} from ${pw} on the host (0600 ${p.appUser})` }),
    ];
  },

  converged(p, facts) {
    const s = facts.get(postgresFact(p));
    const version = s.cluster?.version ?? '<version>';
    const reach = p.allowFrom.length ? `locally and over TLS from ${p.allowFrom.join(', ')}` : 'locally';
    const pending = s.pendingRestart.filter((k) => k === 'listen_addresses' || p.settings.some(([n]) => n === k));
    const waiting = pending.length ? `; ${restartWarning(s, p, serviceUnit(version), pending)}` : '';
    return `PostgreSQL ${version}/main runs the profile's ${p.settings.length} settings, is reachable only ${reach}, and ${p.role} logs in to ${p.database} with ${envPath(p.role)} (owned by ${p.appUser})${waiting}${localeWarning(s, p)}`;
  },

  /** The role logs in over TCP with the file's password, ssl is on, and every managed setting comes from the drop-in (or, with restart=refuse, waits for a restart). */
  async verify(ctx, p) {
    const login = await ctx.run({ argv: ['sh', '-c', loginScript, 'zanuri-verify', p.role, p.database, passwordPath(p.role)] });
    if (!login.ok) throw new CommandError(login, `psql as ${p.role} over 127.0.0.1 with the password in ${passwordPath(p.role)}`);
    const names = ['listen_addresses', 'ssl', 'ssl_cert_file', 'ssl_key_file', ...p.settings.map(([n]) => n)].map((n) => `'${n}'`).join(', ');
    const sql = `select name || case when pending_restart then ' waits for a restart' else ' comes from ' || coalesce(sourcefile, source) end from pg_settings
where name in (${names}) and (pending_restart or coalesce(sourcefile, '') not like '%/conf.d/${dropInName}')
union all select 'ssl is ' || setting from pg_settings where name = 'ssl' and setting <> 'on';\n`;
    const settings = await ctx.run({ argv: ['sh', '-c', settingsScript, 'zanuri-settings'], stdin: sql });
    if (!settings.ok) throw new CommandError(settings, 'reading pg_settings');
    // With restart=refuse a waiting setting was planned with a warning; verify does not undo that choice.
    const bad = settings.stdout.trim().split('\n').filter((l) => l && !(p.restart === 'refuse' && l.endsWith(' waits for a restart')));
    if (bad.length) throw new ConfigError(`${id}: settings not in effect from ${dropInName}: ${bad.join('; ')}`, { hint: 'ALTER SYSTEM (postgresql.auto.conf) overrides conf.d: ALTER SYSTEM RESET the parameter' });
  },
});
