import { CommandError, ConfigError } from '../core/errors.js';
import { octal } from '../core/plan.js';
import { quoteArg } from '../core/quote.js';
import type { Cmd } from '../core/types.js';
import { computedFileFact, serviceFact, type FactRequest, type FactValues, type FileState } from '../facts/state.js';
import { command } from '../resources/command.js';
import { file } from '../resources/file.js';
import { service } from '../resources/service.js';
import { withReason, type Resource } from '../resources/types.js';
import { cidr, params, Type } from './schema.js';
import { defineStep } from './types.js';

/**
 * PostgreSQL as Debian ships it, tuned by the profile's postgresql.conf settings (a conf.d drop-in,
 * which Debian's postgresql.conf includes last), reachable only locally unless allowFrom says
 * otherwise, with one application role and database.
 *
 * The role's password is generated ON THE HOST into a root-only file and handed to psql on stdin by
 * a root shell on that host: it never crosses the SSH connection, never sits in argv, a fact, a log
 * or the report. zanuri only ever learns the file's metadata and whether logging in with it works.
 */
const id = 'postgresql';
const dropInName = '50-zanuri.conf';
const clusterDir = (version: string): string => `/etc/postgresql/${version}/main`;
export const dropInPath = (version: string): string => `${clusterDir(version)}/conf.d/${dropInName}`;
export const hbaPath = (version: string): string => `${clusterDir(version)}/pg_hba.conf`;
export const passwordPath = (role: string): string => `/etc/zanuri/postgresql/${role}.password`;
const serviceUnit = (version: string): string => `postgresql@${version}-main.service`;

const identifier = '^[a-z_][a-z0-9_]{0,62}$';
const settingName = /^[a-z_]+$/;
const listenEntry = '(?:localhost|\\*|(?:\\d{1,3}\\.){3}\\d{1,3}|[0-9a-fA-F:]+)';
/** Set by this step from its own parameters, or where Debian keeps its files: not for settings. */
const reservedSettings = new Set(['data_directory', 'config_file', 'hba_file', 'ident_file', 'external_pid_file', 'include', 'include_dir', 'include_if_exists']);
const reservedRoles = new Set(['postgres', 'public', 'none', 'current_user', 'session_user', 'current_role', 'all', 'replication', 'samerole', 'samegroup']);
const reservedDatabases = new Set(['postgres', 'template0', 'template1', 'all', 'replication', 'sameuser', 'samerole']);

const pgIdentifier = (description: string) => Type.String({ pattern: identifier, what: 'a PostgreSQL identifier (lower-case letters, digits, _; at most 63)', default: 'app', description });

const schema = params({
  settings: Type.Record(Type.String(), Type.Union([Type.Number(), Type.Boolean(), Type.String({ pattern: '^(?:-?\\d+(?:\\.\\d+)?(?:[kMGT]?B|us|ms|s|min|h|d)?|[a-z][a-z0-9_-]{0,63})$' })], {
    what: 'a number, a size like 256MB or a word',
  }), { default: {}, description: 'postgresql.conf parameters and values (numbers, sizes like 256MB, times like 200ms, plain words), written to a conf.d drop-in; a profile\'s postgresql.settings land here.' }),
  listenAddresses: Type.String({
    pattern: `^${listenEntry}(?:,${listenEntry})*$`, maxLength: 200, default: 'localhost',
    what: 'a comma-separated list of localhost, * and IP addresses', description: 'listen_addresses, comma-separated; must include localhost (or 127.0.0.1, 0.0.0.0, *).',
  }),
  database: pgIdentifier('The application database, owned by the role.'),
  role: pgIdentifier('The application role; its password is generated on the host into /etc/zanuri/postgresql/ROLE.password (0600 root).'),
  allowFrom: Type.Array(cidr(), { default: [], description: 'Networks that may reach the application database as its role (scram-sha-256), beyond the local host.' }),
});

/** Numbers and sizes go bare into postgresql.conf, words quoted. */
const confValue = (value: string | number | boolean): string => {
  const text = typeof value === 'boolean' ? (value ? 'on' : 'off') : String(value);
  return /^-?\d/.test(text) ? text : `'${text}'`;
};

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
  /** Parameters whose change needs a restart, as this server says. */
  postmaster: string[];
  /** Parameters changed on disk that wait for a restart. */
  pendingRestart: string[];
  /** The password file's metadata, never its content. */
  passwordFile: { mode: number; owner: string; group: string; size: number } | null;
  /** Whether the role logs in over 127.0.0.1 with the password in the file (tested on the host). */
  login: 'ok' | 'failed' | 'unknown';
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
export function postgresFact(p: { role: string; database: string }): FactRequest<PostgresState> {
  const sql = [
    `select 'role', rolcanlogin::text from pg_roles where rolname = :'role'`,
    `select 'db', pg_get_userbyid(datdba)::text from pg_database where datname = :'db'`,
    `select 'postmaster', name from pg_settings where context = 'postmaster'`,
    `select 'pending', name from pg_settings where pending_restart;`,
  ].join(' union all ');
  const [role, db, pw] = [p.role, p.database, passwordPath(p.role)].map(quoteArg);
  const script = [
    `( c=$(${findCluster}); printf "cluster %s\\n" "$c"`,
    `printf "installed %s\\n" "$(ls /usr/lib/postgresql 2>/dev/null | grep -E '^[0-9]+(\\.[0-9]+)?$' | sort -n | tail -n 1)"`,
    `printf "candidate %s\\n" "$(apt-cache depends postgresql 2>/dev/null | sed -n 's/^ *Depends: postgresql-\\([0-9][0-9.]*\\)$/\\1/p' | head -n 1)"`,
    'set -- $c; cd /',
    `[ "\${3:-}" = online ] && printf '%s\\n' ${quoteArg(sql)} | runuser -u postgres -- psql -XAtq -F ' ' -p "$2" -v role=${role} -v db=${db} && echo queried`,
    `[ -f ${pw} ] && printf "pwfile %s\\n" "$(stat -c '%a %U %G %s' ${pw})"`,
    `if [ "\${3:-}" = online ] && [ -s ${pw} ]; then sh -c ${quoteArg(loginScript)} zanuri-login ${role} ${db} ${pw} "$2" >/dev/null 2>&1 && echo login ok || echo login failed; fi )`,
  ].join('\n');
  return {
    key: `postgresql:${p.role}:${p.database}`,
    script,
    parse(output) {
      const state: PostgresState = {
        cluster: null, installedVersion: null, candidateVersion: null, queried: false, role: null, databaseOwner: null,
        postmaster: [], pendingRestart: [], passwordFile: null, login: 'unknown',
      };
      for (const line of output.split('\n')) {
        const [word = '', ...rest] = line.split(' ');
        const arg = rest.join(' ').trim();
        const cluster = /^(\d+(?:\.\d+)?) (\d+) (\S+)$/.exec(arg);
        const pwfile = /^([0-7]+) (\S+) (\S+) (\d+)$/.exec(arg);
        if (word === 'cluster' && cluster) state.cluster = { version: cluster[1] as string, port: Number(cluster[2]), online: cluster[3] === 'online' };
        else if (word === 'installed' && arg) state.installedVersion = arg;
        else if (word === 'candidate' && arg) state.candidateVersion = arg;
        else if (word === 'role') state.role = { canLogin: arg === 'true' };
        else if (word === 'db') state.databaseOwner = arg;
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
function psqlCmd(p: { role: string; database: string }, port: number, sql: string): Cmd {
  return {
    argv: ['sh', '-c', 'cd / && exec runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -v VERBOSITY=terse -p "$1" -v role="$2" -v db="$3"', 'zanuri-psql', String(port), p.role, p.database],
    stdin: sql,
  };
}

/** Writes 32 random letters and digits into a new root-only file, unless the file already holds something. */
const generateScript = `set -eu
file=$1
[ -s "$file" ] && exit 0
umask 077
mkdir -p -m 0700 -- "$(dirname -- "$file")"
tmp=$(mktemp -- "$file.XXXXXX")
trap 'rm -f -- "$tmp"' EXIT
LC_ALL=C tr -dc 'A-Za-z0-9' < /dev/urandom | head -c 32 > "$tmp"
chown root:root "$tmp"
chmod 600 "$tmp"
mv -f -- "$tmp" "$file"
trap - EXIT`;

/**
 * Sets the role's password from the file. The root shell reads the file and writes a psql \\set line
 * into psql's stdin; psql (as postgres) never needs to read the root-only file. Statement logging is
 * off for the session, errors are terse (no LINE echo), so the value reaches no log either.
 */
const setPasswordScript = `set -eu
port=$1 role=$2 file=$3
[ "$(grep -c '' "$file")" = 1 ] && grep -qx '[A-Za-z0-9]\\{16,200\\}' "$file" || { echo "zanuri: $file must hold one line of 16 to 200 letters and digits" >&2; exit 3; }
cd /
{
  printf '%s' "\\\\set pw '"
  tr -d '\\n' < "$file"
  printf "'\\n"
  printf '%s\\n' "SET log_statement = 'none';" "SET log_min_error_statement = 'panic';" "SET log_min_duration_statement = -1;" "SET password_encryption = 'scram-sha-256';" "ALTER ROLE :\\"role\\" PASSWORD :'pw';"
} | runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -v VERBOSITY=terse -v SHOW_CONTEXT=never -p "$port" -v role="$role"`;

/** Lists the managed settings that are not in effect from the drop-in (overridden, or waiting for a restart). */
const settingsScript = `set -eu
c=$(${findCluster})
set -- $c
cd /
runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 -p "$2"`;

const createRoleSql = `SELECT format('CREATE ROLE %I LOGIN', :'role') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role') \\gexec
SELECT format('ALTER ROLE %I LOGIN', :'role') WHERE EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role' AND NOT rolcanlogin) \\gexec
`;
const createDatabaseSql = `SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'role') WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \\gexec
SELECT format('ALTER DATABASE %I OWNER TO %I', :'db', :'role') WHERE EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db' AND pg_get_userbyid(datdba) <> :'role') \\gexec
`;

type Params = { settings: Array<[string, string]>; listenAddresses: string; database: string; role: string; allowFrom: string[] };

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

export const postgresql = defineStep({
  id,
  title: 'PostgreSQL',
  params: schema,

  check(raw): Params {
    const settings = Object.entries(raw.settings).map(([name, value]): [string, string] => {
      if (!settingName.test(name)) throw new ConfigError(`${id}: settings: ${JSON.stringify(name.slice(0, 80))} is not a postgresql.conf parameter name (lower-case letters and _)`);
      if (name === 'listen_addresses') throw new ConfigError(`${id}: settings.listen_addresses is set by the listenAddresses parameter`);
      if (reservedSettings.has(name)) throw new ConfigError(`${id}: settings.${name} is not set through settings`, { hint: 'the step keeps Debian\'s file locations and includes' });
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

  packages: () => ['postgresql'],

  facts: (p) => [postgresFact(p), serviceFact('postgresql.service')],

  resources(facts, p, { templates }) {
    const s = facts.get(postgresFact(p));
    const version = s.cluster?.version ?? s.installedVersion ?? s.candidateVersion ?? '<version>';
    const port = s.cluster?.port ?? 5432;
    const unit = serviceUnit(version);
    const pw = passwordPath(p.role);

    const conf = templates.render('postgresql/50-zanuri.conf', { listenAddresses: p.listenAddresses, settings: p.settings.map(([name, value]) => ({ name, value })) });
    const change = settingsChange(facts.get(dropInFact).content, String(conf.text), new Set(s.postmaster));
    const managed = new Set(parseConf(String(conf.text)).keys());
    const pending = s.pendingRestart.filter((k) => managed.has(k));
    const dropIn = file(dropInPath(version), conf, {
      mode: 0o644, owner: 'postgres', state: dropInFact,
      // postgres -C parses postgresql.conf with its includes and refuses unknown names and bad values; it needs no running server.
      validateInPlace: { argv: ['sh', '-c', 'cd / && exec runuser -u postgres -- "$1" --config-file="$2" -C data_directory', 'zanuri-pgconf', `/usr/lib/postgresql/${version}/bin/postgres`, `${clusterDir(version)}/postgresql.conf`] },
      // Only a running server can say which parameters need a restart; until it can, restart.
      notify: [{ unit, op: change.restart.length || pending.length || !s.queried ? 'restart' : 'reload' }],
      whyMissing: `the profile's postgresql.conf settings are not applied (${change.changed.length} parameters)${howApplied(change, s.queried)}`,
      whyDiffers: change.changed.length ? `${change.changed.join(', ')} differ from the profile${howApplied(change, s.queried)}` : `${dropInPath(version)} was edited (comments only)`,
    });
    // A restart still owed (an interrupted run) comes with the drop-in's handler when that changes too.
    const waiting = dropIn.plan(facts).length ? [] : pending;

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
      file(hbaPath(version), templates.render('postgresql/pg_hba.conf', { database: p.database.padEnd(16), role: p.role.padEnd(16), allowFrom: p.allowFrom.map((net) => withMask(net).padEnd(24)) }), {
        mode: 0o640, owner: 'postgres', state: hbaFact,
        validateInPlace: {
          argv: ['sh', '-c', 'cd / && n=$(runuser -u postgres -- psql -XAtq -p "$1" -c "select count(*) from pg_hba_file_rules where error is not null") && [ "$n" = 0 ] || { runuser -u postgres -- psql -XAtq -p "$1" -c "select line_number, error from pg_hba_file_rules where error is not null" >&2; exit 1; }', 'zanuri-hba', String(port)],
        },
        notify: [{ unit, op: 'reload' }],
        whyMissing: 'client access is not restricted to this host yet',
        whyDiffers: `${hbaPath(version)} is not the local-only${p.allowFrom.length ? ` (+${p.allowFrom.join(', ')})` : ''} access list`,
      }),
      command('postgresql-role', roleReason(s, p.role), psqlCmd(p, port, createRoleSql), { display: `psql: CREATE ROLE ${p.role} LOGIN (if missing)` }),
      command('postgresql-database', databaseReason(s, p), psqlCmd(p, port, createDatabaseSql), { display: `psql: CREATE DATABASE ${p.database} OWNER ${p.role} (if missing)` }),
      command('postgresql-password-file', s.passwordFile?.size ? null : `${p.role} has no password file yet; it is generated on the host and never leaves it`,
        { argv: ['sh', '-c', generateScript, 'zanuri-password', pw] }, { display: `generate a random password for ${p.role} on the host into ${pw} (0600 root)` }),
      command('postgresql-password-mode', passwordModeReason(s, pw),
        { argv: ['sh', '-c', 'chown root:root -- "$1" && chmod 600 -- "$1"', 'zanuri-chmod', pw] }, { display: `chown root:root ${pw} && chmod 600 ${pw}` }),
      command('postgresql-password', passwordReason(s, p.role, pw),
        { argv: ['sh', '-c', setPasswordScript, 'zanuri-set-password', String(port), p.role, pw] }, { display: `psql: ALTER ROLE ${p.role} PASSWORD (read from ${pw} on the host)` }),
    ];
  },

  converged(p, facts) {
    const version = facts.get(postgresFact(p)).cluster?.version ?? '<version>';
    const reach = p.allowFrom.length ? `locally and from ${p.allowFrom.join(', ')}` : 'locally';
    return `PostgreSQL ${version}/main runs the profile's ${p.settings.length} settings, is reachable only ${reach}, and ${p.role} logs in to ${p.database} with the password in ${passwordPath(p.role)}`;
  },

  /** The role logs in over TCP with the file's password, and every managed setting comes from the drop-in. */
  async verify(ctx, p) {
    const login = await ctx.run({ argv: ['sh', '-c', loginScript, 'zanuri-verify', p.role, p.database, passwordPath(p.role)] });
    if (!login.ok) throw new CommandError(login, `psql as ${p.role} over 127.0.0.1 with the password in ${passwordPath(p.role)}`);
    const names = ['listen_addresses', ...p.settings.map(([n]) => n)].map((n) => `'${n}'`).join(', ');
    const sql = `select name || ' comes from ' || coalesce(sourcefile, source) from pg_settings where name in (${names}) and coalesce(sourcefile, '') not like '%/conf.d/${dropInName}'
union all select name || ' waits for a restart' from pg_settings where pending_restart and name in (${names});\n`;
    const settings = await ctx.run({ argv: ['sh', '-c', settingsScript, 'zanuri-settings'], stdin: sql });
    if (!settings.ok) throw new CommandError(settings, 'reading pg_settings');
    const bad = settings.stdout.trim();
    if (bad) throw new ConfigError(`${id}: settings not in effect from ${dropInName}: ${bad.split('\n').join('; ')}`, { hint: 'ALTER SYSTEM (postgresql.auto.conf) overrides conf.d: ALTER SYSTEM RESET the parameter' });
  },
});
