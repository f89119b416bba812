import { CommandError, ConfigError } from '../core/errors.js';
import { plan, type Action, type Handler } from '../core/plan.js';
import { quoteArg } from '../core/quote.js';
import type { Cmd } from '../core/types.js';
import { packagesFact, type FactRequest, type FileState } from '../facts/state.js';
import { cidr, list, object, string, type Raw } from './params.js';
import type { Step } from './types.js';

/**
 * PostgreSQL as Debian ships it, tuned by the profile's postgresql.conf settings (a conf.d drop-in,
 * which Debian's postgresql.conf includes last), reachable only locally unless allowFrom says
 * otherwise, with one application role and database.
 *
 * The role's password is generated ON THE HOST into a root-only file and handed to psql on stdin by
 * a root shell on that host: it never crosses the SSH connection, never sits in argv, a fact, a log
 * or the report. zanuri only ever learns whether the file exists and whether logging in with it works.
 */
export interface PostgresqlParams {
  /** postgresql.conf name -> value, rendered as written (numbers, sizes, times, simple words). */
  settings: Array<[string, string]>;
  /** Comma-separated, as postgresql.conf writes listen_addresses. */
  listenAddresses: string;
  database: string;
  role: string;
  /** Networks allowed to reach the database as the role (scram-sha-256), beyond the local host. */
  allowFrom: string[];
}

const id = 'postgresql';
export const dropInName = '50-zanuri.conf';
export const clusterDir = (version: string): string => `/etc/postgresql/${version}/main`;
export const dropInPath = (version: string): string => `${clusterDir(version)}/conf.d/${dropInName}`;
export const hbaPath = (version: string): string => `${clusterDir(version)}/pg_hba.conf`;
export const passwordPath = (role: string): string => `/etc/zanuri/postgresql/${role}.password`;
export const serviceUnit = (version: string): string => `postgresql@${version}-main.service`;

/** A PostgreSQL identifier that needs no quoting anywhere: SQL, psql -U, pg_hba.conf, a file name. */
export const identifier = /^[a-z_][a-z0-9_]{0,62}$/;
const settingName = /^[a-z_]+$/;
/** A number, a number with a unit (256MB, 2621kB, 200ms, 5min), or a plain lower-case word (on, replica). */
const settingValue = /^(?:-?\d+(?:\.\d+)?(?:[kMGT]?B|us|ms|s|min|h|d)?|[a-z][a-z0-9_-]{0,63})$/;
const listenEntry = /^(?:localhost|\*|(?:\d{1,3}\.){3}\d{1,3}|[0-9a-fA-F:]+)$/;
/** Set by this step from its own parameters, or where Debian keeps its files: not for settings. */
const reservedSettings = new Set(['listen_addresses', 'data_directory', 'config_file', 'hba_file', 'ident_file', 'external_pid_file', 'include', 'include_dir', 'include_if_exists']);
const reservedRoles = new Set(['postgres', 'public', 'none', 'current_user', 'session_user', 'current_role', 'all', 'replication', 'samerole', 'samegroup']);
/**
 * postgresql.conf parameters that take effect only on a restart ("postmaster" context), used when the
 * server cannot be asked (not installed or not running); otherwise pg_settings.context decides.
 */
export const restartSettings = new Set([
  'listen_addresses', 'port', 'max_connections', 'superuser_reserved_connections', 'shared_buffers', 'huge_pages', 'huge_page_size',
  'max_prepared_transactions', 'max_locks_per_transaction', 'max_pred_locks_per_transaction', 'max_worker_processes', 'max_files_per_process',
  'shared_preload_libraries', 'wal_level', 'wal_buffers', 'wal_log_hints', 'max_wal_senders', 'max_replication_slots', 'wal_decode_buffer_size',
  'track_activity_query_size', 'autovacuum_max_workers', 'dynamic_shared_memory_type', 'shared_memory_type', 'min_dynamic_shared_memory',
  'archive_mode', 'hot_standby', 'max_logical_replication_workers', 'old_snapshot_threshold', 'recovery_target', 'unix_socket_directories',
  'unix_socket_group', 'unix_socket_permissions', 'bonjour', 'ssl_library', 'track_commit_timestamp', 'logging_collector', 'event_source',
  'data_sync_retry', 'jit_provider', 'cluster_name', 'max_pred_locks_per_relation',
]);

function settingsParam(p: Raw): Array<[string, string]> {
  const raw = p['settings'];
  if (raw === undefined || raw === null) return [];
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(`${id}: settings must be a mapping of postgresql.conf names to values`);
  return Object.entries(raw as Record<string, unknown>).map(([name, value]): [string, string] => {
    if (!settingName.test(name)) throw new ConfigError(`${id}: settings: ${JSON.stringify(name.slice(0, 80))} is not a postgresql.conf parameter name (lower-case letters and _)`);
    if (name === 'listen_addresses') throw new ConfigError(`${id}: settings.listen_addresses is set by the listenAddresses parameter`);
    if (reservedSettings.has(name)) throw new ConfigError(`${id}: settings.${name} is not set through settings`, { hint: 'the step keeps Debian\'s file locations and includes' });
    let text: string;
    if (typeof value === 'number' && Number.isFinite(value)) text = String(value);
    else if (typeof value === 'boolean') text = value ? 'on' : 'off';
    else if (typeof value === 'string') text = value;
    else throw new ConfigError(`${id}: settings.${name} must be a number, a size like 256MB or a word, got ${JSON.stringify(value)?.slice(0, 80)}`);
    if (!settingValue.test(text)) throw new ConfigError(`${id}: settings.${name} must be a number, a size like 256MB or a word, got ${JSON.stringify(text.slice(0, 80))}`);
    return [name, text];
  });
}

function listenParam(p: Raw): string {
  const value = string(p, id, 'listenAddresses', /^[A-Za-z0-9.:*,]{1,200}$/, 'a comma-separated list of addresses (localhost, *, IPs)', 'localhost');
  const entries = value.split(',');
  for (const entry of entries) {
    if (!listenEntry.test(entry)) throw new ConfigError(`${id}: listenAddresses: ${JSON.stringify(entry)} is not localhost, * or an IP address`);
  }
  if (!entries.some((e) => ['localhost', '*', '127.0.0.1', '0.0.0.0'].includes(e))) {
    throw new ConfigError(`${id}: listenAddresses must include localhost (or 127.0.0.1, 0.0.0.0, *)`, { hint: 'zanuri checks the application role over 127.0.0.1; add "localhost," in front' });
  }
  return value;
}

const loopbackOnly = (listen: string): boolean => listen.split(',').every((e) => ['localhost', '127.0.0.1', '::1'].includes(e));

/** pg_hba.conf wants a mask: a bare address becomes a /32 or /128. */
const withMask = (address: string): string => (address.includes('/') ? address : `${address}/${address.includes(':') ? 128 : 32}`);

function renderValue(value: string): string {
  return /^-?\d/.test(value) ? value : `'${value}'`;
}

export function renderDropIn(p: PostgresqlParams): string {
  return [
    `# Managed by zanuri (postgresql); edits here are overwritten.`,
    `# Debian's postgresql.conf includes conf.d last, so these values win over it (postgresql.auto.conf still wins over them).`,
    `listen_addresses = '${p.listenAddresses}'`,
    ...p.settings.map(([name, value]) => `${name} = ${renderValue(value)}`),
    '',
  ].join('\n');
}

export function renderHba(p: PostgresqlParams): string {
  const row = (...cols: string[]): string => cols.map((c, i) => (i < cols.length - 1 ? c.padEnd([8, 16, 16, 24][i] ?? 8) : c)).join(' ').trimEnd();
  return [
    '# Managed by zanuri (postgresql); edits here are overwritten.',
    '# Local only: peer for Unix sockets, scram-sha-256 over loopback; allowFrom networks reach only the application database as its role.',
    row('# TYPE', 'DATABASE', 'USER', 'ADDRESS', 'METHOD'),
    row('local', 'all', 'postgres', '', 'peer'),
    row('local', 'all', 'all', '', 'peer'),
    row('host', 'all', 'all', '127.0.0.1/32', 'scram-sha-256'),
    row('host', 'all', 'all', '::1/128', 'scram-sha-256'),
    row('local', 'replication', 'all', '', 'peer'),
    row('host', 'replication', 'all', '127.0.0.1/32', 'scram-sha-256'),
    row('host', 'replication', 'all', '::1/128', 'scram-sha-256'),
    ...p.allowFrom.map((net) => row('host', p.database, p.role, withMask(net), 'scram-sha-256')),
    '',
  ].join('\n');
}

/** Reads `name = value` lines of a drop-in, quotes removed; for deciding restart or reload. */
export function parseConf(text: string | null): Map<string, string> {
  const values = new Map<string, string>();
  for (const line of (text ?? '').split('\n')) {
    const match = /^\s*([a-z_][a-z0-9_.]*)\s*=?\s*(?:'([^']*)'|([^\s#]+))/.exec(line);
    if (match?.[1]) values.set(match[1], match[2] ?? match[3] ?? '');
  }
  return values;
}

export interface Cluster {
  version: string;
  port: number;
  online: boolean;
}

export interface PostgresState {
  /** The newest cluster named "main" (pg_lsclusters), null when there is none. */
  cluster: Cluster | null;
  /** The newest server binaries in /usr/lib/postgresql, null when none is installed. */
  installedVersion: string | null;
  /** The major version `apt-get install postgresql` would bring (apt-cache depends), null when unknown. */
  candidateVersion: string | null;
  dropIn: FileState;
  hba: FileState;
  includesConfD: boolean;
  /** systemctl is-enabled postgresql (the unit that starts every cluster at boot). */
  enabled: string;
  /** Whether the server answered the queries below; false leaves them unknown. */
  queried: boolean;
  role: { canLogin: boolean } | null;
  databaseOwner: string | null;
  /** Parameters whose change needs a restart, as this server says. */
  postmaster: string[];
  /** Parameters changed on disk that wait for a restart. */
  pendingRestart: string[];
  /** The password file's metadata, never its content. */
  passwordFile: { mode: string; owner: string; group: string; size: number } | null;
  /** Whether the role logs in over 127.0.0.1 with the password in the file (tested on the host). */
  login: 'ok' | 'failed' | 'unknown';
}

const absentFile: FileState = { exists: false, mode: null, owner: null, group: null, content: null };

/** Newest "main" cluster: "VERSION PORT STATUS". Shared by the fact and by verify(). */
const findCluster = `pg_lsclusters -h 2>/dev/null | awk '$2 == "main" { print $1, $3, $4 }' | sort -n | tail -n 1`;

/**
 * Everything plan() needs, in one section: the cluster's version is only known on the host, so
 * the paths that depend on it are read in the same script. Runs as root; psql runs as postgres.
 */
export function postgresFact(p: Pick<PostgresqlParams, 'role' | 'database'>): FactRequest<PostgresState> {
  const sql = [
    `select 'role', rolcanlogin::text from pg_roles where rolname = '${p.role}'`,
    `select 'db', pg_get_userbyid(datdba)::text from pg_database where datname = '${p.database}'`,
    `select 'postmaster', name from pg_settings where context = 'postmaster'`,
    `select 'pending', name from pg_settings where pending_restart`,
  ].join(' union all ');
  const script = [
    '(',
    `c=$(${findCluster})`,
    'printf "cluster %s\\n" "$c"',
    `printf "installed %s\\n" "$(ls /usr/lib/postgresql 2>/dev/null | grep -E '^[0-9]+(\\.[0-9]+)?$' | sort -n | tail -n 1)"`,
    `printf "candidate %s\\n" "$(apt-cache depends postgresql 2>/dev/null | sed -n 's/^ *Depends: postgresql-\\([0-9][0-9.]*\\)$/\\1/p' | head -n 1)"`,
    'set -- $c; v=${1:-}; port=${2:-5432}; status=${3:-}',
    'if [ -n "$v" ]; then',
    '  d=/etc/postgresql/$v/main',
    `  for f in "$d/conf.d/${dropInName}" "$d/pg_hba.conf"; do`,
    `    if [ -f "$f" ]; then printf "file %s %s\\n" "$(stat -c '%a %U %G' "$f")" "$(base64 -w0 < "$f")"; else echo "file absent"; fi`,
    '  done',
    `  grep -Eq "^[[:space:]]*include_dir[[:space:]]*=?[[:space:]]*'conf\\.d'" "$d/postgresql.conf" && echo includes-conf.d`,
    '  printf "enabled %s\\n" "$(systemctl is-enabled postgresql.service 2>/dev/null)"',
    `  if [ "$status" = online ]; then cd / && runuser -u postgres -- psql -XAtq -F ' ' -p "$port" -c ${quoteArg(sql)} && echo queried; fi`,
    'fi',
    `pw=${quoteArg(passwordPath(p.role))}`,
    'if [ -f "$pw" ]; then',
    `  printf "pwfile %s\\n" "$(stat -c '%a %U %G %s' "$pw")"`,
    '  if [ "$status" = online ] && t=$(mktemp); then',
    "    sed 's/^/*:*:*:*:/' \"$pw\" > \"$t\"",
    `    if PGPASSFILE=$t PGCONNECT_TIMEOUT=5 psql -XAtqw -h 127.0.0.1 -p "$port" -U ${quoteArg(p.role)} -d ${quoteArg(p.database)} -c 'select 1' >/dev/null 2>&1; then echo "login ok"; else echo "login failed"; fi`,
    '    rm -f "$t"',
    '  fi',
    'fi',
    ')',
  ].join('\n');
  return {
    key: `postgresql:${p.role}:${p.database}`,
    script,
    parse(output) {
      const state: PostgresState = {
        cluster: null, installedVersion: null, candidateVersion: null, dropIn: absentFile, hba: absentFile, includesConfD: false, enabled: 'not-found',
        queried: false, role: null, databaseOwner: null, postmaster: [], pendingRestart: [], passwordFile: null, login: 'unknown',
      };
      const files: FileState[] = [];
      for (const line of output.split('\n')) {
        const [word = '', ...rest] = line.split(' ');
        const arg = rest.join(' ').trim();
        if (word === 'cluster') {
          const m = /^(\d+(?:\.\d+)?) (\d+) (\S+)$/.exec(arg);
          if (m) state.cluster = { version: m[1] as string, port: Number(m[2]), online: m[3] === 'online' };
        } else if (word === 'installed' && arg) state.installedVersion = arg;
        else if (word === 'candidate' && arg) state.candidateVersion = arg;
        else if (word === 'file') {
          const m = /^(\d+) (\S+) (\S+) ?(\S*)$/.exec(arg);
          files.push(m ? { exists: true, mode: m[1] ?? null, owner: m[2] ?? null, group: m[3] ?? null, content: Buffer.from(m[4] ?? '', 'base64').toString('utf8') } : absentFile);
        } else if (word === 'includes-conf.d') state.includesConfD = true;
        else if (word === 'enabled') state.enabled = arg || 'not-found';
        else if (word === 'role') state.role = { canLogin: arg === 'true' };
        else if (word === 'db') state.databaseOwner = arg;
        else if (word === 'postmaster') state.postmaster.push(arg);
        else if (word === 'pending') state.pendingRestart.push(arg);
        else if (word === 'queried') state.queried = true;
        else if (word === 'pwfile') {
          const m = /^(\d+) (\S+) (\S+) (\d+)$/.exec(arg);
          if (m) state.passwordFile = { mode: m[1] as string, owner: m[2] as string, group: m[3] as string, size: Number(m[4]) };
        } else if (word === 'login') state.login = arg === 'ok' ? 'ok' : 'failed';
      }
      state.dropIn = files[0] ?? absentFile;
      state.hba = files[1] ?? absentFile;
      return state;
    },
  };
}

/** psql as the postgres superuser, SQL on stdin, values as psql variables (:'role', :"db"), never spliced. */
function psqlCmd(p: PostgresqlParams, port: number, sql: string): Cmd {
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

/** Proves the role logs in over TCP with the file's password; the password goes through a temp PGPASSFILE. */
const loginScript = `set -eu
role=$1 db=$2 file=$3
c=$(${findCluster})
set -- $c
[ $# -ge 3 ] || { echo "zanuri: no PostgreSQL cluster named main (pg_lsclusters)" >&2; exit 1; }
port=$2
t=$(mktemp)
trap 'rm -f -- "$t"' EXIT
sed 's/^/*:*:*:*:/' "$file" > "$t"
out=$(PGPASSFILE=$t PGCONNECT_TIMEOUT=10 psql -XAtqw -h 127.0.0.1 -p "$port" -U "$role" -d "$db" -c 'select 1')
[ "$out" = 1 ] || { echo "zanuri: select 1 as $role returned $out" >&2; exit 1; }`;

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

export const postgresql: Step<PostgresqlParams> = {
  id,
  title: 'PostgreSQL',

  parseParams(raw) {
    const p = object(raw, id, ['settings', 'listenAddresses', 'database', 'role', 'allowFrom']);
    const role = string(p, id, 'role', identifier, 'a PostgreSQL identifier (lower-case letters, digits, _; at most 63)', 'app');
    if (reservedRoles.has(role) || role.startsWith('pg_')) throw new ConfigError(`${id}: role "${role}" is reserved or the superuser; name the application's own role`);
    const database = string(p, id, 'database', identifier, 'a PostgreSQL identifier (lower-case letters, digits, _; at most 63)', 'app');
    if (['postgres', 'template0', 'template1', 'all', 'replication', 'sameuser', 'samerole'].includes(database)) throw new ConfigError(`${id}: database "${database}" is reserved`);
    const listenAddresses = listenParam(p);
    const allowFrom = list(p, id, 'allowFrom', (value, i) => {
      if (typeof value !== 'string' || !cidr.test(value)) throw new ConfigError(`${id}: allowFrom[${i}] must be an IP network like 10.0.0.0/24, got ${JSON.stringify(value)?.slice(0, 80)}`);
      return value;
    });
    if (allowFrom.length && loopbackOnly(listenAddresses)) {
      throw new ConfigError(`${id}: allowFrom needs the server to listen beyond loopback`, { hint: 'set listenAddresses, e.g. "localhost,10.0.0.5"' });
    }
    return { settings: settingsParam(p), listenAddresses, database, role, allowFrom };
  },

  packages: () => ['postgresql'],

  facts: (p) => [postgresFact(p), packagesFact(['postgresql'])],

  plan(facts, p) {
    const s = facts.get(postgresFact(p));
    const packageInstalled = facts.get(packagesFact(['postgresql']))['postgresql'] !== null;
    const known = s.cluster?.version ?? s.installedVersion ?? s.candidateVersion;
    const version = known ?? '<version>';
    const port = s.cluster?.port ?? 5432;
    const unit = serviceUnit(version);
    const pw = passwordPath(p.role);
    // Say in every why when the plan is made before the package (and so the cluster) exists.
    const fresh = s.cluster === null && !packageInstalled;
    const note = fresh
      ? known
        ? ` (postgresql is not installed yet: planned for ${version}, the version apt would install; the paths are certain only after the install)`
        : ' (postgresql is not installed yet and apt names no version: the cluster directory is known only after the install)'
      : '';
    const actions: Action[] = [];

    if (s.cluster === null && packageInstalled) {
      actions.push({ kind: 'run', cmd: { argv: ['pg_createcluster', '--start', version, 'main'] }, why: `postgresql is installed but has no cluster named main` });
    } else if (s.cluster && !s.cluster.online) {
      actions.push({ kind: 'service', unit, op: 'start', why: `the ${version}/main cluster is not running` });
    }
    if (!fresh && s.cluster && s.enabled !== 'enabled') {
      actions.push({ kind: 'service', unit: 'postgresql.service', op: 'enable', why: `postgresql.service is ${s.enabled}: the cluster would not start at boot` });
    }

    // Settings: restart when a changed parameter needs one (listen_addresses, shared_buffers, ...), else reload.
    const wanted = renderDropIn(p);
    if (s.dropIn.content !== wanted || s.dropIn.mode !== '644' || s.dropIn.owner !== 'postgres' || s.dropIn.group !== 'postgres') {
      const before = parseConf(s.dropIn.content);
      const after = parseConf(wanted);
      const changed = [...new Set([...before.keys(), ...after.keys()])].filter((k) => before.get(k) !== after.get(k));
      const needsRestart = s.queried ? new Set(s.postmaster) : restartSettings;
      const restart = changed.filter((k) => needsRestart.has(k));
      const handler: Handler = { unit, op: restart.length || !s.cluster?.online ? 'restart' : 'reload' };
      actions.push({
        kind: 'put', path: dropInPath(version), content: wanted, mode: 0o644, owner: 'postgres', group: 'postgres', before: s.dropIn.content,
        // postgres -C parses postgresql.conf with its includes and refuses unknown names and bad values; it needs no running server.
        validateInPlace: { argv: ['sh', '-c', 'cd / && exec runuser -u postgres -- "$1" --config-file="$2" -C data_directory', 'zanuri-pgconf', `/usr/lib/postgresql/${version}/bin/postgres`, `${clusterDir(version)}/postgresql.conf`] },
        notify: [handler],
        why: (!s.dropIn.exists
          ? `the profile's postgresql.conf settings are not applied (${changed.length} parameters)`
          : changed.length ? `${changed.join(', ')} differ from the profile` : s.dropIn.content !== wanted ? `${dropInPath(version)} was edited (comments only)` : `${dropInPath(version)} is not 0644 postgres:postgres`)
          + (changed.length ? (restart.length ? `; ${restart.join(', ')} need a restart` : '; a reload applies them') : '')
          + (!fresh && !s.includesConfD ? `; warning: ${clusterDir(version)}/postgresql.conf does not include conf.d` : '')
          + note,
      });
    } else if (s.cluster?.online) {
      const ours = new Set(parseConf(wanted).keys());
      const waiting = s.pendingRestart.filter((k) => ours.has(k));
      if (waiting.length) actions.push({ kind: 'service', unit, op: 'restart', why: `${waiting.join(', ')} changed on disk but wait for a restart` });
    }

    const hba = renderHba(p);
    if (s.hba.content !== hba || s.hba.mode !== '640' || s.hba.owner !== 'postgres' || s.hba.group !== 'postgres') {
      actions.push({
        kind: 'put', path: hbaPath(version), content: hba, mode: 0o640, owner: 'postgres', group: 'postgres', before: s.hba.content,
        validateInPlace: {
          argv: ['sh', '-c', 'cd / && n=$(runuser -u postgres -- psql -XAtq -p "$1" -c "select count(*) from pg_hba_file_rules where error is not null") && [ "$n" = 0 ] || { runuser -u postgres -- psql -XAtq -p "$1" -c "select line_number, error from pg_hba_file_rules where error is not null" >&2; exit 1; }', 'zanuri-hba', String(port)],
        },
        notify: [{ unit, op: 'reload' }],
        why: (s.hba.exists ? `${hbaPath(version)} is not the local-only${p.allowFrom.length ? ` (+${p.allowFrom.join(', ')})` : ''} access list` : 'client access is not restricted to this host yet') + note,
      });
    }

    const unknown = !s.queried;
    if (unknown || !s.role?.canLogin) {
      actions.push({
        kind: 'run', cmd: psqlCmd(p, port, createRoleSql), display: `psql: CREATE ROLE ${p.role} LOGIN (if missing)`,
        why: (unknown ? `the server cannot be asked yet, role ${p.role} is created if missing` : s.role ? `role ${p.role} cannot log in` : `role ${p.role} does not exist`) + note,
      });
    }
    if (unknown || s.databaseOwner !== p.role) {
      actions.push({
        kind: 'run', cmd: psqlCmd(p, port, createDatabaseSql), display: `psql: CREATE DATABASE ${p.database} OWNER ${p.role} (if missing)`,
        why: (unknown ? `the server cannot be asked yet, database ${p.database} is created if missing` : s.databaseOwner ? `database ${p.database} is owned by ${s.databaseOwner}, not ${p.role}` : `database ${p.database} does not exist`) + note,
      });
    }

    const file = s.passwordFile;
    if (!file || file.size === 0) {
      actions.push({
        kind: 'run', cmd: { argv: ['sh', '-c', generateScript, 'zanuri-password', pw] },
        display: `generate a random password for ${p.role} on the host into ${pw} (0600 root)`,
        why: `${p.role} has no password file yet; it is generated on the host and never leaves it`,
      });
    } else if (file.mode !== '600' || file.owner !== 'root' || file.group !== 'root') {
      actions.push({
        kind: 'run', cmd: { argv: ['sh', '-c', 'chown root:root -- "$1" && chmod 600 -- "$1"', 'zanuri-chmod', pw] }, display: `chown root:root ${pw} && chmod 600 ${pw}`,
        why: `${pw} is ${file.mode} ${file.owner}:${file.group}, not 0600 root:root`,
      });
    }
    if (!file || file.size === 0 || s.login !== 'ok') {
      actions.push({
        kind: 'run', cmd: { argv: ['sh', '-c', setPasswordScript, 'zanuri-set-password', String(port), p.role, pw] },
        display: `psql: ALTER ROLE ${p.role} PASSWORD (read from ${pw} on the host)`,
        why: (!file || file.size === 0 ? `${p.role} gets the new password` : s.login === 'failed' ? `${p.role} cannot log in over 127.0.0.1 with the password in ${pw}` : `whether ${p.role} logs in with ${pw} cannot be checked yet`) + note,
      });
    }

    return plan(actions, `PostgreSQL ${version}/main runs the profile's ${p.settings.length} settings, is reachable only ${p.allowFrom.length ? `locally and from ${p.allowFrom.join(', ')}` : 'locally'}, and ${p.role} logs in to ${p.database} with the password in ${pw}`);
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
};
