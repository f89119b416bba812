import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Action } from '../../../src/core/plan.js';
import type { Cmd, RunResult } from '../../../src/core/types.js';
import { createHash, createHmac, pbkdf2Sync } from 'node:crypto';
import { directoryFact, serviceFact, type FactRequest } from '../../../src/facts/state.js';
import { withBlock } from '../../../src/resources/block.js';
import { scramPerl } from '../../../src/steps/postgresql-host.js';
import { blankFacts } from '../../../src/engine/gather.js';
import { resourceFacts, stepFacts } from '../../../src/steps/plan.js';
import type { HostContext } from '../../../src/steps/types.js';
import { dropInFact, dropInPath, envPath, hbaFact, hbaMarkers, hbaPath, passwordPath, postgresFact, postgresql, secretsDir } from '../../../src/steps/postgresql.js';
import { ctx, factsOf, planOf, present } from './facts-of.js';

/** profiles/aikovrr-minimum.yaml postgresql.settings, as profileParams() hands them over (YAML numbers stay numbers). */
const minimum = {
  max_connections: 100, shared_buffers: '256MB', effective_cache_size: '1GB', maintenance_work_mem: '64MB', checkpoint_completion_target: 0.9,
  wal_buffers: '16MB', default_statistics_target: 100, random_page_cost: 1.1, effective_io_concurrency: 200, work_mem: '2621kB', min_wal_size: '1GB', max_wal_size: '4GB',
};
const params = postgresql.parseParams({ settings: minimum });
const fact = postgresFact(params);
const hostile = ['a;reboot', '$(id)', '`id`', "x'y", 'a\nb', 'a b', '../x', ''];
const pw = passwordPath('app');
const env = envPath('app');
const unit = 'postgresql@15-main.service';

const dropIn = `# Managed by zanuri (postgresql); edits here are overwritten.
# Debian's postgresql.conf includes conf.d last, so these values win over it (postgresql.auto.conf still wins over them).
listen_addresses = 'localhost'
# Remote clients are let in over TLS only (hostssl in pg_hba.conf).
ssl = on
ssl_cert_file = '/etc/ssl/certs/ssl-cert-snakeoil.pem'
ssl_key_file = '/etc/ssl/private/ssl-cert-snakeoil.key'
max_connections = 100
shared_buffers = 256MB
effective_cache_size = 1GB
maintenance_work_mem = 64MB
checkpoint_completion_target = 0.9
wal_buffers = 16MB
default_statistics_target = 100
random_page_cost = 1.1
effective_io_concurrency = 200
work_mem = 2621kB
min_wal_size = 1GB
max_wal_size = 4GB
`;
const hbaRules = ['local all postgres peer', 'host app app 127.0.0.1/32 scram-sha-256', 'host app app ::1/128 scram-sha-256'];
/** Debian's pg_hba.conf rules, and a replication line the HA setup added. */
const debianHba = `# Database administrative login by Unix domain socket
local   all             postgres                                peer
local   all             all                                     peer
host    all             all             127.0.0.1/32            scram-sha-256
host    replication     all             127.0.0.1/32            scram-sha-256
host    replication     replicator      10.213.0.0/24           scram-sha-256
`;

interface Host {
  /** What the step's own fact prints, line by line. */
  state: string[];
  dropIn?: string | null;
  hba?: string | null;
  service?: string;
  dirs?: [string, string];
}
const rows = ['role true', 'db app', 'dblocale UTF8 C.UTF-8 C.UTF-8', 'userdbs 1', 'postmaster shared_buffers', 'postmaster max_connections', 'postmaster listen_addresses', 'postmaster wal_buffers', 'queried'];
const online = ['cluster 15 5432 online', 'installed 15', 'candidate 15'];
function entries(host: Host, p = params): Array<[FactRequest<unknown>, string]> {
  const file = (text: string | null | undefined, mode: string): string => (text == null ? 'absent' : present(text, mode, 'postgres'));
  return [
    [postgresFact(p), host.state.join('\n')], [serviceFact('postgresql.service'), host.service ?? 'enabled\nactive'],
    [dropInFact, file(host.dropIn, '644')], [hbaFact, file(host.hba, '640')],
    [directoryFact('/etc/zanuri'), host.dirs?.[0] ?? 'dir 755 root root'], [directoryFact(secretsDir), host.dirs?.[1] ?? 'dir 711 root root'],
  ];
}
/** The pg_hba.conf the step writes for these parameters over `hba` (Debian's file by default). */
function hbaOf(p = params, hba: string | null = debianHba): string {
  const put = planOf(postgresql, entries({ state: online, hba }, p), p).actions.find((a) => a.kind === 'put' && a.path === hbaPath('15'));
  return put?.kind === 'put' ? String(put.content) : '';
}
const converged: Host = { state: [...online, ...rows, 'pwfile 600 root root 32', 'login ok', 'envfile 600 www-data same'], dropIn, hba: hbaOf() };
const planFor = (host: Host, p = params) => planOf(postgresql, entries(host, p), p);
const fresh = planFor({ state: ['cluster ', 'installed ', 'candidate 15'] });
const argvOf = (a: Action | undefined): string[] => (a?.kind === 'run' ? [...a.cmd.argv] : []);
const scriptNamed = (name: string): Action | undefined => fresh.actions.find((a) => argvOf(a)[3] === name);

describe('postgresql parameters', () => {
  it('takes the AIKovrr settings as the profile gives them, with local-only defaults', () => {
    expect(params).toMatchObject({ listenAddresses: 'localhost', database: 'app', role: 'app', allowFrom: [], locale: 'C.UTF-8', appUser: 'www-data', restart: 'refuse' });
    expect(params.settings).toContainEqual(['shared_buffers', '256MB']);
    expect(params.settings).toContainEqual(['checkpoint_completion_target', '0.9']);
    expect(postgresql.parseParams({ settings: { wal_level: 'replica', jit: false } }).settings).toEqual([['wal_level', "'replica'"], ['jit', "'off'"]]);
  });

  it('refuses hostile setting names and values before any connection', () => {
    for (const bad of hostile) expect(() => postgresql.parseParams({ settings: { [bad]: 1 } }), JSON.stringify(bad)).toThrow(/not a postgresql.conf parameter name/);
    // Only what could leave the single quotes or the line is refused: ' \ and control characters.
    for (const bad of ["x'y", 'a\nb', 'a\rb', 'a\\b', "'UTC", "4MB'\ninclude '/tmp/x", "'a'b'", 'tab\there', 'x'.repeat(257)]) {
      expect(() => postgresql.parseParams({ settings: { timezone: bad } }), JSON.stringify(bad)).toThrow(/settings\.timezone must be a number, a size like 256MB, or text without ' \\ or line breaks/);
    }
    expect(() => postgresql.parseParams({ settings: { work_mem: Number.POSITIVE_INFINITY } })).toThrow(/work_mem/);
    expect(() => postgresql.parseParams({ settings: { work_mem: { a: 1 } } })).toThrow(/work_mem/);
    expect(() => postgresql.parseParams({ settings: ['shared_buffers=1GB'] })).toThrow(/"0" is not a postgresql.conf parameter name/);
  });

  it('takes seed 001\'s quoted timezone and lists like shared_preload_libraries, quoted once and safely', () => {
    const p = postgresql.parseParams({ settings: { timezone: "'UTC'", shared_preload_libraries: 'pg_stat_statements,auto_explain', search_path: '"$user", public', log_line_prefix: '%m [%p] %q%u@%d ', log_timezone: 'UTC', work_mem: "'64MB'", cmd: '$(id);`id`' } });
    expect(Object.fromEntries(p.settings)).toEqual({
      timezone: "'UTC'", shared_preload_libraries: "'pg_stat_statements,auto_explain'", search_path: "'\"$user\", public'",
      log_line_prefix: "'%m [%p] %q%u@%d '", log_timezone: "'UTC'", work_mem: '64MB', cmd: "'$(id);`id`'",
    });
    const put = planFor({ state: online }, p).actions.find((a) => a.kind === 'put');
    expect(String(put?.kind === 'put' ? put.content : '')).toMatch(/^timezone = 'UTC'\nshared_preload_libraries = 'pg_stat_statements,auto_explain'\n/m);
  });

  it('takes a database locale, a certificate, an application user and a restart policy, and refuses bad ones', () => {
    expect(postgresql.parseParams({ locale: 'en_US.UTF-8', sslCertFile: '/etc/ssl/certs/db.pem', sslKeyFile: '/etc/ssl/private/db.key', appUser: 'aikovrr', restart: 'allow' }))
      .toMatchObject({ locale: 'en_US.UTF-8', sslCertFile: '/etc/ssl/certs/db.pem', appUser: 'aikovrr', restart: 'allow' });
    for (const bad of ["en_US.UTF-8'", 'en_US', 'de_DE.ISO-8859-1', '../x']) expect(() => postgresql.parseParams({ locale: bad }), bad).toThrow(/locale must be/);
    expect(() => postgresql.parseParams({ sslKeyFile: "/k'; reboot" })).toThrow(/sslKeyFile must be an absolute path/);
    expect(() => postgresql.parseParams({ appUser: 'a b' })).toThrow(/appUser must be a user name/);
    expect(() => postgresql.parseParams({ restart: 'yes' })).toThrow(/restart must be allow or refuse/);
  });

  it('keeps listen_addresses and Debian\'s file locations out of settings', () => {
    expect(() => postgresql.parseParams({ settings: { listen_addresses: 'localhost' } })).toThrow(/listenAddresses/);
    expect(() => postgresql.parseParams({ settings: { ssl: 'off' } })).toThrow(/ssl is always on/);
    expect(() => postgresql.parseParams({ settings: { ssl_key_file: '/k' } })).toThrow(/sslKeyFile/);
    expect(() => postgresql.parseParams({ settings: { hba_file: 'x' } })).toThrow(/not set through settings/);
    expect(() => postgresql.parseParams({ settings: { include_dir: 'x' } })).toThrow(/not set through settings/);
  });

  it('refuses hostile or reserved role and database names', () => {
    for (const bad of [...hostile, 'App', '1app', 'a'.repeat(64)]) {
      expect(() => postgresql.parseParams({ role: bad }), JSON.stringify(bad)).toThrow(/role must be a PostgreSQL identifier/);
      expect(() => postgresql.parseParams({ database: bad }), JSON.stringify(bad)).toThrow(/database must be a PostgreSQL identifier/);
    }
    expect(() => postgresql.parseParams({ role: 'postgres' })).toThrow(/reserved or the superuser/);
    expect(() => postgresql.parseParams({ role: 'pg_monitor' })).toThrow(/reserved/);
    expect(() => postgresql.parseParams({ database: 'template1' })).toThrow(/reserved/);
  });

  it('needs localhost among the listen addresses, and a non-loopback one for allowFrom', () => {
    expect(postgresql.parseParams({ listenAddresses: 'localhost,10.0.0.5', allowFrom: ['10.0.0.0/24'] })).toMatchObject({ allowFrom: ['10.0.0.0/24'] });
    expect(() => postgresql.parseParams({ listenAddresses: '10.0.0.5' })).toThrow(/must include localhost/);
    expect(() => postgresql.parseParams({ listenAddresses: "localhost'; reboot" })).toThrow(/listenAddresses must be a comma-separated list/);
    expect(() => postgresql.parseParams({ listenAddresses: 'localhost,example.com' })).toThrow(/listenAddresses must be/);
    expect(() => postgresql.parseParams({ allowFrom: ['10.0.0.0/24'] })).toThrow(/listen beyond loopback/);
    expect(() => postgresql.parseParams({ listenAddresses: '*', allowFrom: ['10.0.0.0/24; trust'] })).toThrow(/allowFrom\[0\]/);
    expect(() => postgresql.parseParams({ password: 'x' })).toThrow(/unknown parameter "password"/);
  });
});

describe('postgresql files', () => {
  it('renders listen_addresses and the settings from the template, numbers and sizes bare, words quoted', () => {
    expect(fresh.actions[0]).toMatchObject({ kind: 'put', content: dropIn, source: 'template postgresql/50-zanuri.conf' });
    const words = planFor({ state: online }, postgresql.parseParams({ settings: { wal_level: 'replica', jit: false } })).actions.find((a) => a.kind === 'put');
    expect(words).toMatchObject({ content: expect.stringMatching(/^wal_level = 'replica'\njit = 'off'\n$/m) });
  });

  it('puts its marked block first in pg_hba.conf: postgres over the socket, the role on its database over loopback, and TLS only from allowFrom', () => {
    const rules = (text: string): string[] => text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(/\s+/).join(' '));
    const block = (text: string): string => text.slice(0, text.indexOf(`${hbaMarkers.end}\n`) + hbaMarkers.end.length + 1);
    const local = hbaOf();
    expect(local.startsWith(`${hbaMarkers.begin}\n`)).toBe(true);
    expect(rules(block(local))).toEqual(hbaRules);
    expect(local.slice(block(local).length), 'Debian\'s lines and the replication line stay, after the block').toBe(debianHba);
    const open = hbaOf(postgresql.parseParams({ listenAddresses: '*', allowFrom: ['10.213.0.0/24', '10.0.0.7', 'fd00::/8'] }));
    expect(rules(block(open))).toEqual([...hbaRules,
      'hostssl app app 10.213.0.0/24 scram-sha-256', 'hostnossl app app 10.213.0.0/24 reject',
      'hostssl app app 10.0.0.7/32 scram-sha-256', 'hostnossl app app 10.0.0.7/32 reject',
      'hostssl app app fd00::/8 scram-sha-256', 'hostnossl app app fd00::/8 reject']);
    expect(open).toContain('hostssl   app              app              10.0.0.7/32              scram-sha-256\n');
    expect(block(open)).not.toMatch(/trust|md5|password\b|^host +all/m);
  });

  it('replaces only its own block, wherever it is, and refuses markers it cannot read', () => {
    const ours = `${hbaMarkers.begin}\nnew\n${hbaMarkers.end}\n`;
    expect(withBlock(null, ours, hbaMarkers, 'f')).toBe(ours);
    expect(withBlock('a\nb\n', ours, hbaMarkers, 'f')).toBe(`${ours}a\nb\n`);
    expect(withBlock(`a\n${hbaMarkers.begin}\nold\n${hbaMarkers.end}\nb\n`, ours, hbaMarkers, 'f'), 'moved first, the rest kept in order').toBe(`${ours}a\nb\n`);
    expect(withBlock(`${ours}x\n`, ours, hbaMarkers, 'f')).toBe(`${ours}x\n`);
    expect(() => withBlock(`${hbaMarkers.begin}\nx\n`, ours, hbaMarkers, 'f')).toThrow(/f has 1 "# BEGIN zanuri postgresql" and 0 "# END zanuri postgresql" lines/);
    expect(() => withBlock(`${hbaMarkers.end}\n${hbaMarkers.begin}\n`, ours, hbaMarkers, 'f')).toThrow(/exactly one of each, in order/);
    expect(() => withBlock(`${ours}${ours}`, ours, hbaMarkers, 'f')).toThrow(/has 2/);
  });
});

describe('postgresql plan', () => {
  it('plans everything on a fresh host for the version apt would install, and says so once', () => {
    expect(fresh.actions.map((a) => a.kind)).toEqual(['put', 'put', 'run', 'run', 'run', 'run', 'run']);
    const [conf, hba] = fresh.actions;
    expect(conf).toMatchObject({ path: '/etc/postgresql/15/main/conf.d/50-zanuri.conf', owner: 'postgres', group: 'postgres', mode: 0o644, notify: [{ unit, op: 'restart' }] });
    expect(hba).toMatchObject({ path: '/etc/postgresql/15/main/pg_hba.conf', owner: 'postgres', mode: 0o640, notify: [{ unit, op: 'reload' }] });
    expect(fresh.actions.map((a) => a.why).filter((why) => why.includes('not installed yet'))).toEqual([
      "the profile's postgresql.conf settings are not applied (16 parameters); a restart applies them (postgresql is not installed yet: planned for 15, the version apt would install; the paths are certain only after the install)",
    ]);
    expect(fresh.actions.map((a) => (a.kind === 'run' ? a.display : ''))).toEqual([
      '', '', 'psql: CREATE ROLE app LOGIN (if missing)', "psql: CREATE DATABASE app OWNER app ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8' TEMPLATE template0 (if missing)",
      `generate a random password for app on the host into ${pw} (0600 root)`, `psql: ALTER ROLE app PASSWORD 'SCRAM-SHA-256$...' (the verifier, computed on the host from ${pw})`,
      `write ${env} from ${pw} on the host (0600 www-data)`,
    ]);
    expect(postgresql.packages?.(params)).toEqual(['postgresql']);
  });

  it('creates the database UTF8 from template0 with seed 001\'s collation, generating the locale first', () => {
    const p = postgresql.parseParams({ settings: minimum, locale: 'en_US.UTF-8' });
    expect(postgresql.packages?.(p)).toEqual(['postgresql', 'locales']);
    const state = [...online, 'role true', 'queried', 'userdbs 0'];
    const plan = planOf(postgresql, entries({ ...converged, state }, p), p);
    const locale = plan.actions.find((a) => argvOf(a)[3] === 'zanuri-locale');
    expect(locale).toMatchObject({ why: 'the locale en_US.UTF-8 is not generated (locale -a)', cmd: { argv: expect.arrayContaining(['zanuri-locale', 'en_US.UTF-8']) } });
    const db = plan.actions.find((a) => a.kind === 'run' && a.display?.startsWith('psql: CREATE DATABASE'));
    const actions: Action[] = plan.actions;
    expect(actions.indexOf(locale as Action)).toBeGreaterThanOrEqual(0);
    expect(actions.indexOf(locale as Action)).toBeLessThan(actions.indexOf(db as Action));
    expect(argvOf(db).slice(3)).toEqual(['zanuri-psql', '5432', 'app', 'app', 'en_US.UTF-8']);
    expect(db?.kind === 'run' ? db.cmd.stdin : '').toContain("format('CREATE DATABASE %I OWNER %I ENCODING %L LC_COLLATE %L LC_CTYPE %L TEMPLATE template0', :'db', :'role', 'UTF8', :'locale', :'locale')");
    const generated = planOf(postgresql, entries({ ...converged, state: [...state, 'locale ok'] }, p), p);
    expect(generated.actions.some((a) => argvOf(a)[3] === 'zanuri-locale')).toBe(false);
  });

  it('never recreates an existing database in another locale, but says so in the converged line', () => {
    const plan = planFor({ ...converged, state: converged.state.map((l) => l.replace('dblocale UTF8 C.UTF-8 C.UTF-8', 'dblocale SQL_ASCII C C')) });
    expect(plan.actions).toEqual([]);
    expect('noop' in plan ? plan.noop : '').toMatch(/WARNING: database app exists with encoding SQL_ASCII, LC_COLLATE C and LC_CTYPE C, not UTF8 and C.UTF-8: zanuri never recreates a database/);
  });

  it('says the path is unknown when apt names no version either', () => {
    const plan = planFor({ state: ['cluster ', 'installed ', 'candidate '] });
    expect(plan.actions[0]).toMatchObject({ path: '/etc/postgresql/<version>/main/conf.d/50-zanuri.conf' });
    expect(plan.actions[0]?.why).toMatch(/known only after the install\)$/);
  });

  it('needs no second round trip on a converged host: every fact it reads is known before any is read', () => {
    const discovered = new Set([...stepFacts(postgresql, params, ctx), ...resourceFacts(postgresql.resources(blankFacts, params, ctx))].map((f) => f.key));
    const needed = resourceFacts(postgresql.resources(factsOf(entries(converged)), params, ctx)).map((f) => f.key);
    expect(needed.length).toBeGreaterThan(2);
    for (const key of needed) expect(discovered, key).toContain(key);
  });

  it('never carries a password: the generator and the setter take only the role, the port and the file path', () => {
    expect(argvOf(scriptNamed('zanuri-password')).slice(3)).toEqual(['zanuri-password', pw]);
    expect(argvOf(scriptNamed('zanuri-set-password')).slice(3)).toEqual(['zanuri-set-password', '5432', 'app', pw]);
    for (const action of fresh.actions) expect(action.kind === 'run' ? String(action.cmd.stdin ?? '') : '').not.toMatch(/PASSWORD '/);
    // Statement logging is off for the session that carries the password, and psql errors are terse.
    expect(argvOf(scriptNamed('zanuri-set-password'))[2]).toMatch(/SET log_statement = 'none'/);
    expect(argvOf(scriptNamed('zanuri-set-password'))[2]).toMatch(/VERBOSITY=terse/);
  });

  it('passes the role and database to the SQL as psql variables, never spliced into it', () => {
    const role = fresh.actions.find((a) => a.kind === 'run' && a.display?.startsWith('psql: CREATE ROLE'));
    expect(argvOf(role).slice(3)).toEqual(['zanuri-psql', '5432', 'app', 'app', 'C.UTF-8']);
    expect(role?.kind === 'run' ? role.cmd.stdin : '').toMatch(/format\('CREATE ROLE %I LOGIN', :'role'\)/);
    expect(role?.kind === 'run' ? String(role.cmd.stdin) : '').not.toMatch(/\bapp\b/);
  });

  it('does what the installed host still lacks: settings, access block, role, database, password and env file', () => {
    const plan = planFor({ state: [...online, 'postmaster shared_buffers', 'postmaster listen_addresses', 'queried', 'userdbs 0'], hba: '# debian default\nlocal all all peer\n' });
    expect(plan.actions.map((a) => a.why)).toEqual([
      "the profile's postgresql.conf settings are not applied (16 parameters); listen_addresses, shared_buffers need a restart",
      '/etc/postgresql/15/main/pg_hba.conf has no zanuri block (postgres over the socket, app on app over loopback) yet: it goes first, since the first matching line decides, and the 1 rules already there stay below it',
      'role app does not exist',
      'database app does not exist',
      'app has no password file yet; it is generated on the host and never leaves it',
      'app gets the new password',
      `the application gets ${env} (DATABASE_URL and DATABASE_*; 0600, owned by www-data)`,
    ]);
    expect(plan.actions[0]).toMatchObject({ notify: [{ unit, op: 'restart' }] });
    expect(plan.actions[0]).toMatchObject({ validateInPlace: { argv: expect.arrayContaining(['/usr/lib/postgresql/15/bin/postgres', '/etc/postgresql/15/main/postgresql.conf']) } });
    expect(plan.actions[1]).toMatchObject({ before: { content: Buffer.from('# debian default\nlocal all all peer\n') }, validateInPlace: { argv: expect.arrayContaining(['zanuri-hba', '5432']) } });
  });

  it('leaves a converged host alone and says why', () => {
    expect(planFor(converged)).toEqual({ actions: [], noop: `PostgreSQL 15/main runs the profile's 12 settings, is reachable only locally, and app logs in to app with ${env} (owned by www-data)` });
  });

  it('reloads for a drifted setting that needs no restart, and restarts for one that does only with restart=allow', () => {
    const reload = planFor({ ...converged, dropIn: dropIn.replace('work_mem = 2621kB', 'work_mem = 64MB') });
    expect(reload.actions).toEqual([expect.objectContaining({ kind: 'put', path: dropInPath('15'), notify: [{ unit, op: 'reload' }], why: 'work_mem differ from the profile; a reload applies them' })]);
    const allow = postgresql.parseParams({ settings: minimum, restart: 'allow' });
    const restart = planFor({ ...converged, dropIn: dropIn.replace('shared_buffers = 256MB', 'shared_buffers = 128MB') }, allow);
    expect(restart.actions).toEqual([expect.objectContaining({ notify: [{ unit, op: 'restart' }], why: 'shared_buffers differ from the profile; shared_buffers need a restart' })]);
    const comments = planFor({ ...converged, dropIn: `${dropIn}# a note\n` });
    expect(comments.actions.map((a) => a.why)).toEqual([`${dropInPath('15')} was edited (comments only)`]);
  });

  it('by default, writes a restart-needing change to a cluster in use, reloads, and warns that it waits for the operator\'s restart', () => {
    const refused = planFor({ ...converged, dropIn: dropIn.replace('shared_buffers = 256MB', 'shared_buffers = 128MB') });
    expect(refused.actions).toEqual([expect.objectContaining({ kind: 'put', notify: [{ unit, op: 'reload' }] })]);
    expect(refused.actions[0]?.why).toBe(`shared_buffers differ from the profile; shared_buffers need a restart; WARNING: shared_buffers needs a restart, and the running cluster holds 1 database; restart is refuse (the safe default), so the file is written and reloaded and shared_buffers takes effect only at the next restart: run systemctl restart ${unit} in a maintenance window, or set postgresql.restart=allow`);
    const waiting = planFor({ ...converged, state: [...converged.state, 'pending shared_buffers'] });
    expect(waiting.actions, 'no restart is planned afterwards either').toEqual([]);
    expect('noop' in waiting ? waiting.noop : '').toMatch(/; WARNING: shared_buffers needs a restart, and the running cluster holds 1 database/);
    const unknown = planFor({ ...converged, state: converged.state.filter((l) => l !== 'queried' && !l.startsWith('userdbs')), dropIn: dropIn.replace('work_mem = 2621kB', 'work_mem = 64MB') });
    expect(unknown.actions[0], 'a running server that cannot be asked counts as in use').toMatchObject({ notify: [{ unit, op: 'reload' }], why: expect.stringMatching(/cannot be asked whether it holds databases/) });
    const empty = planFor({ ...converged, state: converged.state.map((l) => l.replace('userdbs 1', 'userdbs 0')), dropIn: dropIn.replace('shared_buffers = 256MB', 'shared_buffers = 128MB') });
    expect(empty.actions[0], 'a fresh cluster holding no database is restarted').toMatchObject({ notify: [{ unit, op: 'restart' }], why: 'shared_buffers differ from the profile; shared_buffers need a restart' });
  });

  it('with restart=allow, restarts once when a managed setting waits for a restart, e.g. after an interrupted run', () => {
    const allow = postgresql.parseParams({ settings: minimum, restart: 'allow' });
    const planFor = (host: Host) => planOf(postgresql, entries(host, allow), allow);
    const plan = planFor({ ...converged, state: [...converged.state, 'pending shared_buffers'] });
    expect(plan.actions).toEqual([expect.objectContaining({ kind: 'run', cmd: { argv: ['systemctl', 'restart', '--', unit] }, why: 'shared_buffers changed on disk but wait for a restart' })]);
    expect(planFor({ ...converged, state: [...converged.state, 'pending wal_level'] }).actions, 'not for settings zanuri does not manage').toEqual([]);
    const drifted = planFor({ ...converged, state: [...converged.state, 'pending shared_buffers'], dropIn: dropIn.replace('work_mem = 2621kB', 'work_mem = 64MB') });
    expect(drifted.actions, 'the drop-in\'s handler restarts instead').toEqual([expect.objectContaining({ kind: 'put', notify: [{ unit, op: 'restart' }] })]);
  });

  it('starts a stopped cluster first, and re-sets the password when the role cannot log in with the file', () => {
    const stopped = planFor({ ...converged, state: ['cluster 15 5432 down', 'installed 15', 'pwfile 600 root root 32'] });
    expect(stopped.actions[0]).toMatchObject({ kind: 'run', cmd: { argv: ['systemctl', 'start', '--', unit] }, why: 'the 15/main cluster is not running' });
    expect(stopped.actions.map((a) => a.why)).toContain(`whether app logs in with ${pw} cannot be checked yet`);
    const drifted = planFor({ ...converged, state: converged.state.map((l) => l.replace('login ok', 'login failed')) });
    expect(drifted.actions).toEqual([expect.objectContaining({ kind: 'run', why: `app cannot log in over 127.0.0.1 with the password in ${pw}` })]);
  });

  it('keeps an existing password file and repairs its owner and mode', () => {
    const plan = planFor({ ...converged, state: converged.state.map((l) => l.replace('pwfile 600 root root', 'pwfile 644 app root')) });
    expect(plan.actions).toEqual([expect.objectContaining({ kind: 'run', display: `chown root:root ${pw} && chmod 600 ${pw}`, why: `${pw} is 0644 app:root, not 0600 root:root` })]);
  });

  it('fixes a database owned by someone else, a role that cannot log in and a cluster that would not start at boot', () => {
    const plan = planFor({ ...converged, service: 'disabled\nactive', state: converged.state.map((l) => l.replace('db app', 'db postgres').replace('role true', 'role false')) });
    expect(plan.actions[0]).toMatchObject({ kind: 'service', unit: 'postgresql.service', op: 'enable-now' });
    expect(plan.actions.map((a) => a.why)).toEqual([
      'postgresql.service is disabled and active',
      'role app cannot log in',
      'database app is owned by postgres, not app',
    ]);
  });

  it('creates the main cluster when the package is there but the cluster was dropped, and plans the rest after it', () => {
    const plan = planFor({ state: ['cluster ', 'installed 15', 'candidate 15'] });
    expect(plan.actions[0]).toMatchObject({ kind: 'run', cmd: { argv: ['pg_createcluster', '--start', '15', 'main'] } });
    expect(plan.actions.some((a) => a.why.includes('not installed yet'))).toBe(false);
    const cluster = postgresql.resources(factsOf(entries({ state: ['cluster ', 'installed 15'] })), params, ctx)[0];
    expect(cluster).toMatchObject({ id: 'command:postgresql-cluster', checkpoint: true });
  });

  it('opens allowFrom networks in its pg_hba.conf block, over TLS only, and keeps the other lines', () => {
    const p = postgresql.parseParams({ settings: minimum, listenAddresses: 'localhost,10.213.0.10', allowFrom: ['10.213.0.0/24'] });
    const plan = planFor({ ...converged, dropIn: dropIn.replace("'localhost'", "'localhost,10.213.0.10'") }, p);
    expect(plan.actions).toEqual([expect.objectContaining({
      path: hbaPath('15'), why: `the zanuri block (postgres over the socket, app on app over loopback and over TLS only from 10.213.0.0/24) in ${hbaPath('15')} differs or is not first; the lines outside it are kept`,
    })]);
    const put = plan.actions[0];
    expect(put?.kind === 'put' ? String(put.content) : '').toMatch(new RegExp(`^hostnossl app +app +10\\.213\\.0\\.0/24 +reject\\n# END zanuri postgresql\\n${debianHba.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`, 'm'));
    const edited = planFor({ ...converged, hba: `${converged.hba}host all monitor 10.0.0.9/32 scram-sha-256\n` });
    expect(edited.actions, 'a line added outside the block is not a change').toEqual([]);
  });
});

describe('postgresql fact', () => {
  it('reads the cluster, the server\'s answers and the password file\'s metadata', () => {
    expect(fact.parse(converged.state.join('\n'))).toEqual({
      cluster: { version: '15', port: 5432, online: true }, installedVersion: '15', candidateVersion: '15', queried: true, role: { canLogin: true },
      databaseOwner: 'app', databaseLocale: { encoding: 'UTF8', collate: 'C.UTF-8', ctype: 'C.UTF-8' }, userDatabases: 1, localeAvailable: true, envFile: { mode: 0o600, owner: 'www-data', same: true }, postmaster: ['shared_buffers', 'max_connections', 'listen_addresses', 'wal_buffers'], pendingRestart: [],
      passwordFile: { mode: 0o600, owner: 'root', group: 'root', size: 32 }, login: 'ok',
    });
  });

  it('reads a host without PostgreSQL as unknown, not as an error', () => {
    const unknown = { cluster: null, installedVersion: null, candidateVersion: null, queried: false, passwordFile: null, login: 'unknown' };
    expect(fact.parse('cluster \ninstalled \ncandidate ')).toMatchObject(unknown);
    expect(fact.parse('')).toMatchObject(unknown);
  });

  it('never reads the password file itself, only stat, and probes the login once', () => {
    expect(fact.script).toContain(`stat -c '%a %U %G %s' ${pw}`);
    expect(fact.script).not.toMatch(/cat \/etc\/zanuri|base64 < \/etc\/zanuri/);
    expect(fact.script.match(/PGPASSFILE=/g)).toHaveLength(1);
  });

  it('reads the drop-in and pg_hba.conf of the newest main cluster that pg_lsclusters names', () => {
    const bin = mkdtempSync(join(tmpdir(), 'zanuri-pg-'));
    writeFileSync(join(bin, 'pg_lsclusters'), '#!/bin/sh\nprintf "%s\\n" "15 main 5432 online postgres /var/lib/postgresql/15/main log" "13 main 5433 down postgres /x log" "16 other 5434 online postgres /y log"\n', { mode: 0o755 });
    const traced = (script: string): string => spawnSync('sh', ['-xc', script], { env: { ...process.env, PATH: `${bin}:${process.env['PATH']}` }, encoding: 'utf8' }).stderr;
    expect(traced(dropInFact.script)).toContain('p=/etc/postgresql/15/main/conf.d/50-zanuri.conf');
    expect(traced(hbaFact.script)).toContain('p=/etc/postgresql/15/main/pg_hba.conf');
  });
});

describe('postgresql host scripts', () => {
  const shells = ['dash', 'bash'].filter((sh) => spawnSync(sh, ['-c', 'true']).status === 0);
  const scripts = (cmd: Cmd | undefined): string[] => (cmd?.argv[0] === 'sh' ? [cmd.argv[2] as string] : []);
  /** Runs verify() with a host whose commands run here, the password file swapped for `file`. */
  async function verifyHere(file: string, env: NodeJS.ProcessEnv): Promise<Cmd[]> {
    const ran: Cmd[] = [];
    const run = async (cmd: Cmd): Promise<RunResult> => {
      ran.push(cmd);
      const [bin = '', ...args] = cmd.argv.map((a) => (a === pw ? file : a));
      const r = spawnSync(bin, args, { input: typeof cmd.stdin === 'string' ? cmd.stdin : '', env, encoding: 'utf8' });
      return { command: [bin, ...args].join(' '), target: 'here', exitCode: r.status, stdout: r.stdout, stderr: r.stderr, durationMs: 0, ok: r.status === 0 };
    };
    await postgresql.verify?.({ run } as unknown as HostContext, params);
    return ran;
  }

  it('parse in dash and bash: the facts, every run action and every in-place validation', () => {
    const all = [fact.script, dropInFact.script, hbaFact.script, ...fresh.actions.flatMap((a) => [
      ...(a.kind === 'run' ? scripts(a.cmd) : []), ...(a.kind === 'put' ? scripts(a.validateInPlace) : []),
    ])];
    expect(all.length).toBeGreaterThan(7);
    for (const sh of shells) for (const script of all) expect(spawnSync(sh, ['-n', '-c', script]).status, `${sh}: ${script.slice(0, 60)}`).toBe(0);
  });

  it('prove the login with the password only in a temp PGPASSFILE, never in argv', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zanuri-pg-'));
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'pg_lsclusters'), '#!/bin/sh\necho "15 main 5439 online postgres /d /l"\n', { mode: 0o755 });
    // psql as the app role records its argv and the PGPASSFILE it got; as postgres (runuser) it finds no bad settings.
    writeFileSync(join(bin, 'psql'), `#!/bin/sh\nprintf '%s\\n' "$@" > ${dir}/argv\ncat "$PGPASSFILE" > ${dir}/passfile\necho 1\n`, { mode: 0o755 });
    writeFileSync(join(bin, 'runuser'), '#!/bin/sh\ncat > /dev/null\n', { mode: 0o755 });
    const file = join(dir, 'app.password');
    writeFileSync(file, 'Zq8xK2mP4vR7tY1wN3bC6dF9gH5jL0sA\n');
    const ran = await verifyHere(file, { ...process.env, PATH: `${bin}:${process.env['PATH']}` });
    expect(ran.length).toBe(2);
    expect(readFileSync(join(dir, 'argv'), 'utf8').split('\n')).toEqual(['-XAtqw', '-h', '127.0.0.1', '-p', '5439', '-U', 'app', '-d', 'app', '-c', 'select 1', '']);
    expect(readFileSync(join(dir, 'passfile'), 'utf8')).toBe('*:*:*:*:Zq8xK2mP4vR7tY1wN3bC6dF9gH5jL0sA\n');
    for (const cmd of ran) expect(cmd.argv.join(' ')).not.toContain('Zq8xK2mP4vR7tY1wN3bC6dF9gH5jL0sA');
    // The same probe fails verify() when the server refuses the password.
    writeFileSync(join(bin, 'psql'), '#!/bin/sh\necho "FATAL:  password authentication failed" >&2; exit 2\n', { mode: 0o755 });
    await expect(verifyHere(file, { ...process.env, PATH: `${bin}:${process.env['PATH']}` })).rejects.toThrow(/psql as app over 127.0.0.1/);
  });

  it('send the server only a SCRAM-SHA-256 verifier of the password, on psql\'s stdin, never the password itself', () => {
    const dir = mkdtempSync(join(tmpdir(), 'zanuri-pg-'));
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    // A stand-in for runuser that records what psql would get.
    writeFileSync(join(bin, 'runuser'), `#!/bin/sh\nprintf '%s\\n' "$@" > ${dir}/argv\ncat > ${dir}/stdin\n`, { mode: 0o755 });
    const file = join(dir, 'app.password');
    writeFileSync(file, 'Zq8xK2mP4vR7tY1wN3bC6dF9gH5jL0sA');
    const script = argvOf(scriptNamed('zanuri-set-password'))[2] as string;
    for (const sh of shells) {
      const result = spawnSync(sh, ['-c', script, 'zanuri-set-password', '5432', 'app', file], { env: { ...process.env, PATH: `${bin}:${process.env['PATH']}` }, encoding: 'utf8' });
      expect(result.status, result.stderr).toBe(0);
      const argv = readFileSync(join(dir, 'argv'), 'utf8');
      const stdin = readFileSync(join(dir, 'stdin'), 'utf8');
      expect(argv).not.toContain('Zq8xK2mP4vR7tY1wN3bC6dF9gH5jL0sA');
      expect(argv.split('\n')).toEqual(expect.arrayContaining(['postgres', 'psql', 'role=app', 'VERBOSITY=terse', 'ON_ERROR_STOP=1']));
      expect(stdin).not.toContain('Zq8xK2mP4vR7tY1wN3bC6dF9gH5jL0sA');
      const lines = stdin.split('\n');
      expect(lines.slice(1)).toEqual([
        "SET log_statement = 'none';", "SET log_min_error_statement = 'panic';", 'SET log_min_duration_statement = -1;',
        'SET pg_stat_statements.track_utility = off;', 'ALTER ROLE :"role" PASSWORD :\'v\';', '',
      ]);
      // The verifier is what libpq would compute: checked here with Node's own PBKDF2 and HMAC over the verifier's salt.
      const match = /^\\set v 'SCRAM-SHA-256\$4096:([A-Za-z0-9+/=]{24})\$([A-Za-z0-9+/=]{44}):([A-Za-z0-9+/=]{44})'$/.exec(lines[0] ?? '');
      expect(match, lines[0]).not.toBeNull();
      const [, salt = '', stored, server] = match ?? [];
      const salted = pbkdf2Sync('Zq8xK2mP4vR7tY1wN3bC6dF9gH5jL0sA', Buffer.from(salt, 'base64'), 4096, 32, 'sha256');
      expect(stored).toBe(createHash('sha256').update(createHmac('sha256', salted).update('Client Key').digest()).digest('base64'));
      expect(server).toBe(createHmac('sha256', salted).update('Server Key').digest('base64'));
    }
    const salts = new Set([0, 1, 2].map(() => {
      spawnSync('sh', ['-c', script, 'zanuri-set-password', '5432', 'app', file], { env: { ...process.env, PATH: `${bin}:${process.env['PATH']}` } });
      return readFileSync(join(dir, 'stdin'), 'utf8').split('$')[1];
    }));
    expect(salts.size, 'a fresh random salt each time').toBe(3);
    // A file that could break out of the \set quoting is refused before psql runs.
    writeFileSync(file, "abcdefghijklmnop'; DROP ROLE app; --");
    const refused = spawnSync('sh', ['-c', script, 'zanuri-set-password', '5432', 'app', file], { env: { ...process.env, PATH: `${bin}:${process.env['PATH']}` }, encoding: 'utf8' });
    expect(refused.status).toBe(3);
    expect(refused.stderr).toMatch(/must hold one line of 16 to 200 letters and digits/);
    expect(refused.stderr).not.toContain('DROP');
  });

  it('compute a verifier that completes RFC 7677\'s example exchange (user "user", password "pencil")', () => {
    const dir = mkdtempSync(join(tmpdir(), 'zanuri-pg-'));
    writeFileSync(join(dir, 'pw'), 'pencil\n');
    const out = spawnSync('perl', ['-e', scramPerl, '--', join(dir, 'pw'), 'W22ZaJ0SNY7soEsUEjb6gQ=='], { encoding: 'utf8' });
    expect(out.status, out.stderr).toBe(0);
    const [, storedKey = '', serverKey = ''] = /^SCRAM-SHA-256\$4096:W22ZaJ0SNY7soEsUEjb6gQ==\$(\S+):(\S+)$/.exec(out.stdout) ?? [];
    // RFC 7677 section 3: the server's signature v= and the client's proof p= for this AuthMessage.
    const auth = 'n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0';
    expect(createHmac('sha256', Buffer.from(serverKey, 'base64')).update(auth).digest('base64')).toBe('6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=');
    // The server checks a proof by recovering ClientKey = proof XOR HMAC(StoredKey, AuthMessage) and hashing it back to StoredKey.
    const signature = createHmac('sha256', Buffer.from(storedKey, 'base64')).update(auth).digest();
    const clientKey = Buffer.from('dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=', 'base64').map((b, i) => b ^ (signature[i] ?? 0));
    expect(createHash('sha256').update(clientKey).digest('base64')).toBe(storedKey);
  });

  it.skipIf(process.getuid?.() !== 0)('generate a 32-character password into a new 0600 root file, and keep an existing one', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'zanuri-pg-')), 'sub', 'app.password');
    const script = argvOf(scriptNamed('zanuri-password'))[2] as string;
    for (const sh of shells) {
      rmSync(file, { force: true });
      expect(spawnSync(sh, ['-c', script, 'zanuri-password', file]).status).toBe(0);
      const first = readFileSync(file, 'utf8');
      expect(first).toMatch(/^[A-Za-z0-9]{32}$/);
      expect((statSync(file).mode & 0o777).toString(8)).toBe('600');
      expect(spawnSync(sh, ['-c', script, 'zanuri-password', file]).status).toBe(0);
      expect(readFileSync(file, 'utf8'), 'a rerun keeps the password').toBe(first);
    }
  });
});
